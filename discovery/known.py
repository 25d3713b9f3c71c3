"""The known-materials index: reduced-composition keys of every composition we hold.

Built from crabnet's OQMD formation-enthalpy splits, its matbench MP tables and MP e_hull
splits, plus the GAN training set when the shared data is present. Membership is a
vectorised binary search over sorted uint64 keys, so testing a million count vectors costs
a hash and a ``searchsorted``, not a Python loop.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from discovery.data import (
    CRABNET_TABLES,
    DataError,
    cache_dir,
    load_crabnet_table,
    load_gan_formulas,
    shared_data_dir,
)
from discovery.encoding import composition_keys, parse_formulas

log = logging.getLogger(__name__)


class KnownMaterials:
    """A set of reduced compositions; ``Fe4O6`` is known when ``Fe2O3`` is."""

    def __init__(self, keys: np.ndarray, sources: dict[str, int] | None = None,
                 skipped: dict[str, int] | None = None):
        self.keys = np.unique(np.asarray(keys, dtype=np.uint64))
        self.sources = sources or {}
        self.skipped = skipped or {}

    @staticmethod
    def _keys_of(formulas: Iterable[object]) -> tuple[np.ndarray, Counter]:
        batch = parse_formulas(formulas)
        skipped = Counter(batch.failure_counts())
        amts = batch.amounts[batch.valid]
        integer = np.all(np.abs(amts - np.rint(amts)) < 1e-6, axis=1)
        if (~integer).any():
            skipped["non-integer amount"] += int((~integer).sum())
        return composition_keys(np.rint(amts[integer]).astype(np.int64)), skipped

    @classmethod
    def from_formulas(cls, formulas: Iterable[object]) -> KnownMaterials:
        """Index the given formulas; unparsable or fractional ones are counted in ``skipped``."""
        keys, skipped = cls._keys_of(formulas)
        return cls(keys, {"formulas": len(keys)}, dict(skipped))

    @classmethod
    def default(cls, cache: Path | None = None, include_shared: bool = True) -> KnownMaterials:
        """Every crabnet table we fetched, plus the GAN training set when it is present.

        The index is cached beside the fetched tables, keyed by their manifest and the GAN
        file's size and mtime, so later loads take milliseconds.
        """
        cache = cache or cache_dir()
        shared = shared_data_dir(required=False) if include_shared else None
        gan_file = shared / "oqmd_gan_formulas.csv" if shared else None
        manifest = cache / "crabnet" / "manifest.json"
        if not manifest.is_file():
            raise DataError(f"{manifest} missing: run `discover data fetch` first")
        sig = manifest.read_text()
        if gan_file is not None and gan_file.is_file():
            st = gan_file.stat()
            sig += f"|{gan_file}|{st.st_size}|{st.st_mtime_ns}"
        sig_hash = hashlib.sha256(sig.encode()).hexdigest()[:16]
        index_file = cache / "crabnet" / f"known_index_{sig_hash}.npz"
        if index_file.is_file():
            try:
                z = np.load(index_file, allow_pickle=False)
                meta = json.loads(str(z["meta"]))
                return cls(z["keys"], meta["sources"], meta["skipped"])
            except Exception as exc:  # a corrupt cache is rebuilt, not trusted
                log.warning("known index %s unreadable (%s); rebuilding", index_file, exc)
        known = cls._build(cache, include_shared)
        tmp = index_file.with_suffix(".tmp.npz")
        np.savez(tmp, keys=known.keys,
                 meta=json.dumps({"sources": known.sources, "skipped": known.skipped}))
        tmp.replace(index_file)
        return known

    @classmethod
    def _build(cls, cache: Path, include_shared: bool) -> KnownMaterials:
        parts, sources, skipped = [], {}, Counter()
        for t in CRABNET_TABLES:
            df = load_crabnet_table(t.name, cache)
            keys, sk = cls._keys_of(df["formula"].tolist())
            parts.append(keys)
            sources[t.name] = len(np.unique(keys))
            skipped.update(sk)
        if include_shared and shared_data_dir(required=False) is not None:
            try:
                gan = load_gan_formulas()
            except DataError as exc:
                log.warning("known materials: GAN set not used (%s)", exc)
            else:
                keys, sk = cls._keys_of(gan["formula"].tolist())
                parts.append(keys)
                sources["oqmd_gan_formulas"] = len(np.unique(keys))
                skipped.update(sk)
        return cls(np.concatenate(parts), sources, dict(skipped))

    def __len__(self) -> int:
        return len(self.keys)

    def contains_keys(self, keys: np.ndarray) -> np.ndarray:
        """Boolean mask: which reduced-composition keys are known."""
        keys = np.asarray(keys, dtype=np.uint64)
        if len(self.keys) == 0:
            return np.zeros(keys.shape, dtype=bool)
        idx = np.searchsorted(self.keys, keys)
        idx[idx == len(self.keys)] = 0
        return self.keys[idx] == keys

    def contains_counts(self, counts: np.ndarray) -> np.ndarray:
        """Boolean mask: which integer count vectors [N, 85] are known compositions."""
        return self.contains_keys(composition_keys(counts))

    def contains(self, formulas: Iterable[object]) -> np.ndarray:
        """Boolean mask for formulas or Compositions; raises CompositionError on a bad one."""
        batch = parse_formulas(formulas)
        batch.raise_first()
        return self.contains_counts(batch.amounts)

    def __contains__(self, formula: object) -> bool:
        return bool(self.contains([formula])[0])
