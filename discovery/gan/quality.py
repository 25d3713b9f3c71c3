"""Generator quality: validity, diversity, novelty, element counts and recovery of held-out
real compositions, for a batch of decoded count vectors."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from discovery.encoding import composition_keys
from discovery.filters.chemistry import smact_screen

if TYPE_CHECKING:
    from discovery.known import KnownMaterials


class GeneratorQuality:
    """Scores count-vector batches against the known index and a held-out split's keys.

    Without an index (``known=None``) novelty is left out; ``smact_limit=0`` leaves out the
    charge-neutrality and electronegativity screen.
    """

    def __init__(self, known: KnownMaterials | None, holdout_keys: np.ndarray, smact_limit: int = 10_000):
        self.known = known
        self.holdout_keys = np.unique(holdout_keys)
        self.smact_limit = smact_limit

    def __call__(self, counts: np.ndarray) -> dict:
        n = len(counts)
        n_el = (counts > 0).sum(axis=1)
        ok = n_el >= 2  # a composition of at least two elements
        keys = composition_keys(counts[ok])
        uniq = np.unique(keys)
        recovered = np.isin(uniq, self.holdout_keys)
        row = {
            "samples": n,
            "decodable_pct": 100 * ok.mean(),
            "unique_pct": 100 * len(uniq) / n,
        }
        if self.known is not None:
            novel = ~self.known.contains_keys(uniq)
            row["novel_of_unique_pct"] = 100 * novel.mean() if len(uniq) else 0.0
        row["holdout_recovered"] = int(recovered.sum())
        row["holdout_recovered_pct"] = 100 * recovered.sum() / max(len(self.holdout_keys), 1)
        for k in (1, 2, 3, 4):
            row[f"elements_{k}_pct"] = 100 * (n_el == k).mean()
        row["elements_5plus_pct"] = 100 * (n_el >= 5).mean()
        sub = counts[ok][: self.smact_limit]
        if len(sub):
            cn, en = smact_screen(sub)  # equal to smact_validity, without its exponential loop
            row["charge_neutral_pct"] = 100 * cn.mean()
            row["en_balanced_pct"] = 100 * en.mean()
        return row
