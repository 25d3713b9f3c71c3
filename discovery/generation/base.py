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
        """n formulas, not deduplicated ('' where a sample has no element)."""
        return counts_to_formulas(self.sample_counts(n, seed))


def read_card(directory: Path | str) -> dict:
    """``card.json`` of a generator directory; a one-line DataError when missing or invalid."""
    import json

    from discovery.data import DataError

    path = Path(directory) / "card.json"
    if not path.is_file():
        raise DataError(f"model card {str(path)!r} not found (no trained generator there)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"model card {str(path)!r} is not valid JSON ({exc})") from None
