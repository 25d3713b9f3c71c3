"""A run directory: one Parquet + one NPZ file per completed partition, and a manifest with
their SHA-256 checksums, so an interrupted run resumes and a damaged file is recomputed."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from discovery.errors import ConfigError
from discovery.pipeline import PartitionOutput, RunSpec

log = logging.getLogger(__name__)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _atomic_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def write_partition(run_dir: Path, out: PartitionOutput) -> dict:
    """Write a partition's files atomically; return its manifest entry (names, checksums)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    stem = f"part-{out.index:05d}"
    buf = io.BytesIO()
    out.candidates.to_parquet(buf, index=False)
    parquet = buf.getvalue()
    buf = io.BytesIO()
    np.savez(buf, keys=out.keys, stages=out.stages, sampled=out.sampled, decoded=out.decoded,
             seconds=json.dumps(out.seconds))
    arrays = buf.getvalue()
    _atomic_bytes(run_dir / f"{stem}.parquet", parquet)
    _atomic_bytes(run_dir / f"{stem}.npz", arrays)
    return {"files": {f"{stem}.parquet": _sha256(parquet), f"{stem}.npz": _sha256(arrays)}}


def read_partition(run_dir: Path, index: int, entry: dict) -> PartitionOutput | None:
    """A completed partition, or None when a file is missing or fails its checksum."""
    for name, digest in entry["files"].items():
        path = Path(run_dir) / name
        if not path.is_file() or _sha256(path.read_bytes()) != digest:
            log.warning("partition %d: %s missing or corrupt; recomputing", index, name)
            return None
    stem = f"part-{index:05d}"
    z = np.load(Path(run_dir) / f"{stem}.npz", allow_pickle=False)
    cands = pd.read_parquet(Path(run_dir) / f"{stem}.parquet")
    return PartitionOutput(index, int(z["sampled"]), int(z["decoded"]), z["keys"], z["stages"], cands,
                           json.loads(str(z["seconds"])))


class RunStore:
    """The manifest of a run directory: which partitions are done, under which settings."""

    def __init__(self, run_dir: Path, spec: RunSpec, resume: bool):
        self.dir = Path(run_dir)
        self.spec = spec
        self.path = self.dir / "manifest.json"
        settings = spec.settings()
        if self.path.is_file():
            manifest = json.loads(self.path.read_text())
            if not resume:
                raise ConfigError(f"run directory {str(self.dir)!r} already holds a run; pass --resume "
                                  "to continue it or choose another directory")
            if manifest["settings"] != settings:
                diff = sorted(k for k in settings if manifest["settings"].get(k) != settings[k])
                raise ConfigError(f"cannot resume {str(self.dir)!r}: its run used different "
                                  f"settings ({', '.join(diff)})")
            self.manifest = manifest
        else:
            self.manifest = {"settings": settings, "partitions": {}}
            self.dir.mkdir(parents=True, exist_ok=True)
            self._save()

    def _save(self) -> None:
        _atomic_bytes(self.path, (json.dumps(self.manifest, indent=2) + "\n").encode())

    def completed(self) -> dict[int, PartitionOutput]:
        """Partitions whose files verify; damaged ones are dropped from the manifest."""
        done = {}
        for key, entry in list(self.manifest["partitions"].items()):
            out = read_partition(self.dir, int(key), entry)
            if out is None:
                del self.manifest["partitions"][key]
            else:
                done[int(key)] = out
        self._save()
        return done

    def record(self, index: int, entry: dict) -> None:
        self.manifest["partitions"][str(index)] = entry
        self._save()
