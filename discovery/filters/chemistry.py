"""Charge neutrality and electronegativity balance with SMACT's semantics, vectorised.

Reproduces ``smact.screening.smact_validity(comp, use_pauling_test=False|True,
include_alloys=False, oxidation_states_set=SET)`` for integer count vectors:

- one element: valid (SMACT's fast path); no element: invalid;
- an element with no oxidation state in the set: invalid;
- charge-neutral when some assignment of one oxidation state per element gives
  sum(ox_i * n_i) = 0 with n the gcd-reduced counts;
- electronegativity-balanced when some neutral assignment also passes SMACT's Pauling test:
  every element has a Pauling electronegativity and each cation's is strictly below each
  anion's.

Instead of looping over compositions, every (composition, oxidation-state assignment) pair
of a chunk becomes one row of flat numpy arrays, so the work is a few vector operations.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from discovery.elements import ELEMENTS, N_ELEMENTS

OXIDATION_STATE_SETS: tuple[str, ...] = ("smact14", "icsd16", "icsd24", "pymatgen_sp")
_SMACT_ATTR = {"smact14": "oxidation_states_smact14", "icsd16": "oxidation_states_icsd16",
               "icsd24": "oxidation_states_icsd24", "pymatgen_sp": "oxidation_states_sp"}


class OxidationStateError(ValueError):
    """An oxidation-state set SMACT does not ship."""


@dataclass(frozen=True)
class OxidationTable:
    """Per-element oxidation states (padded) and Pauling electronegativities from SMACT."""

    name: str
    states: np.ndarray  # [85, L] int16, padded with 0
    n_states: np.ndarray  # [85] int64
    pauling: np.ndarray  # [85] float64, NaN where SMACT has none

    @classmethod
    def load(cls, name: str = "smact14") -> OxidationTable:
        if name not in _SMACT_ATTR:
            raise OxidationStateError(f"unknown oxidation-state set {name!r}; use one of "
                                      f"{', '.join(OXIDATION_STATE_SETS)}")
        from smact import Element

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            elems = [Element(s) for s in ELEMENTS]
        lists = [sorted(set(getattr(e, _SMACT_ATTR[name]) or [])) for e in elems]
        width = max(1, max(len(s) for s in lists))
        states = np.zeros((N_ELEMENTS, width), dtype=np.int16)
        for i, s in enumerate(lists):
            states[i, : len(s)] = s
        pauling = np.array([np.nan if e.pauling_eneg is None else e.pauling_eneg for e in elems])
        return cls(name, states, np.array([len(s) for s in lists], dtype=np.int64), pauling)


_TABLES: dict[str, OxidationTable] = {}


def oxidation_table(name: str = "smact14") -> OxidationTable:
    if name not in _TABLES:
        _TABLES[name] = OxidationTable.load(name)
    return _TABLES[name]


def smact_screen(counts: np.ndarray, oxidation_states: str = "smact14", max_pairs: int = 4_000_000,
                 dp_above: int = 100_000) -> tuple[np.ndarray, np.ndarray]:
    """(charge_neutral, electronegativity_balanced) masks for integer count vectors [N, 85].

    Compositions with more than ``dp_above`` oxidation-state assignments (many elements with
    many states) are decided by dynamic programming over reachable charge sums instead.
    """
    table = oxidation_table(oxidation_states)
    c = np.asarray(counts)
    n_el = (c > 0).sum(axis=1)
    cn = n_el == 1
    en = cn.copy()
    multi = np.flatnonzero(n_el >= 2)
    if len(multi) == 0:
        return cn, en
    rows, cols = np.nonzero(c[multi])
    vals = c[multi][rows, cols].astype(np.int64)
    starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
    sizes = np.diff(np.r_[starts, len(rows)])
    vals //= np.repeat(np.gcd.reduceat(vals, starts), sizes)
    n_pairs = np.multiply.reduceat(table.n_states[cols].astype(np.float64), starts)  # may be huge
    big = np.flatnonzero(n_pairs > dp_above)
    for j in big:
        seg = slice(starts[j], starts[j] + sizes[j])
        cn[multi[j]], en[multi[j]] = _screen_dp(cols[seg], vals[seg], table)
    if len(big):
        small = n_pairs <= dp_above
        keep_rows = np.repeat(small, sizes)
        multi, cols, vals, sizes = multi[small], cols[keep_rows], vals[keep_rows], sizes[small]
        n_pairs = n_pairs[small]
        if len(multi) == 0:
            return cn, en
        starts = np.r_[0, np.cumsum(sizes)[:-1]]
        rows = np.repeat(np.arange(len(multi)), sizes)
    n_pairs = n_pairs.astype(np.int64)
    # Chunk compositions so that the flat (composition, assignment) arrays stay bounded.
    cum = np.cumsum(n_pairs)
    row_end = np.r_[starts[1:], len(rows)]
    lo = 0
    while lo < len(multi):
        base = cum[lo - 1] if lo else 0
        hi = max(int(np.searchsorted(cum, base + max_pairs, side="right")), lo + 1)
        seg = slice(starts[lo], row_end[hi - 1])
        ok_cn, ok_en = _screen_chunk(cols[seg], vals[seg], sizes[lo:hi], n_pairs[lo:hi], table)
        cn[multi[lo:hi]] = ok_cn
        en[multi[lo:hi]] = ok_en
        lo = hi
    return cn, en


def _screen_chunk(cols, vals, sizes, n_pairs, table: OxidationTable):
    g, m_max = len(sizes), int(sizes.max())
    # Padded per-composition element slots: element index, reduced count, number of states.
    pos = np.arange(len(cols)) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    comp = np.repeat(np.arange(g), sizes)
    elem = np.zeros((g, m_max), dtype=np.int64)
    cnt = np.zeros((g, m_max), dtype=np.int64)
    nst = np.ones((g, m_max), dtype=np.int64)
    elem[comp, pos], cnt[comp, pos], nst[comp, pos] = cols, vals, table.n_states[cols]
    total = int(n_pairs.sum())
    width = table.states.shape[1]
    # contrib[j, p, s]: charge of slot p of composition j in its s-th oxidation state.
    contrib = (table.states[elem].astype(np.int32) * cnt[:, :, None].astype(np.int32)).ravel()
    owner = np.repeat(np.arange(g, dtype=np.int32), n_pairs)
    first_pair = (np.cumsum(n_pairs) - n_pairs).astype(np.int32)
    rest = np.arange(total, dtype=np.int32) - np.repeat(first_pair, n_pairs)
    charge = np.zeros(total, dtype=np.int32)
    base = owner * np.int32(m_max * width)
    digits = []
    for p in range(m_max):
        rest, d = np.divmod(rest, np.repeat(nst[:, p].astype(np.int32), n_pairs))
        digits.append(d)
        charge += contrib[base + np.int32(p * width) + d]
    flat_states = table.states.ravel().astype(np.int64)
    neutral = charge == 0
    ok_cn = np.bincount(owner[neutral], minlength=g) > 0
    # Pauling test on the neutral assignments only (few): cations below anions, all EN known.
    idx = np.flatnonzero(neutral)
    o = owner[idx]
    cat_max = np.full(len(idx), -np.inf)
    an_min = np.full(len(idx), np.inf)
    missing = np.zeros(len(idx), dtype=bool)
    for p in range(m_max):
        present = p < sizes[o]
        e = elem[o, p]
        ox = flat_states[e * width + digits[p][idx]]
        x = table.pauling[e]
        missing |= present & np.isnan(x)
        cat_max = np.where(present & (ox > 0), np.fmax(cat_max, x), cat_max)
        an_min = np.where(present & (ox < 0), np.fmin(an_min, x), an_min)
    passes = ~missing & (cat_max < an_min)
    ok_en = np.bincount(o[passes], minlength=g) > 0
    return ok_cn, ok_en


def _reachable_zero(options: list[list[int]]) -> bool:
    """Whether one choice per list sums to zero (a set of reachable partial sums)."""
    sums = {0}
    for opts in options:
        if not opts:
            return False
        sums = {a + b for a in sums for b in opts}
    return 0 in sums


def _screen_dp(cols: np.ndarray, vals: np.ndarray, table: OxidationTable) -> tuple[bool, bool]:
    """Exact verdicts for one composition with many assignments.

    Charge neutrality: zero is a reachable sum of ox * n. Pauling balance: some threshold t
    splits the elements so that those with EN < t are never anions and the rest never
    cations, and a neutral assignment respects that split (cation EN < t <= anion EN is
    exactly "every cation below every anion").
    """
    states = [table.states[e, : table.n_states[e]].tolist() for e in cols]
    cn = _reachable_zero([[ox * int(n) for ox in st] for st, n in zip(states, vals, strict=True)])
    x = table.pauling[cols]
    if not cn or np.isnan(x).any():
        return cn, False
    for t in [*np.unique(x), np.inf]:
        options = [[ox * int(n) for ox in st if (ox >= 0 if xe < t else ox <= 0)]
                   for st, n, xe in zip(states, vals, x, strict=True)]
        if _reachable_zero(options):
            return cn, True
    return cn, False
