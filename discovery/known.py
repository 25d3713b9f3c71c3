"""The known-materials index: reduced-composition keys of every composition we hold.

Built from crabnet's OQMD formation-enthalpy splits, its matbench MP tables and MP e_hull
splits, and the GAN training set. That index ships in the package
(``resources/known_index.npy``, sorted uint64 keys, ~3 MB), so the novelty check needs no
data on the machine; fetched tables and the shared data only add what it lacks. Membership is a
vectorised binary search over sorted uint64 keys, so testing a million count vectors costs
a hash and a ``searchsorted``, not a Python loop.
"""

from __future__ import annotations

import functools
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

SHIPPED_KEYS = Path(__file__).resolve().parent / "resources" / "known_index.npy"
SHIPPED_META = SHIPPED_KEYS.with_suffix(".json")


class KnownMaterials:
    """A set of reduced compositions; ``Fe4O6`` is known when ``Fe2O3`` is."""

    def __init__(self, keys: np.ndarray, sources: dict[str, int] | None = None,
                 skipped: dict[str, int] | None = None):
        self.keys = np.unique(np.asarray(keys, dtype=np.uint64))
        self.sources = sources or {}
        self.skipped = skipped or {}
        self.origin: dict = {}

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
    def shipped(cls) -> KnownMaterials:
        """The index shipped in the package (``resources/known_index.npy``): needs no data."""
        try:
            keys = np.load(SHIPPED_KEYS, allow_pickle=False)
            meta = json.loads(SHIPPED_META.read_text())
            sources, skipped = dict(meta["sources"]), dict(meta.get("skipped", {}))
        except Exception as exc:  # a damaged installation, not a user error to guess around
            raise DataError(f"shipped known-materials index {str(SHIPPED_KEYS)!r} unreadable "
                            f"({type(exc).__name__}); reinstall the package") from None
        if keys.dtype != np.uint64 or len(keys) != meta.get("compositions"):
            raise DataError(f"shipped known-materials index {str(SHIPPED_KEYS)!r} does not match "
                            f"{SHIPPED_META.name}; reinstall the package")
        known = cls(keys, sources, skipped)
        known.origin = {"shipped": len(known), "added_locally": 0, "local_sources": []}
        return known

    @classmethod
    def default(cls, cache: Path | None = None, include_shared: bool = True) -> KnownMaterials:
        """The shipped index, plus whatever the fetched crabnet tables and the shared GAN set
        add to it (nothing, when they are the versions it was built from).

        The local part is cached beside the fetched tables, keyed by their manifest and the
        GAN file's size and mtime, so later loads take milliseconds.
        """
        known = cls.shipped()
        local = cls.local(cache, include_shared)
        if local is None:
            return known
        extra = local.keys[~known.contains_keys(local.keys)]
        merged = cls(np.concatenate([known.keys, extra]), {**known.sources, **local.sources},
                     {**known.skipped, **local.skipped} if len(extra) else known.skipped)
        merged.origin = {"shipped": len(known), "added_locally": len(extra),
                         "local_sources": sorted(local.sources)}
        return merged

    @classmethod
    def local(cls, cache: Path | None = None, include_shared: bool = True) -> KnownMaterials | None:
        """The index of the data on this machine (fetched crabnet tables, shared GAN set),
        or None when there is none."""
        cache = cache or cache_dir()
        shared = shared_data_dir(required=False) if include_shared else None
        gan_file = shared / "oqmd_gan_formulas.csv" if shared else None
        has_gan = gan_file is not None and gan_file.is_file()
        manifest = cache / "crabnet" / "manifest.json"
        has_crabnet = manifest.is_file()
        if not (has_crabnet or has_gan):
            return None
        sig = manifest.read_text() if has_crabnet else ""
        if has_gan:
            st = gan_file.stat()
            sig += f"|{gan_file.resolve()}|{st.st_size}|{st.st_mtime_ns}"
        sig_hash = hashlib.sha256(sig.encode()).hexdigest()[:16]
        index_file = cache / f"known_index_{sig_hash}.npz"
        if index_file.is_file():
            try:
                z = np.load(index_file, allow_pickle=False)
                meta = json.loads(str(z["meta"]))
                return cls(z["keys"], meta["sources"], meta["skipped"])
            except Exception as exc:  # a corrupt cache is rebuilt, not trusted
                log.warning("known index %s unreadable (%s); rebuilding", index_file, exc)
        known = cls._build(cache, has_crabnet, has_gan)
        try:
            index_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = index_file.with_suffix(".tmp.npz")
            np.savez(tmp, keys=known.keys,
                     meta=json.dumps({"sources": known.sources, "skipped": known.skipped}))
            tmp.replace(index_file)
        except OSError as exc:  # a read-only cache costs a rebuild next time, nothing else
            log.info("known index not cached (%s)", exc)
        return known

    @classmethod
    def _build(cls, cache: Path, crabnet: bool, gan: bool) -> KnownMaterials:
        parts, sources, skipped = [np.zeros(0, np.uint64)], {}, Counter()
        for t in CRABNET_TABLES if crabnet else ():
            df = load_crabnet_table(t.name, cache)
            keys, sk = cls._keys_of(df["formula"].tolist())
            parts.append(keys)
            sources[t.name] = len(np.unique(keys))
            skipped.update(sk)
        if gan:
            try:
                frame = load_gan_formulas()
            except DataError as exc:
                log.warning("known materials: GAN set not used (%s)", exc)
            else:
                keys, sk = cls._keys_of(frame["formula"].tolist())
                parts.append(keys)
                sources["oqmd_gan_formulas"] = len(np.unique(keys))
                skipped.update(sk)
        return cls(np.concatenate(parts), sources, dict(skipped))

    def describe(self) -> dict:
        """Size and sources, for run summaries: how many compositions, from where, and how
        many the local data added to the shipped index."""
        return {"compositions": len(self), "sources": dict(self.sources), **self.origin}

    def missing_from(self, other: KnownMaterials) -> int:
        """How many of ``other``'s compositions this index lacks."""
        return int((~self.contains_keys(other.keys)).sum())

    def warn_if_smaller_than_shipped(self) -> int:
        """Log one warning when this index lacks compositions of the shipped one (novelty
        would then pass known compounds); return how many it lacks."""
        shipped = _shipped()
        missing = self.missing_from(shipped)
        if missing:
            log.warning("known-materials index lacks %s of the shipped index's %s compositions: "
                        "known compounds can pass the novelty check", f"{missing:,}", f"{len(shipped):,}")
        return missing

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


@functools.cache
def _shipped() -> KnownMaterials:
    return KnownMaterials.shipped()
