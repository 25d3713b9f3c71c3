"""The generator benchmark on the MP validation split (``pipelines/bench/bench_generators.py``;
also ``pipelines/select/select_lm_decoding.py`` and ``select_substitution.py``).

Novelty and held-out are leak-free for every generator: "known" is the MP training split plus
the OQMD GAN training set (everything a shipped generator was trained on), and the held-out
set is the MP validation split minus the compositions also in the OQMD set (the WGAN saw
those). Each generator may skip its own training set (``TRAINING_SET``) while sampling.
"""

from __future__ import annotations

import time

import numpy as np

from discovery.encoding import composition_keys
from discovery.generation.metrics import recovery_metrics
from discovery.generation.splits import _source_counts, generator_split

TRAINING_SET = {"lm": "union", "wgan": "oqmd", "wgan-pattern": "oqmd"}  # the rest: the MP training split


def training_keys(kind: str) -> np.ndarray:
    """Sorted unique composition keys of the training set of generator ``kind``."""
    source = TRAINING_SET.get(kind, "mp")
    counts = _source_counts("oqmd") if source == "oqmd" else generator_split(source)[0]
    return np.unique(composition_keys(counts))


def evaluation_sets() -> dict:
    """Training counts (pattern reference), known keys and held-out keys, as documented."""
    train, val = generator_split("mp")
    oqmd = composition_keys(_source_counts("oqmd"))
    val_keys = composition_keys(val)
    return {"train": train, "known": np.union1d(composition_keys(train), oqmd),
            "holdout": val_keys[~np.isin(val_keys, oqmd)], "validation": len(val)}


def bench_one(gen, n: int, seed: int, sets: dict, oxidation_states: str = "smact14",
              skip: np.ndarray | None = None) -> dict:
    """Sample n with ``seed`` (timed; without the compositions in ``skip``), then every metric."""
    t0 = time.perf_counter()
    counts = gen.sample_counts(n, seed, skip=skip)
    seconds = time.perf_counter() - t0
    m = recovery_metrics(counts, sets["known"], sets["holdout"], oxidation_states, sets["train"])
    return {**m, "seconds": seconds, "samples_per_s": n / max(seconds, 1e-9)}
