"""The "enhanced random" baseline: number of elements, the elements and their counts drawn
independently from a training set's frequencies. What a generator must beat on recovery."""

from __future__ import annotations

import numpy as np

from discovery.elements import MAX_COUNT, N_ELEMENTS


class EnhancedRandom:
    """Fit on integer count vectors [N, 85]; sample count vectors with the same marginals."""

    def fit(self, counts: np.ndarray) -> EnhancedRandom:
        c = np.asarray(counts)
        present = c > 0
        n_el = present.sum(axis=1)
        self.n_elements_p = np.bincount(n_el, minlength=N_ELEMENTS + 1) / len(c)
        self.element_p = present.sum(axis=0) / present.sum()
        vals = c[present].astype(np.int64)
        self.count_p = np.bincount(vals, minlength=MAX_COUNT + 1)[1:] / len(vals)
        return self

    def sample_counts(self, n: int, seed: int = 0) -> np.ndarray:
        rng = np.random.default_rng(seed)
        out = np.zeros((n, N_ELEMENTS), dtype=np.int8)
        k = rng.choice(len(self.n_elements_p), size=n, p=self.n_elements_p)
        for m in np.unique(k):
            rows = np.flatnonzero(k == m)
            if m == 0:
                continue
            # m distinct elements per row, weighted: Gumbel top-k over log-frequencies.
            keys = np.log(self.element_p + 1e-300) + rng.gumbel(size=(len(rows), N_ELEMENTS))
            els = np.argpartition(-keys, m - 1, axis=1)[:, :m]
            cnt = rng.choice(MAX_COUNT, size=(len(rows), m), p=self.count_p) + 1
            out[rows[:, None], els] = cnt
        return out
