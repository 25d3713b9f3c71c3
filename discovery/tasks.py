"""Regression tasks: the three property datasets with their train/val/test splits.

MP band gap and SuperCon Tc: seeded 80/10/10 splits of the shared CSVs. OQMD formation
enthalpy: crabnet's own train/val/test. Test splits are for final reports only.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from discovery.data import (
    load_mp_bandgap,
    load_oqmd_formation_enthalpy,
    load_supercon_tc,
)
from discovery.errors import ConfigError


@dataclass
class Task:
    name: str  # property name: bandgap, tc, formation_energy
    unit: str
    train: pd.DataFrame  # columns formula, y
    val: pd.DataFrame
    test: pd.DataFrame
    source: str
    data_sha256: str
    skipped: dict

    def describe_splits(self) -> dict:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}


def frames_sha256(*frames: pd.DataFrame) -> str:
    """SHA-256 of data frames' values (row order matters): a task's data hash."""
    h = hashlib.sha256()
    for f in frames:
        h.update(pd.util.hash_pandas_object(f, index=False).to_numpy().tobytes())
    return h.hexdigest()


def seeded_split(df: pd.DataFrame, seed: int, fractions=(0.8, 0.1, 0.1)):
    """Seeded 80/10/10 split of rows."""
    perm = np.random.default_rng(seed).permutation(len(df))
    n_tr = int(round(fractions[0] * len(df)))
    n_va = int(round(fractions[1] * len(df)))
    parts = perm[:n_tr], perm[n_tr : n_tr + n_va], perm[n_tr + n_va :]
    return [df.iloc[np.sort(p)].reset_index(drop=True) for p in parts]


def load_task(name: str, split_seed: int = 0) -> Task:
    """A task by property name; the split seed fixes the MP and SuperCon splits."""
    if name == "bandgap":
        df = load_mp_bandgap().rename(columns={"bandgap": "y"})
        tr, va, te = seeded_split(df, split_seed)
        src = "mp_bandgap.csv (shared data)"
        return Task(name, "eV", tr, va, te, src, frames_sha256(df), df.attrs.get("skipped", {}))
    if name == "tc":
        df = load_supercon_tc().rename(columns={"tc": "y"})
        tr, va, te = seeded_split(df, split_seed)
        src = "supercon_tc.csv (shared data)"
        return Task(name, "K", tr, va, te, src, frames_sha256(df), df.attrs.get("skipped", {}))
    if name == "formation_energy":
        parts = [load_oqmd_formation_enthalpy(s).rename(columns={"formation_enthalpy": "y"})
                 for s in ("train", "val", "test")]
        return Task(name, "eV/atom", *parts, "crabnet==2.0.8 OQMD_Formation_Enthalpy",
                    frames_sha256(*parts), {})
    raise ConfigError(f"unknown task {name!r}; use bandgap, tc or formation_energy")
