"""Datasets: the shared CSVs (GAN formulas, MP band gaps, SuperCon Tc) and the crabnet tables.

Shared data is found through ``DISCOVERY_DATA`` (default: a ``shared/data`` folder beside
the checkout or the working directory). The crabnet==2.0.8 wheel's CSVs (OQMD formation
enthalpy splits, matbench MP tables) are fetched once by :func:`fetch_crabnet` into a
cache (``DISCOVERY_CACHE``, default ``~/.cache/discovery``) as Parquet.

Every loader parses formulas with the codec, drops rows that do not parse and reports how
many and why (``df.attrs["skipped"]``, and a log line); nothing vanishes unreported.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from discovery.encoding import composition_keys, parse_formulas
from discovery.errors import DataError

log = logging.getLogger(__name__)

CRABNET_SPEC = "crabnet==2.0.8"
CACHE_VERSION = 1


# ----------------------------------------------------------------------------- locations


def shared_data_dir(required: bool = True) -> Path | None:
    """The shared data folder: $DISCOVERY_DATA, else ../shared/data near the checkout or cwd."""
    env = os.environ.get("DISCOVERY_DATA")
    if env:
        p = Path(env).expanduser()
        if p.is_dir():
            return p
        if required:
            raise DataError(f"DISCOVERY_DATA={env!r} is not a folder")
        return None
    repo = Path(__file__).resolve().parent.parent
    for base in (repo, Path.cwd()):
        for cand in (base / "shared" / "data", base.parent / "shared" / "data"):
            if cand.is_dir():
                return cand
    if required:
        raise DataError("shared data not found: set DISCOVERY_DATA to the folder holding "
                        "oqmd_gan_formulas.csv, mp_bandgap.csv and supercon_tc.csv")
    return None


def cache_dir() -> Path:
    """Where fetched tables live: $DISCOVERY_CACHE, else $XDG_CACHE_HOME/discovery."""
    env = os.environ.get("DISCOVERY_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "discovery"


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ----------------------------------------------------------------------------- parsing


def _clean(df: pd.DataFrame, source: str, target: str | None) -> pd.DataFrame:
    """Keep rows whose formula parses (and whose target is a number); record what was skipped."""
    return _clean_parsed(df, source, target)[0]


def _clean_parsed(df: pd.DataFrame, source: str, target: str | None) -> tuple[pd.DataFrame, np.ndarray]:
    """:func:`_clean` plus the kept rows' amount vectors [N, 85], parsed once."""
    if "formula" not in df.columns:
        raise DataError(f"{source}: no 'formula' column (columns: {list(df.columns)})")
    batch = parse_formulas(df["formula"].fillna("").astype(str).tolist())
    keep = batch.valid.copy()
    skipped = batch.failure_counts()
    if target is not None:
        y = pd.to_numeric(df[target], errors="coerce")
        bad_y = keep & ~np.isfinite(y.to_numpy(dtype=float))
        if bad_y.any():
            skipped[f"non-numeric {target}"] = int(bad_y.sum())
        keep &= ~bad_y
        df = df.assign(**{target: y})
    out = df.loc[keep].reset_index(drop=True)
    out.attrs["skipped"] = skipped
    out.attrs["source"] = source
    if skipped:
        log.warning("%s: skipped %d of %d rows (%s)", source, len(df) - len(out), len(df),
                    ", ".join(f"{k}: {v}" for k, v in sorted(skipped.items())))
    return out, batch.amounts[keep]


def _read_shared(name: str, target: str | None) -> pd.DataFrame:
    path = shared_data_dir() / name  # type: ignore[operator]
    if not path.is_file():
        raise DataError(f"{path} not found")
    try:
        # keep_default_na=False: 'NaN' (sodium nitride) is a formula, not a missing value
        df = pd.read_csv(path, keep_default_na=False, na_values={"bandgap": [""], "tc": [""]})
    except Exception as exc:
        raise DataError(f"{path}: unreadable CSV ({exc})") from exc
    if target is not None and target not in df.columns:
        raise DataError(f"{path}: no {target!r} column")
    return _clean(df, str(path), target)


def load_gan_formulas() -> pd.DataFrame:
    """The WGAN training set (OQMD, 251k formulas): column ``formula``."""
    return _read_shared("oqmd_gan_formulas.csv", None)


def load_mp_compositions() -> pd.DataFrame:
    """Real Materials Project compositions (52,898, a seeded 80%) for training generators."""
    return _read_shared("mp_compositions.csv", None)


def load_mp_bandgap() -> pd.DataFrame:
    """Materials Project band gaps of non-metals: ``formula``, ``bandgap`` (eV)."""
    return _read_shared("mp_bandgap.csv", "bandgap")


def load_supercon_tc() -> pd.DataFrame:
    """SuperCon critical temperatures: ``formula``, ``tc`` (K); fractional amounts kept."""
    return _read_shared("supercon_tc.csv", "tc")


# ----------------------------------------------------------------------------- crabnet


@dataclass(frozen=True)
class CrabnetTable:
    name: str  # cache name
    member: str  # path inside the wheel
    target: str  # our column name
    dedupe_lowest: bool  # keep the lowest target per reduced formula (formation energies)


CRABNET_TABLES: tuple[CrabnetTable, ...] = tuple(
    [CrabnetTable(f"oqmd_formation_enthalpy_{s}",
                  f"crabnet/data/benchmark_data/OQMD_Formation_Enthalpy/{s}.csv",
                  "formation_enthalpy", True) for s in ("train", "val", "test")]
    + [
        CrabnetTable("matbench_mp_gap", "crabnet/data/matbench/mp_gap.csv", "bandgap", False),
        CrabnetTable("matbench_mp_e_form", "crabnet/data/matbench/mp_e_form.csv",
                     "formation_energy", True),
        CrabnetTable("matbench_mp_is_metal", "crabnet/data/matbench/mp_is_metal.csv",
                     "is_metal", False),
    ]
    + [CrabnetTable(f"mp_e_hull_{s}", f"crabnet/data/benchmark_data/mp_e_hull/{s}.csv",
                    "e_hull", False) for s in ("train", "val", "test")]
    # Bartel et al. 2020 (npj Comput. Mater. 6, 97): MP formation and decomposition energies
    + [CrabnetTable(f"critexam_{t.lower()}_{s}", f"crabnet/data/benchmark_data/CritExam__{t}/{s}.csv",
                    col, False)
       for t, col in (("Ef", "formation_energy"), ("Ed", "decomposition_energy"))
       for s in ("train", "val", "test")]
)


def _dedupe_lowest(df: pd.DataFrame, amounts: np.ndarray, target: str) -> tuple[pd.DataFrame, int]:
    """One row per reduced composition, the lowest target (the most stable entry)."""
    keys = composition_keys(np.rint(amounts).astype(np.int64))
    order = np.lexsort((df[target].to_numpy(), keys))
    first = np.r_[True, keys[order][1:] != keys[order][:-1]]
    kept = np.sort(order[first])
    return df.iloc[kept].reset_index(drop=True), len(df) - len(kept)


def _download_wheel(dest: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--python-version", "3.10", CRABNET_SPEC, "-d", str(dest), "--quiet"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    except subprocess.TimeoutExpired as exc:
        raise DataError(f"pip download {CRABNET_SPEC} timed out (offline?)") from exc
    wheels = sorted(dest.glob("crabnet-*.whl"))
    if proc.returncode != 0 or not wheels:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise DataError(f"could not download {CRABNET_SPEC} with pip (offline? "
                        f"pass --wheel PATH to use a downloaded copy): {last}")
    return wheels[0]


def _manifest_path(cache: Path) -> Path:
    return cache / "crabnet" / "manifest.json"


def fetch_crabnet(wheel: Path | str | None = None, force: bool = False,
                  cache: Path | None = None) -> dict:
    """Extract the crabnet wheel's tables into the cache as Parquet; idempotent.

    Downloads the wheel with pip unless ``wheel`` names a local copy. Returns the manifest
    (tables, rows, duplicates removed, skipped rows by reason).
    """
    cache = cache or cache_dir()
    manifest_file = _manifest_path(cache)
    if manifest_file.is_file() and not force:
        manifest = json.loads(manifest_file.read_text())
        if manifest.get("version") == CACHE_VERSION and all(
            (cache / "crabnet" / f"{t.name}.parquet").is_file() for t in CRABNET_TABLES
        ):
            manifest["cached"] = True
            return manifest
    out_dir = cache / "crabnet"
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        whl = Path(wheel) if wheel else _download_wheel(Path(tmp))
        if not whl.is_file():
            raise DataError(f"wheel {str(whl)!r} not found")
        try:
            zf = zipfile.ZipFile(whl)
        except zipfile.BadZipFile as exc:
            raise DataError(f"{whl} is not a valid wheel (corrupt zip)") from exc
        tables = {}
        with zf:
            for t in CRABNET_TABLES:
                try:
                    raw = pd.read_csv(io.BytesIO(zf.read(t.member)))
                except KeyError as exc:
                    raise DataError(f"{whl} has no {t.member}; is it {CRABNET_SPEC}?") from exc
                raw = raw.rename(columns={"target": t.target})
                df, parsed = _clean_parsed(raw, t.member, t.target)
                dupes = 0
                if t.dedupe_lowest:
                    df, dupes = _dedupe_lowest(df, parsed, t.target)
                tmp_file = out_dir / f".{t.name}.parquet.tmp"
                df[["formula", t.target]].to_parquet(tmp_file, index=False)
                tmp_file.replace(out_dir / f"{t.name}.parquet")
                tables[t.name] = {"rows": len(df), "raw_rows": len(raw),
                                  "duplicates_removed": dupes, "skipped": df.attrs["skipped"],
                                  "target": t.target}
        manifest = {"version": CACHE_VERSION, "source": CRABNET_SPEC,
                    "wheel_sha256": file_sha256(whl), "tables": tables}
    manifest_file.write_text(json.dumps(manifest, indent=2))
    manifest["cached"] = False
    return manifest


def load_crabnet_table(name: str, cache: Path | None = None) -> pd.DataFrame:
    """A fetched crabnet table by cache name (see CRABNET_TABLES), e.g. ``matbench_mp_gap``."""
    names = [t.name for t in CRABNET_TABLES]
    if name not in names:
        raise DataError(f"unknown crabnet table {name!r}; one of {', '.join(names)}")
    path = (cache or cache_dir()) / "crabnet" / f"{name}.parquet"
    if not path.is_file():
        raise DataError(f"{path} missing: run `discover data fetch` first")
    try:
        return pd.read_parquet(path)
    except Exception as exc:
        raise DataError(f"{path}: corrupt Parquet file ({exc}); rerun `discover data fetch "
                        "--force`") from exc


def load_oqmd_formation_enthalpy(split: str, cache: Path | None = None) -> pd.DataFrame:
    """crabnet's OQMD formation enthalpy split (train/val/test): ``formula``,
    ``formation_enthalpy`` (eV/atom), one row per reduced formula (the lowest)."""
    if split not in ("train", "val", "test"):
        raise DataError(f"unknown split {split!r}; use train, val or test")
    return load_crabnet_table(f"oqmd_formation_enthalpy_{split}", cache)

