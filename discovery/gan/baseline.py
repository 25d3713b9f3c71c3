"""Random baselines a generator must beat on recovery.

``EnhancedRandom`` (the issue's baseline): number of elements, the elements and their counts
drawn independently from a training set's frequencies. ``PatternSiteRandom``, stronger: the
count pattern, then each site's element from the elements seen at that count in that
pattern, so it knows the stoichiometries and which elements take a 2, but no pairings."""

from __future__ import annotations

import numpy as np

from discovery.elements import MAX_COUNT, N_ELEMENTS
from discovery.encoding import count_patterns


def _gumbel_keys(p: np.ndarray, rng: np.random.Generator, rows: int) -> np.ndarray:
    """log p + Gumbel noise [rows, 85]: the top-k of each row is a weighted draw of k distinct
    elements without replacement."""
    return np.log(p + 1e-300) + rng.gumbel(size=(rows, N_ELEMENTS))


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
            keys = _gumbel_keys(self.element_p, rng, len(rows))
            els = np.argpartition(-keys, m - 1, axis=1)[:, :m]
            cnt = rng.choice(MAX_COUNT, size=(len(rows), m), p=self.count_p) + 1
            out[rows[:, None], els] = cnt
        return out


class PatternSiteRandom:
    """Fit on integer count vectors [N, 85]; sample a count pattern ('2-1-1') by its frequency,
    then for each of its sites a distinct element by how often each element holds that count
    in that pattern."""

    def fit(self, counts: np.ndarray) -> PatternSiteRandom:
        c = np.asarray(counts, dtype=np.int64)
        self.patterns, inverse, n = np.unique(count_patterns(c), return_inverse=True, return_counts=True)
        self.pattern_p = n / n.sum()
        self.site_p: dict[tuple[int, int], np.ndarray] = {}  # (pattern, count) -> element probs
        for i, label in enumerate(self.patterns):
            rows = c[inverse == i]
            for v in {int(x) for x in label.split("-")} if label else ():
                w = (rows == v).sum(axis=0).astype(np.float64)
                self.site_p[(i, v)] = w / w.sum()
        return self

    def sample_counts(self, n: int, seed: int = 0) -> np.ndarray:
        rng = np.random.default_rng(seed)
        out = np.zeros((n, N_ELEMENTS), dtype=np.int8)
        k = rng.choice(len(self.patterns), size=n, p=self.pattern_p)
        for i in np.unique(k):
            rows = np.flatnonzero(k == i)
            used = np.zeros((len(rows), N_ELEMENTS), dtype=bool)
            for v in (int(x) for x in self.patterns[i].split("-") if x):
                # Gumbel-max over log-frequencies, elements already in the row excluded
                keys = _gumbel_keys(self.site_p[(i, v)], rng, len(rows))
                keys[used] = -np.inf
                e = keys.argmax(axis=1)
                used[np.arange(len(rows)), e] = True
                out[rows, e] = v
        return out
