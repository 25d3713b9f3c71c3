"""The generator protocol the pipeline samples from, and the seeded splits generators train on.

A generator knows nothing of the pipeline: for a seed it defines one sequence of int8 count
vectors [*, 85] (column order ``discovery.elements.ELEMENTS``, 0 = absent) and yields any slice
[start, stop) of it in batches. Rows may be empty or single-element; the pipeline counts and
drops those.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from discovery.elements import N_ELEMENTS
from discovery.encoding import counts_to_formulas

Seed = int | tuple[int, ...]


def seed_sequence(seed: Seed, *stream: int) -> list[int]:
    """Entropy for ``np.random.default_rng``: (run seed[, partition], stream) as one list."""
    base = list(seed) if isinstance(seed, tuple | list) else [int(seed)]
    return [*base, *stream]


class SkipTally:
    """How many draws a generator replaced because their composition was in the skip set.

    Counted per row of the sequence (the draws replaced before that row), so the tallies of
    slices add up to the whole sequence's, however it is cut; a beam's dropped compositions
    count at row 0."""

    def __init__(self) -> None:
        self.skipped = 0


def skip_keys(skip) -> np.ndarray | None:
    """A skip set as sorted unique uint64 composition keys (``encoding.composition_keys``), from
    such an array or anything with a ``keys`` array (``KnownMaterials``); None for None. A
    one-line ConfigError naming the value for anything else."""
    from discovery.errors import ConfigError

    if skip is None:
        return None
    keys = getattr(skip, "keys", skip)
    arr = keys if isinstance(keys, np.ndarray) else None
    if arr is None or arr.dtype != np.uint64 or arr.ndim != 1:
        what = (f"an array of dtype {arr.dtype} and shape {arr.shape}" if arr is not None
                else f"{type(skip).__name__} {str(skip)[:60]!r}")
        raise ConfigError(f"skip must be composition keys (a 1-D uint64 array from "
                          f"discovery.encoding.composition_keys, or a KnownMaterials), got {what}")
    return np.unique(arr)


def in_sorted(sorted_keys: np.ndarray | None, keys: np.ndarray) -> np.ndarray:
    """Boolean mask: which ``keys`` are in ``sorted_keys`` (sorted unique uint64; None: none)."""
    if sorted_keys is None or len(sorted_keys) == 0:
        return np.zeros(len(keys), dtype=bool)
    idx = np.searchsorted(sorted_keys, keys)
    idx[idx == len(sorted_keys)] = 0
    return sorted_keys[idx] == keys


def attribute_skips(keep: np.ndarray, skipped: np.ndarray, carry: int = 0) -> tuple[np.ndarray, int]:
    """Per kept draw, how many skipped draws came since the previous kept one (``carry``: the
    skipped draws before the first, left from earlier draws); and the skipped draws after the
    last kept one (the next call's carry)."""
    cs = np.cumsum(skipped, dtype=np.int64)
    at = cs[np.flatnonzero(keep)]
    before = np.diff(np.r_[0, at]).astype(np.int64)
    total = int(cs[-1]) if len(cs) else 0
    if len(before):
        before[0] += carry
        return before, total - int(at[-1])
    return before, carry + total


class Generator(ABC):
    """A seeded source of compositions with a name and a model card.

    The contract every generator follows (what a new one must do):

    - For a seed (and its fitted state and options) the output is ONE sequence of rows;
      ``iter_slice(start, stop, seed, batch_size, skip)`` yields rows [start, stop) of it, in
      batches of at most ``batch_size`` rows. A run's partitions ask for consecutive slices,
      so they never repeat each other.
    - A slice is produced without producing the rows before ``start``: draws are seeded by
      their position in the sequence (``BlockGenerator``: block b of ``BLOCK`` rows from the
      stream seeded by (seed, b)); anything shared by every position (the LM's beam head) is
      computed once per process and cached.
    - Rows never depend on ``batch_size`` or on how the sequence is cut: the concatenation of
      slices [0, a), [a, b), [b, n) is the slice [0, n).
    - With ``skip`` (sorted uint64 composition keys, ``skip_keys``), no row's composition is in
      the set: a search drops such a composition and keeps searching, a sampler draws again.
      How many draws were replaced is added to ``tally`` (``SkipTally``), row by row.

    Subclasses implement ``_slice`` (``BlockGenerator``: ``_block``) and ``fit``/``save``/``load``
    when they learn from data.
    """

    name: str = "generator"

    def __init__(self, card: dict | None = None):
        self.card: dict = dict(card or {})

    def _require_fit(self) -> None:  # noqa: B027 - optional hook, most generators need no check
        """Raise ConfigError when the generator cannot sample yet (not fitted or loaded)."""

    def iter_slice(self, start: int, stop: int, seed: Seed = 0, batch_size: int = 8192,
                   skip=None, tally: SkipTally | None = None) -> Iterator[np.ndarray]:
        """Rows [start, stop) of the sequence of ``seed``: int8 count batches [<= batch_size, 85].

        Arguments are checked at the call (one-line ConfigError naming the value), not at the
        first batch."""
        from discovery.errors import ConfigError

        for name, v in (("start", start), ("stop", stop), ("batch_size", batch_size)):
            if not isinstance(v, int | np.integer) or isinstance(v, bool):
                raise ConfigError(f"{name} must be an integer, got {v!r}")
        if start < 0 or stop < start:
            raise ConfigError(f"a slice of the sample sequence needs 0 <= start <= stop, "
                              f"got [{start}, {stop})")
        if batch_size < 1:
            raise ConfigError(f"batch size must be positive, got {batch_size}")
        keys = skip_keys(skip)
        self._require_fit()
        return self._slice(int(start), int(stop), seed, int(batch_size), keys, tally)

    @abstractmethod
    def _slice(self, start: int, stop: int, seed: Seed, batch_size: int, skip: np.ndarray | None,
               tally: SkipTally | None) -> Iterator[np.ndarray]:
        """Yield rows [start, stop) (arguments checked; ``skip`` sorted unique uint64 or None)."""

    def iter_counts(self, n: int, seed: Seed = 0, batch_size: int = 8192, skip=None,
                    tally: SkipTally | None = None) -> Iterator[np.ndarray]:
        """The first n rows of the sequence: ``iter_slice(0, n, ...)``."""
        from discovery.errors import ConfigError

        if isinstance(n, int | np.integer) and not isinstance(n, bool) and n < 0:
            raise ConfigError(f"number of samples must be >= 0, got {n}")
        return self.iter_slice(0, n, seed, batch_size, skip, tally)

    def fit(self, formulas: Sequence[str], seed: int = 0) -> Generator:
        """Learn from a list of training formulas (integer counts)."""
        raise NotImplementedError(f"generator {self.name!r} is not trainable")

    def save(self, directory: Path | str) -> None:
        """Write the generator (weights and ``card.json``) to a directory."""
        raise NotImplementedError(f"generator {self.name!r} cannot be saved")

    @classmethod
    def load(cls, directory: Path | str) -> Generator:
        """Read a generator written by ``save``."""
        raise NotImplementedError(f"{cls.__name__} cannot be loaded")

    def sample_counts(self, n: int, seed: Seed = 0, batch_size: int = 8192, skip=None) -> np.ndarray:
        parts = list(self.iter_counts(n, seed, batch_size, skip))
        return np.concatenate(parts) if parts else np.zeros((0, N_ELEMENTS), dtype=np.int8)

    def sample(self, n: int, seed: Seed = 0) -> list[str]:
        """n formulas, none empty: a draw with no element is not a composition, so it is
        skipped and the next draw of the seed's stream taken instead.

        Not deduplicated; single elements (``'Fe'``) are kept. The same seed gives the same
        list, and ``sample(m)`` starts with ``sample(n)`` for m > n.
        """
        if n < 0:
            raise ValueError(f"number of samples must be >= 0, got {n}")
        draws = n
        while True:
            counts = self.sample_counts(draws, seed)
            kept = counts[(counts > 0).any(axis=1)]
            if len(kept) >= n:
                return counts_to_formulas(kept[:n])
            if draws > 1000 * n + 10_000:
                from discovery.errors import ConfigError

                raise ConfigError(f"generator {self.name!r} drew {draws:,} samples and only "
                                  f"{len(kept):,} had an element")
            draws += max(16, 2 * (n - len(kept)))  # enough more for the missing ones

    @property
    def version(self) -> str:
        """The card's version (a hash of the fitted state), 'unknown' when there is none."""
        return str(self.card.get("version", "unknown"))


class BlockGenerator(Generator):
    """A generator whose sequence is made of blocks of ``BLOCK`` rows, block b drawn from the
    stream seeded by (seed, b): any slice computes only the blocks it touches. With a skip
    set, a draw in it is replaced by further draws from the same block's stream.
    Subclasses implement ``_block(rng, size)``."""

    BLOCK = 4096
    MAX_DRAWS = 1000  # block sizes drawn before a skip set that rejects almost everything is an error

    @abstractmethod
    def _block(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """``size`` int8 count rows [size, 85] drawn from ``rng``."""

    def full_block(self, seed: Seed, b: int, skip: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Block ``b`` of the sequence of ``seed`` [BLOCK, 85] and, per row, the draws replaced
        before it because they were in ``skip``."""
        from discovery.encoding import composition_keys
        from discovery.errors import ConfigError

        size = self.BLOCK
        rng = np.random.default_rng(seed_sequence(seed, b))
        rows = self._block(rng, size)
        if skip is None:
            return rows, np.zeros(size, dtype=np.int64)
        parts, before, carry, have, drawn = [], [], 0, 0, 0
        while have < size:
            if drawn >= self.MAX_DRAWS * size:
                raise ConfigError(f"generator {self.name!r}: {drawn:,} draws gave only {have:,} compositions "
                                  f"outside the skip set of {len(skip):,}; skip fewer")
            if drawn:
                rows = self._block(rng, size)
            drawn += size
            bad = in_sorted(skip, composition_keys(rows))
            n_before, carry = attribute_skips(~bad, bad, carry)
            take = min(size - have, len(n_before))
            parts.append(rows[~bad][:take])
            before.append(n_before[:take])
            have += take
        return np.concatenate(parts), np.concatenate(before)

    def _slice(self, start: int, stop: int, seed: Seed, batch_size: int, skip: np.ndarray | None,
               tally: SkipTally | None) -> Iterator[np.ndarray]:
        size = self.BLOCK

        def blocks():
            for b in range(start // size, -(-stop // size)):
                rows, before = self.full_block(seed, b, skip)
                lo, hi = max(start - b * size, 0), min(stop - b * size, size)
                if tally is not None:
                    tally.skipped += int(before[lo:hi].sum())
                yield rows[lo:hi]

        yield from rechunk(blocks(), batch_size)


def rechunk(blocks: Iterator[np.ndarray], batch_size: int) -> Iterator[np.ndarray]:
    """Regroup arrays into chunks of ``batch_size`` rows (the last may be shorter)."""
    buf: list[np.ndarray] = []
    have = 0
    for blk in blocks:
        buf.append(blk)
        have += len(blk)
        while have >= batch_size:
            cat = np.concatenate(buf)
            yield cat[:batch_size]
            rest = cat[batch_size:]
            buf, have = ([rest] if len(rest) else []), len(rest)
    if have:
        yield np.concatenate(buf)


def state_version(name: str, arrays: dict[str, np.ndarray]) -> str:
    """``name-<12 hex>``: a SHA-256 of the arrays' names, dtypes, shapes and bytes, so the
    version changes exactly when the fitted state does."""
    import hashlib

    h = hashlib.sha256()
    for key in sorted(arrays):
        a = np.ascontiguousarray(arrays[key])
        h.update(f"{key}:{a.dtype.str}:{a.shape}".encode())
        h.update(a.tobytes())
    return f"{name}-{h.hexdigest()[:12]}"


def write_state(directory: Path | str, card: dict, state_file: str, **arrays) -> dict:
    """Write ``arrays`` to ``directory/state_file`` (compressed npz) and ``card.json`` with a
    SHA-256 of the arrays (names, dtypes, shapes, bytes) as its version; returns the card."""
    import io
    import json

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    (d / state_file).write_bytes(buf.getvalue())
    card = {**card, "state_file": state_file, "version": state_version(card.get("name", "generator"), arrays)}
    (d / "card.json").write_text(json.dumps(card, indent=2) + "\n")
    return card


def read_state(directory: Path | str, state_file: str) -> dict[str, np.ndarray]:
    """The arrays written by ``write_state``; a one-line DataError when missing or corrupt."""
    from discovery.errors import DataError

    path = Path(directory) / state_file
    if not path.is_file():
        raise DataError(f"generator state {str(path)!r} not found")
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except Exception as exc:
        raise DataError(f"generator state {str(path)!r} is corrupt ({type(exc).__name__})") from None


def read_card(directory: Path | str, error: type[Exception] | None = None, what: str = "generator") -> dict:
    """``card.json`` of a model directory; a one-line ``error`` (default DataError) when it is
    missing or not valid JSON, naming the file and that no trained ``what`` is there."""
    import json

    from discovery.errors import DataError

    error = error or DataError
    path = Path(directory) / "card.json"
    if not path.is_file():
        raise error(f"model card {str(path)!r} not found (no trained {what} there)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise error(f"model card {str(path)!r} is not valid JSON ({exc})") from None
