"""Seeded train/validation splits of the generator training sets, by unique composition.

Generators are trained and selected only on ``oqmd_gan_formulas.csv`` and
``mp_compositions.csv``; every learned generator and ``pipelines/bench/bench_generators.py`` use
these splits, so validation compositions are never seen in training.
"""

from __future__ import annotations

import numpy as np

from discovery.encoding import composition_keys, first_occurrences
from discovery.errors import ConfigError
from discovery.generation.training import training_counts

SOURCES = ("mp", "oqmd", "union")
VAL_FRACTION = 0.1
SPLIT_SEED = 0


# Reduced integer count vectors [N, 85], one per composition, in first-occurrence order
# (``training.training_set``: rows that do not parse or fit the codec are counted and warned
# about, never dropped silently).
unique_counts = training_counts


def _source_counts(source: str) -> np.ndarray:
    from discovery.data import load_gan_formulas, load_mp_compositions

    if source == "mp":
        return unique_counts(load_mp_compositions()["formula"])
    if source == "oqmd":
        return unique_counts(load_gan_formulas()["formula"])
    if source == "union":
        return unique_counts([*load_mp_compositions()["formula"], *load_gan_formulas()["formula"]])
    raise ConfigError(f"unknown training set {source!r}; use one of {', '.join(SOURCES)}")


def split_counts(counts: np.ndarray, val_fraction: float = VAL_FRACTION,
                 seed: int = SPLIT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) rows of unique count vectors, seeded."""
    perm = np.random.default_rng(seed).permutation(len(counts))
    n_val = int(round(len(counts) * val_fraction))
    return counts[np.sort(perm[n_val:])], counts[np.sort(perm[:n_val])]


def generator_split(source: str = "mp", val_fraction: float = VAL_FRACTION,
                    seed: int = SPLIT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) count vectors of a training set: 'mp', 'oqmd' or 'union'.

    'union' keeps the MP validation split out of training: its validation rows are exactly
    the 'mp' validation rows, and its training rows are everything else.
    """
    if source == "union":
        mp_tr, mp_va = split_counts(_source_counts("mp"), val_fraction, seed)
        oq = _source_counts("oqmd")
        va_keys = composition_keys(mp_va)
        oq = oq[~np.isin(composition_keys(oq), va_keys)]
        both = np.concatenate([mp_tr, oq])
        return both[first_occurrences(composition_keys(both))], mp_va
    return split_counts(_source_counts(source), val_fraction, seed)
