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

Instead of looping over compositions, every (composition, half-assignment) pair of a chunk
becomes one row of flat numpy arrays, so the work is a few vector operations.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from discovery.elements import ELEMENTS, N_ELEMENTS
from discovery.errors import OxidationStateError

OXIDATION_STATE_SETS: tuple[str, ...] = ("smact14", "icsd16", "icsd24", "pymatgen_sp")
_SMACT_ATTR = {"smact14": "oxidation_states_smact14", "icsd16": "oxidation_states_icsd16",
               "icsd24": "oxidation_states_icsd24", "pymatgen_sp": "oxidation_states_sp"}


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
                 dp_above: int = 200_000) -> tuple[np.ndarray, np.ndarray]:
    """(charge_neutral, electronegativity_balanced) masks for integer count vectors [N, 85].

    Meet in the middle: each composition's elements are split into two halves, every
    oxidation-state assignment of each half is summed, and the composition is neutral when a
    sum of one half is minus a sum of the other, so the work grows with the square root of
    the number of assignments. Electronegativity balance is the same test with the states
    restricted by a threshold t (cations below t, anions at or above it), for t at the
    electronegativity of each element that can be an anion, and +inf. Compositions whose
    half still has more than ``dp_above`` assignments are decided by dynamic programming
    over reachable sums.
    ``max_pairs`` bounds the half-assignments held in memory at once.
    """
    table = oxidation_table(oxidation_states)
    c = np.asarray(counts)
    n_el = (c > 0).sum(axis=1)
    cn = n_el == 1
    en = cn.copy()
    multi = np.flatnonzero(n_el >= 2)
    if len(multi) == 0:
        return cn, en
    sub = c[multi]
    rows, cols = np.nonzero(sub)
    vals = sub[rows, cols].astype(np.int64)
    starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
    sizes = np.diff(np.r_[starts, len(rows)])
    vals //= np.repeat(np.gcd.reduceat(vals, starts), sizes)
    slots = _Slots.build(cols, vals, starts, sizes, table)
    half_max = np.maximum(slots.n_opt[:, : slots.h].prod(1, dtype=np.float64),
                          slots.n_opt[:, slots.h :].prod(1, dtype=np.float64))
    big = half_max > dp_above
    for j in np.flatnonzero(big):
        seg = slice(starts[j], starts[j] + sizes[j])
        cn[multi[j]], en[multi[j]] = _screen_dp(cols[seg], vals[seg], table)
    small = np.flatnonzero(~big)
    s = slots.take(small)
    ok_cn = _zero_reachable(s.charge, s.n_opt, s.h, max_pairs)
    cn[multi[small]] = ok_cn
    # Pauling test: only neutral compositions whose elements all have an electronegativity.
    cand = np.flatnonzero(ok_cn & ~np.isnan(np.where(s.elem >= 0, table.pauling[s.elem], 0.0)).any(1))
    if len(cand):
        s = s.take(cand)
        virt, charge, n_opt = _threshold_rows(s, table)
        ok = _zero_reachable(charge, n_opt, s.h, max_pairs)
        en[multi[small[cand]]] = np.bincount(virt[ok], minlength=len(cand)) > 0
    return cn, en


@dataclass(frozen=True)
class _Slots:
    """Per-composition element slots, padded to [g, 2h]: the first ceil(m/2) elements of a
    composition sit in slots [0, h), the rest in [h, 2h), so a fixed split halves each one.
    Padding slots have element -1 and one option of charge 0."""

    h: int
    elem: np.ndarray  # [g, 2h] element index or -1
    ox: np.ndarray  # [g, 2h, W] oxidation state of each option (0 on padding)
    charge: np.ndarray  # [g, 2h, W] ox * reduced count
    n_opt: np.ndarray  # [g, 2h] options per slot

    @classmethod
    def build(cls, cols, vals, starts, sizes, table: OxidationTable) -> _Slots:
        g = len(sizes)
        h = int(-(-sizes.max() // 2))
        comp = np.repeat(np.arange(g), sizes)
        pos = np.arange(len(cols)) - np.repeat(starts, sizes)
        first = (sizes + 1) // 2
        slot = np.where(pos < first[comp], pos, h + pos - first[comp])
        elem = np.full((g, 2 * h), -1, dtype=np.int64)
        cnt = np.zeros((g, 2 * h), dtype=np.int64)
        elem[comp, slot], cnt[comp, slot] = cols, vals
        ox = np.where((elem >= 0)[:, :, None], table.states[np.maximum(elem, 0)], 0).astype(np.int32)
        n_opt = np.where(elem >= 0, table.n_states[np.maximum(elem, 0)], 1)
        return cls(h, elem, ox, ox * cnt[:, :, None].astype(np.int32), n_opt)

    def take(self, idx: np.ndarray) -> _Slots:
        return _Slots(self.h, self.elem[idx], self.ox[idx], self.charge[idx], self.n_opt[idx])


def _threshold_rows(s: _Slots, table: OxidationTable):
    """One virtual composition per (composition, threshold t): options restricted to cations
    with EN < t and anions with EN >= t. "Every cation below every anion" holds exactly when
    such a t exists, and then t = the lowest anion EN works (or +inf without anions), so t
    runs over the EN of the composition's elements that have a negative state, and +inf."""
    g, k, w = s.ox.shape
    x = np.where(s.elem >= 0, table.pauling[np.maximum(s.elem, 0)], np.nan)  # NaN on padding
    valid = np.arange(w)[None, None, :] < s.n_opt[:, :, None]
    can_be_anion = (valid & (s.ox < 0)).any(-1)
    thresholds = np.concatenate([np.where(can_be_anion, x, np.nan), np.full((g, 1), np.inf)], axis=1)
    usable = ~np.isnan(thresholds)
    virt, tcol = np.nonzero(usable)
    t = thresholds[virt, tcol][:, None, None]
    xv = x[virt][:, :, None]
    ox = s.ox[virt]
    allowed = valid[virt] & (((ox > 0) & (xv < t)) | ((ox < 0) & (xv >= t)) | (ox == 0))
    order = np.argsort(~allowed, axis=-1, kind="stable")  # allowed options first
    charge = np.take_along_axis(s.charge[virt], order, axis=-1)
    return virt, charge, allowed.sum(-1)


def _zero_reachable(charge: np.ndarray, n_opt: np.ndarray, h: int, max_pairs: int) -> np.ndarray:
    """Whether one option per slot sums to zero, per row: half sums matched by sorted lookup."""
    g = len(n_opt)
    out = np.zeros(g, dtype=bool)
    n1 = n_opt[:, :h].prod(1)
    n2 = n_opt[:, h:].prod(1)
    cum = np.cumsum(n1 + n2)
    lo = 0
    while lo < g:
        base = cum[lo - 1] if lo else 0
        hi = max(int(np.searchsorted(cum, base + max_pairs, side="right")), lo + 1)
        r = slice(lo, hi)
        o1, s1 = _half_sums(charge[r, :h], n_opt[r, :h], n1[r])
        o2, s2 = _half_sums(charge[r, h:], n_opt[r, h:], n2[r])
        span = int(max(np.abs(s1).max(initial=0), np.abs(s2).max(initial=0)))
        width = 2 * span + 1  # row r owns keys [r * width, (r + 1) * width)
        k1 = o1.astype(np.int64) * width + (s1 + span)
        k2 = o2.astype(np.int64) * width + (span - s2)
        if (hi - lo) * width <= 64 * max_pairs:  # a lookup table beats sorting
            seen = np.zeros((hi - lo) * width, dtype=bool)
            seen[k2] = True
            hit = seen[k1]
        else:
            hit = np.isin(k1, k2)
        out[lo:hi] = np.bincount(o1[hit], minlength=hi - lo) > 0
        lo = hi
    return out


def _half_sums(charge: np.ndarray, n_opt: np.ndarray, n: np.ndarray):
    """(owner row, charge sum) of every assignment of one half, rows with no option skipped."""
    g, k, w = charge.shape
    total = int(n.sum())
    owner = np.repeat(np.arange(g, dtype=np.int32), n)
    rest = np.arange(total, dtype=np.int32) - np.repeat((np.cumsum(n) - n).astype(np.int32), n)
    flat = charge.reshape(-1)
    base = owner * np.int32(k * w)
    s = np.zeros(total, dtype=np.int32)
    for p in range(k):
        rest, d = np.divmod(rest, np.repeat(np.maximum(n_opt[:, p], 1).astype(np.int32), n))
        s += flat[base + np.int32(p * w) + d]
    return owner, s


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
