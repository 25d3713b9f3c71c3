"""Random baselines a generator must beat on recovery.

``EnhancedRandom`` (the issue's baseline, registry name ``random``): number of elements, the
elements and their counts drawn independently from a training set's frequencies.
``PatternSiteRandom`` (``pattern-random``), stronger: the count pattern, then each site's
element from the elements seen at that count in that pattern, so it knows the
stoichiometries and which elements take a 2, but no pairings.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from discovery.elements import MAX_COUNT, N_ELEMENTS
from discovery.encoding import count_patterns
from discovery.errors import ConfigError
from discovery.generation.base import BlockGenerator, read_card, read_state, write_state
from discovery.generation.training import training_set


def _gumbel_keys(p: np.ndarray, rng: np.random.Generator, rows: int) -> np.ndarray:
    """log p + Gumbel noise [rows, 85]: the top-k of each row is a weighted draw of k distinct
    elements without replacement."""
    return np.log(p + 1e-300) + rng.gumbel(size=(rows, N_ELEMENTS))


class _Fitted(BlockGenerator):
    """Shared fit/save/load: the fitted arrays are ``STATE`` attributes, saved as one npz."""

    STATE: tuple[str, ...] = ()
    BLOCK = 16384

    def fit(self, formulas, seed: int = 0) -> _Fitted:
        """Learn the frequencies from formulas or integer count vectors [N, 85]."""
        ts = training_set(formulas)
        if len(ts.counts) == 0:
            raise ConfigError(f"generator {self.name!r}: no training composition ({ts.summary()})")
        self._fit_counts(ts.counts.astype(np.int64))
        self.card.update({"name": self.name, "kind": self.name, "training_compositions": len(ts.counts)})
        if ts.skipped:
            self.card["skipped_rows"] = ts.skipped
        return self

    def _fit_counts(self, counts: np.ndarray) -> None:
        raise NotImplementedError

    def _require_fit(self) -> None:
        if not all(hasattr(self, k) for k in self.STATE):
            raise ConfigError(f"generator {self.name!r} is not fitted: call fit() or load() first")

    def save(self, directory: Path | str) -> None:
        self._require_fit()
        self.card = write_state(directory, {**self.card, "name": self.name}, f"{self.name}.npz",
                                **{k: getattr(self, k) for k in self.STATE})

    @classmethod
    def load(cls, directory: Path | str) -> _Fitted:
        card = read_card(directory)
        z = read_state(directory, card.get("state_file", f"{cls.name}.npz"))
        gen = cls(card)
        for k in cls.STATE:
            setattr(gen, k, z[k])
        return gen


class EnhancedRandom(_Fitted):
    """Sample count vectors with a training set's marginals: number of elements, elements
    (weighted, distinct) and counts, all independent."""

    name = "random"
    STATE = ("n_elements_p", "element_p", "count_p")

    def _fit_counts(self, c: np.ndarray) -> None:
        present = c > 0
        n_el = present.sum(axis=1)
        self.n_elements_p = np.bincount(n_el, minlength=N_ELEMENTS + 1) / len(c)
        self.element_p = present.sum(axis=0) / present.sum()
        vals = c[present].astype(np.int64)
        self.count_p = np.bincount(vals, minlength=MAX_COUNT + 1)[1:] / len(vals)

    def _block(self, rng: np.random.Generator, size: int) -> np.ndarray:
        out = np.zeros((size, N_ELEMENTS), dtype=np.int8)
        k = rng.choice(len(self.n_elements_p), size=size, p=self.n_elements_p)
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


class PatternSiteRandom(_Fitted):
    """Sample a count pattern ('2-1-1') by its frequency, then for each of its sites a
    distinct element by how often each element holds that count in that pattern."""

    name = "pattern-random"
    STATE = ("patterns", "pattern_p", "site_index", "site_p")

    def _fit_counts(self, c: np.ndarray) -> None:
        patterns, inverse, n = np.unique(count_patterns(c), return_inverse=True, return_counts=True)
        self.patterns = patterns.astype(str)
        self.pattern_p = n / n.sum()
        index, probs = [], []  # (pattern, count) -> element probabilities
        for i, label in enumerate(self.patterns):
            rows = c[inverse == i]
            for v in sorted({int(x) for x in label.split("-")} if label else ()):
                w = (rows == v).sum(axis=0).astype(np.float64)
                index.append((i, v))
                probs.append(w / w.sum())
        self.site_index = np.array(index, dtype=np.int64).reshape(-1, 2)
        self.site_p = np.array(probs, dtype=np.float64).reshape(-1, N_ELEMENTS)

    def _block(self, rng: np.random.Generator, size: int) -> np.ndarray:
        site = {(int(i), int(v)): j for j, (i, v) in enumerate(self.site_index)}
        out = np.zeros((size, N_ELEMENTS), dtype=np.int8)
        k = rng.choice(len(self.patterns), size=size, p=self.pattern_p)
        for i in np.unique(k):
            rows = np.flatnonzero(k == i)
            used = np.zeros((len(rows), N_ELEMENTS), dtype=bool)
            for v in (int(x) for x in str(self.patterns[i]).split("-") if x):
                # Gumbel-max over log-frequencies, elements already in the row excluded
                keys = _gumbel_keys(self.site_p[site[(int(i), v)]], rng, len(rows))
                keys[used] = -np.inf
                e = keys.argmax(axis=1)
                used[np.arange(len(rows)), e] = True
                out[rows, e] = v
        return out
