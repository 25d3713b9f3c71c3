"""How well a generator's samples hit real compositions it never saw.

Definitions (every figure is for one batch of samples; keys are reduced-composition keys):
- ``empty_or_unary_pct``: samples with fewer than two elements (not compounds);
- ``unique_pct``: distinct compounds / compound samples;
- ``novel_pct``: distinct compounds not in the training set / distinct compounds;
- ``precision_pct``: held-out compositions among the novel distinct compounds / novel ones;
- ``yield_per_100k``: distinct held-out compositions proposed, per 100,000 samples;
- ``recovery_pct``: distinct held-out compositions proposed / held-out compositions.

With ``oxidation_states`` (the pipeline's vectorised SMACT screen, ``smact_screen``):
- ``cn_pct`` / ``en_pct``: distinct compounds that are charge neutral / also
  electronegativity balanced (EN balance implies a neutral assignment);
- ``precision_cnen_pct``: held-out among the novel distinct compounds passing CN + EN / those
  passing; ``yield_cnen_per_100k`` and ``recovery_cnen_pct`` likewise after the screen (what
  the pipeline would keep).

With ``train_counts``: ``pattern_distance_pts``, the total-variation distance between the
count-pattern shares ('2-1-1', '1-1-1', ...; reduced counts, so Fe4O6 is '3-2') of the
samples and of the training set, in percentage points (0: the same stoichiometry mix, 100:
disjoint). Every sample counts, so empty rows are a pattern of their own.
"""

from __future__ import annotations

import numpy as np

from discovery.encoding import composition_keys, reduce_counts


def pattern_shares(counts: np.ndarray) -> dict[str, float]:
    """Share of each count pattern (nonzero counts high to low, '3-2' for Fe2O3; '' empty)."""
    c = -np.sort(-np.asarray(counts, dtype=np.int16), axis=1)
    width = max(int((c > 0).sum(1).max(initial=0)), 1)
    rows, n = np.unique(c[:, :width], axis=0, return_counts=True)
    total = max(int(n.sum()), 1)
    return {"-".join(map(str, r[r > 0])): k / total for r, k in zip(rows, n, strict=True)}


def pattern_distance(a: dict[str, float], b: dict[str, float]) -> float:
    """Total-variation distance between two pattern-share dicts, in percentage points."""
    return 50.0 * sum(abs(a.get(k, 0.0) - b.get(k, 0.0)) for k in set(a) | set(b))


def recovery_metrics(counts: np.ndarray, train_keys: np.ndarray, holdout_keys: np.ndarray,
                     oxidation_states: str | None = None, train_counts: np.ndarray | None = None) -> dict:
    """Validity, uniqueness, novelty, precision and yield of count vectors [N, 85] (see the
    module docstring); CN / EN figures with ``oxidation_states``, the pattern distance with
    ``train_counts``."""
    counts = np.asarray(counts)
    n = len(counts)
    compound = (counts > 0).sum(axis=1) >= 2
    keys, first = np.unique(composition_keys(counts[compound]), return_index=True)
    is_novel = ~np.isin(keys, train_keys)
    is_hit = is_novel & np.isin(keys, holdout_keys)
    novel, hits = int(is_novel.sum()), int(is_hit.sum())
    holdout = max(len(np.unique(holdout_keys)), 1)
    out = {
        "samples": n,
        "distinct": len(keys),  # distinct compounds
        "novel": novel,  # of them, not in the training set
        "empty_or_unary_pct": float(100.0 * (1 - compound.mean())) if n else 0.0,
        "unique_pct": 100.0 * len(keys) / max(int(compound.sum()), 1),
        "novel_pct": 100.0 * novel / max(len(keys), 1),
        "precision_pct": 100.0 * hits / max(novel, 1),
        "holdout_hits": hits,
        "yield_per_100k": 1e5 * hits / max(n, 1),
        "recovery_pct": 100.0 * hits / holdout,
    }
    if oxidation_states is not None:
        from discovery.filters.chemistry import smact_screen

        cn, en = smact_screen(counts[compound][first], oxidation_states)
        kept = is_novel & en
        hits_en = int((is_hit & en).sum())
        out.update({
            "cn_pct": 100.0 * cn.sum() / max(len(keys), 1),
            "en_pct": 100.0 * en.sum() / max(len(keys), 1),
            "precision_cnen_pct": 100.0 * hits_en / max(int(kept.sum()), 1),
            "holdout_hits_cnen": hits_en,
            "yield_cnen_per_100k": 1e5 * hits_en / max(n, 1),
            "recovery_cnen_pct": 100.0 * hits_en / holdout,
        })
    if train_counts is not None:
        out["pattern_distance_pts"] = pattern_distance(pattern_shares(reduce_counts(counts)),
                                                       pattern_shares(reduce_counts(train_counts)))
    return out
