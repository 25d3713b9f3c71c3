"""The generator protocol the pipeline samples from, and the seeded splits generators train on.

A generator knows nothing of the pipeline: it turns (n, seed, batch_size) into int8 count
vectors [B, 85] (column order ``discovery.elements.ELEMENTS``, 0 = absent). Rows may be empty
or single-element; the pipeline counts and drops those.
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


class Generator(ABC):
    """A seeded source of compositions with a name and a model card.

    Subclasses implement ``iter_counts`` (and ``fit``/``save``/``load`` when they learn from
    data). The same (n, seed) must give the same rows whatever ``batch_size`` is.
    """

    name: str = "generator"

    def __init__(self, card: dict | None = None):
        self.card: dict = dict(card or {})

    @abstractmethod
    def iter_counts(self, n: int, seed: Seed = 0, batch_size: int = 8192) -> Iterator[np.ndarray]:
        """Yield int8 count batches [<= batch_size, 85] totalling n rows."""

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

    def sample_counts(self, n: int, seed: Seed = 0, batch_size: int = 8192) -> np.ndarray:
        parts = list(self.iter_counts(n, seed, batch_size))
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
    """A generator whose rows are drawn in fixed blocks of ``BLOCK`` rows, block b from the
    stream seeded by (seed, b): the same (n, seed) gives the same rows for every batch size.
    Subclasses implement ``_block(rng, size)``."""

    BLOCK = 4096

    @abstractmethod
    def _block(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """``size`` int8 count rows [size, 85] drawn from ``rng``."""

    def _require_fit(self) -> None:
        """Raise ConfigError when the generator has not been fitted or loaded."""

    def iter_counts(self, n: int, seed: Seed = 0, batch_size: int = 8192) -> Iterator[np.ndarray]:
        from discovery.errors import ConfigError

        self._require_fit()
        if n < 0:
            raise ConfigError(f"number of samples must be >= 0, got {n}")
        if batch_size <= 0:
            raise ConfigError(f"batch size must be positive, got {batch_size}")
        size = self.BLOCK
        blocks = (self._block(np.random.default_rng(seed_sequence(seed, b)), min(size, n - b * size))
                  for b in range(-(-n // size)))
        yield from rechunk(blocks, batch_size)


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
    from discovery.data import DataError

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

    from discovery.data import DataError

    error = error or DataError
    path = Path(directory) / "card.json"
    if not path.is_file():
        raise error(f"model card {str(path)!r} not found (no trained {what} there)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise error(f"model card {str(path)!r} is not valid JSON ({exc})") from None
