"""How well a generator's samples hit real compositions it never saw.

Definitions (every figure is for one batch of samples; keys are reduced-composition keys):
- ``empty_or_unary_pct``: samples with fewer than two elements (not compounds);
- ``unique_pct``: distinct compounds / compound samples;
- ``novel_pct``: distinct compounds not in the training set / distinct compounds;
- ``precision_pct``: held-out compositions among the novel distinct compounds / novel ones;
- ``yield_per_100k``: distinct held-out compositions proposed, per 100,000 samples;
- ``recovery_pct``: distinct held-out compositions proposed / held-out compositions.
"""

from __future__ import annotations

import numpy as np

from discovery.encoding import composition_keys


def recovery_metrics(counts: np.ndarray, train_keys: np.ndarray, holdout_keys: np.ndarray) -> dict:
    """Validity, uniqueness, novelty, precision and yield of count vectors [N, 85]."""
    counts = np.asarray(counts)
    n = len(counts)
    compound = (counts > 0).sum(axis=1) >= 2
    uniq = np.unique(composition_keys(counts[compound]))
    novel = uniq[~np.isin(uniq, train_keys)]
    hits = int(np.isin(novel, holdout_keys).sum())
    holdout = np.unique(holdout_keys)
    return {
        "samples": n,
        "empty_or_unary_pct": float(100.0 * (1 - compound.mean())) if n else 0.0,
        "unique_pct": 100.0 * len(uniq) / max(int(compound.sum()), 1),
        "novel_pct": 100.0 * len(novel) / max(len(uniq), 1),
        "precision_pct": 100.0 * hits / max(len(novel), 1),
        "holdout_hits": hits,
        "yield_per_100k": 1e5 * hits / max(n, 1),
        "recovery_pct": 100.0 * hits / max(len(holdout), 1),
    }
