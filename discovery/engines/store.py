"""A run directory: one Parquet + one NPZ file per completed partition, and a manifest with
their SHA-256 checksums, so an interrupted run resumes and a damaged file is recomputed.

Each partition also verifies on its own: its NPZ (zip members carry CRC-32s) records the
run's settings and the SHA-256 of its Parquet file. That lets ``--resume`` rebuild a lost or
damaged manifest and adopt partitions a worker finished after the driver died. Partition
files are written once: a partition that a scheduler computes again (its worker died after
finishing it) keeps the files and checksums first recorded.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd

from discovery.atomic import atomic_write_bytes, remove_temp_files, write_once
from discovery.errors import ConfigError
from discovery.partitions import PartitionOutput, RunSpec

log = logging.getLogger(__name__)

_PART = re.compile(r"^part-(\d{5,})\.(parquet|npz)$")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _settings_json(settings: dict) -> str:
    return json.dumps(settings, sort_keys=True)


def write_partition(run_dir: Path, out: PartitionOutput, settings: dict) -> dict:
    """Write a partition's files (once); return its manifest entry (names, checksums).

    Where an earlier attempt already wrote a file, that file stays and its checksum is
    returned: the content is the same (same seed and partition), only timings differ.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    stem = f"part-{out.index:05d}"
    buf = io.BytesIO()
    out.candidates.to_parquet(buf, index=False)
    parquet = buf.getvalue()
    ppath, zpath = run_dir / f"{stem}.parquet", run_dir / f"{stem}.npz"
    parquet_sha = _sha256(parquet) if write_once(ppath, parquet) else _sha256(ppath.read_bytes())
    buf = io.BytesIO()
    np.savez(buf, keys=out.keys, stages=out.stages, sampled=out.sampled, decoded=out.decoded,
             generator_skipped=out.generator_skipped, seconds=json.dumps(out.seconds),
             settings=_settings_json(settings), parquet_sha256=parquet_sha)
    arrays = buf.getvalue()
    npz_sha = _sha256(arrays) if write_once(zpath, arrays) else _sha256(zpath.read_bytes())
    return {"files": {ppath.name: parquet_sha, zpath.name: npz_sha}}


def read_partition(run_dir: Path, index: int, entry: dict | None = None,
                   settings: dict | None = None) -> PartitionOutput | None:
    """A completed partition, or None when a file is missing, damaged or fails a checksum.

    ``entry`` is the manifest's record (its checksums must match); without it the partition
    must verify on its own (recorded Parquet checksum and, with ``settings``, the same run).
    Raises ConfigError when the partition belongs to a run with other settings.
    """
    run_dir = Path(run_dir)
    stem = f"part-{index:05d}"
    ppath, zpath = run_dir / f"{stem}.parquet", run_dir / f"{stem}.npz"
    try:
        if entry is not None:
            for name, digest in entry["files"].items():
                if _sha256((run_dir / name).read_bytes()) != digest:
                    raise ValueError(f"{name} fails its checksum")
        with np.load(zpath, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}  # reading a member checks its CRC-32
        recorded = str(arrays["parquet_sha256"]) if "parquet_sha256" in arrays else None
        if recorded is None and entry is None:
            raise ValueError(f"{zpath.name} has no checksums of its own")
        parquet = ppath.read_bytes()
        if recorded is not None and _sha256(parquet) != recorded:
            raise ValueError(f"{ppath.name} fails its checksum")
        cands = pd.read_parquet(io.BytesIO(parquet))
        out = PartitionOutput(index, int(arrays["sampled"]), int(arrays["decoded"]), arrays["keys"],
                              arrays["stages"], cands, json.loads(str(arrays["seconds"])),
                              int(arrays.get("generator_skipped", 0)))
    except Exception as exc:  # missing, truncated, BadZipFile, pyarrow errors: recompute it
        log.warning("partition %d: %s; recomputing it", index, _reason(exc))
        return None
    if settings is not None and "settings" in arrays:
        theirs, ours = json.loads(str(arrays["settings"])), json.loads(_settings_json(settings))
        if theirs != ours:
            diff = sorted(k for k in set(ours) | set(theirs) if ours.get(k) != theirs.get(k))
            raise ConfigError(f"{zpath} was written by a run with different settings "
                              f"({', '.join(diff)}); resume with that run's settings or use another "
                              "run directory")
    return out


def _reason(exc: BaseException) -> str:
    if isinstance(exc, FileNotFoundError) and exc.filename:
        return f"{Path(exc.filename).name} is missing"
    return f"{type(exc).__name__}: {exc}" if not isinstance(exc, ValueError) else str(exc)


def _manifest_problem(text: str) -> tuple[dict | None, str | None]:
    """The parsed manifest, or None and what is wrong with it."""
    if not text.strip():
        return None, "it is empty"
    try:
        manifest = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, f"invalid JSON: {exc}"
    if not isinstance(manifest, dict) or not isinstance(manifest.get("settings"), dict) \
            or not isinstance(manifest.get("partitions"), dict):
        return None, f"expected an object with 'settings' and 'partitions', found {type(manifest).__name__}"
    for key, entry in manifest["partitions"].items():
        if not key.isdigit() or not isinstance(entry, dict) or not isinstance(entry.get("files"), dict):
            return None, f"partition entry {key!r} is malformed"
    return manifest, None


def _part_files(run_dir: Path) -> dict[int, list[Path]]:
    parts: dict[int, list[Path]] = {}
    if run_dir.is_dir():
        for p in run_dir.iterdir():
            m = _PART.match(p.name)
            if m:
                parts.setdefault(int(m.group(1)), []).append(p)
    return parts


def check_run_dir(run_dir: Path, spec: RunSpec, resume: bool) -> tuple[dict | None, str | None]:
    """What opening ``run_dir`` for ``spec`` would refuse, as a one-line ConfigError, without
    writing anything or reading partitions: the CLI calls it before any model loads. Returns
    the parsed manifest (None when missing or damaged) and what is wrong with it (None when
    sound, "missing" when absent)."""
    run_dir = Path(run_dir)
    settings = spec.settings()
    if resume and not run_dir.is_dir():
        what = "not a directory" if run_dir.exists() else "no such directory"
        raise ConfigError(f"cannot resume {str(run_dir)!r}: {what} (start a new run with --run-dir)")
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"run directory {str(run_dir)!r} is a file, not a directory; choose another "
                          "--run-dir")
    manifest, problem = None, "missing"
    path = run_dir / "manifest.json"
    if path.is_file():
        try:
            manifest, problem = _manifest_problem(path.read_text(errors="replace"))
        except OSError as exc:
            problem = f"unreadable: {exc.strerror or exc}"
    if manifest is not None:
        if not resume:
            raise ConfigError(f"run directory {str(run_dir)!r} already holds a run; pass --resume "
                              "to continue it or choose another directory")
        if manifest["settings"] != settings:
            diff = sorted(k for k in settings if manifest["settings"].get(k) != settings[k])
            raise ConfigError(f"cannot resume {str(run_dir)!r}: its run used different "
                              f"settings ({', '.join(diff)})")
    elif problem != "missing" or _part_files(run_dir):
        what = (f"manifest.json is damaged ({problem})" if problem != "missing"
                else "it holds partition files but no manifest.json")
        if not resume:
            raise ConfigError(f"run directory {str(run_dir)!r}: {what}; continue it with --resume "
                              f"{run_dir}, which rebuilds the manifest from the partition files "
                              "that verify, or choose another directory")
    elif resume:
        raise ConfigError(f"cannot resume {str(run_dir)!r}: no run there (no manifest.json)")
    return manifest, problem


class RunStore:
    """The manifest of a run directory: which partitions are done, under which settings.

    Opening a store checks the directory before any work starts: ``resume`` needs an existing
    run there; a damaged or missing manifest is rebuilt on resume from the partitions that
    verify on their own; files of unfinished writes and partitions that do not verify are
    removed (so the partition is computed again).
    """

    def __init__(self, run_dir: Path, spec: RunSpec, resume: bool):
        self.dir = Path(run_dir)
        self.spec = spec
        self.path = self.dir / "manifest.json"
        self.settings = spec.settings()
        self._outputs: dict[int, PartitionOutput] = {}
        manifest, problem = check_run_dir(self.dir, spec, resume)
        parts = self._part_files()
        if manifest is None and (problem != "missing" or parts):  # resume: check_run_dir refused otherwise
            what = (f"manifest.json is damaged ({problem})" if problem != "missing"
                    else "it holds partition files but no manifest.json")
            log.warning("%s: %s; rebuilding it from the partition files that verify", self.dir, what)
        self.manifest = manifest or {"settings": self.settings, "partitions": {}}
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            self._verify_and_tidy(parts)
            self._save()
        except OSError as exc:
            raise ConfigError(f"cannot write run directory {str(self.dir)!r}: "
                              f"{exc.strerror or exc}") from None

    def _part_files(self) -> dict[int, list[Path]]:
        return _part_files(self.dir)

    def _verify_and_tidy(self, parts: dict[int, list[Path]]) -> None:
        """Keep the partitions that verify (recorded, or complete on their own), remove the
        files of the others and leftover temp files."""
        recorded = self.manifest["partitions"]
        for key in list(recorded):
            out = read_partition(self.dir, int(key), recorded[key], self.settings)
            if out is None:
                del recorded[key]
            else:
                self._outputs[int(key)] = out
        adopted = 0
        for index in sorted(set(parts) - set(self._outputs)):
            out = read_partition(self.dir, index, None, self.settings) \
                if index < self.spec.n_partitions else None
            if out is None:
                for p in parts[index]:
                    p.unlink(missing_ok=True)
                continue
            self._outputs[index] = out
            recorded[str(index)] = {"files": {p.name: _sha256(p.read_bytes()) for p in sorted(parts[index])}}
            adopted += 1
        if adopted:
            log.warning("%s: %d finished partition(s) verified and added to the manifest; %d in all",
                        self.dir, adopted, len(self._outputs))
        for p in remove_temp_files(self.dir):
            log.info("removed %s, left by an unfinished write", p)

    def _save(self) -> None:
        atomic_write_bytes(self.path, (json.dumps(self.manifest, indent=2) + "\n").encode())

    def completed(self) -> dict[int, PartitionOutput]:
        """Partitions whose files verify; damaged ones are dropped from the manifest."""
        done = {}
        for key, entry in list(self.manifest["partitions"].items()):
            index = int(key)
            out = self._outputs.get(index) or read_partition(self.dir, index, entry, self.settings)
            if out is None:  # remove its files too: they are written once
                del self.manifest["partitions"][key]
                for name in entry["files"]:
                    (self.dir / Path(name).name).unlink(missing_ok=True)
            else:
                done[index] = self._outputs[index] = out
        self._save()
        return done

    def record(self, index: int, entry: dict) -> None:
        self.manifest["partitions"][str(index)] = entry
        self._outputs.pop(index, None)
        self._save()
