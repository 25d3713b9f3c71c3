"""Decomposition energy: how far a composition's energy lies from the convex hull of known phases.

For a candidate of chemical system S (its set of elements) the hull is the lower convex hull
of every known phase whose elements lie within S, elements at 0 eV/atom, in the space of atomic
fractions × formation energy per atom. ``e_hull = E_f(candidate) − E_hull(x)``: positive, the
candidate would decompose into the hull's phases at x by that much energy per atom; negative, it
lies below every known mix (a predicted new stable compound).

Speed: the hull energy at x is a small linear programme, min Σ λ_i E_i over mixes of the
system's phases (elements included, at 0) with Σ λ_i x_i = x and λ ≥ 0, whose optimal basis is
the decomposition. ``evaluate`` solves it for every candidate at once with a batched simplex
method in numpy (``batched_hull_lp``): the elements are a feasible first basis, and each pivot is
a batch of k×k solves, so a chemical system seen once (most candidates of a screen) costs a few
matrix products instead of a qhull call. ``system_hull`` keeps the facet construction (qhull, as
pymatgen's ``PhaseDiagram`` builds it) for leave-one-out hulls and as the fallback for the rare
programme that does not settle within its pivot limit. The answers equal
``PhaseDiagram.get_decomp_and_e_above_hull(..., allow_negative=True)`` (tested to 1e-6 eV/atom).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.spatial import ConvexHull, QhullError

from discovery.elements import ELEMENTS, N_ELEMENTS
from discovery.encoding import parse_formulas

log = logging.getLogger(__name__)

# |ΔHf| beyond this is a data error, not chemistry: the most exothermic real compounds (rare-earth
# fluorides, EuF2 −4.57 eV/atom in OQMD) stay above −5; the OQMD tables also hold Mg2Tc at −198.7
# and CuPaU2 at +43.5 eV/atom.
FORMATION_LIMIT = 5.0
MAX_ELEMENTS = 8
_FORMATION_TOL = 1e-11  # pymatgen's PhaseDiagram.formation_energy_tol
_DECOMP_TOL = 1e-8  # pymatgen's PhaseDiagram.numerical_tol
_LP_BATCH = 4096  # candidates per batched simplex call
_PAD_ENERGY = 1e9  # energy of padding rows: never worth entering a basis
_CACHE_VERSION = 1
_BITS = (np.uint64(1) << np.arange(64, dtype=np.uint64))


def system_masks(present: np.ndarray) -> np.ndarray:
    """Chemical systems as two uint64 words [N, 2] (bits of elements 0..63 and 64..84)."""
    present = np.asarray(present, dtype=bool)
    lo = (present[:, :64] * _BITS).sum(axis=1, dtype=np.uint64)
    hi = (present[:, 64:] * _BITS[: N_ELEMENTS - 64]).sum(axis=1, dtype=np.uint64)
    return np.stack([lo, hi], axis=1)


def _as_int(mask: np.ndarray) -> int:
    return int(mask[0]) | (int(mask[1]) << 64)


def _elements_of(system: int) -> list[int]:
    out = []
    while system:
        low = system & -system
        out.append(low.bit_length() - 1)
        system ^= low
    return out


@dataclass
class SystemHull:
    """The lower hull of one chemical system: its elements and, per facet, the chemical
    potentials μ [F, k] and the phases at its vertices [F, k] (−1 − e for element e)."""

    elements: np.ndarray  # [k] element indices
    mu: np.ndarray  # [F, k]
    vertices: np.ndarray  # [F, k]
    vertex_fractions: np.ndarray  # [F, k, k]: row v = fractions of vertex v over the k elements


@dataclass
class StabilityResult:
    """Per composition: the hull energy, ``e_hull`` (NaN where it cannot be computed, with the
    reason in ``note``), and the decomposition into competing phases."""

    hull_energy: np.ndarray
    e_hull: np.ndarray
    decomposition: list[str]
    note: list[str]

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame({"hull_energy": self.hull_energy, "e_hull": self.e_hull,
                             "decomposition": self.decomposition, "note": self.note})


def _pretty_names(amounts: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """Reduced formulas in the codec's order (Li2O, not Li2O1), where the amounts are integers."""
    from discovery.encoding import counts_to_formulas, reduce_counts

    names = np.asarray(fallback, dtype=object).copy()
    integer = np.all(np.abs(amounts - np.rint(amounts)) < 1e-6, axis=1)
    names[integer] = counts_to_formulas(reduce_counts(np.rint(amounts[integer]).astype(np.int64)))
    return names


def _dense(el: np.ndarray, frac: np.ndarray) -> np.ndarray:
    """Sparse rows (element indices [M, 8], -1 for none; fractions [M, 8]) as [M, 85]."""
    a = np.zeros((len(el), N_ELEMENTS))
    r, c = np.nonzero(el >= 0)
    a[r, el[r, c]] = frac[r, c]
    return a


def batched_hull_lp(x: np.ndarray, points: np.ndarray, energies: np.ndarray, tol: float = 1e-12,
                    max_pivots: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Lower-hull energy at each x by the primal simplex method, batched over rows.

    x [R, k] fractions (rows sum to 1, all > 0); points [R, M, k] phase fractions whose first k
    rows are the identity (the elements, energy 0; padding rows are zeros with a huge energy);
    energies [R, M]. Returns (hull energy [R], basis [R, k] row indices into points, weights
    [R, k] atom fractions of the basis phases, converged [R]). Dantzig's rule; a row that has not
    settled after ``max_pivots`` (or whose batch met a singular basis) is reported unconverged
    for the caller to solve otherwise.
    """
    r_all, m, k = points.shape
    basis = np.broadcast_to(np.arange(k), (r_all, k)).copy()
    lam = np.array(x, dtype=np.float64)
    done = np.zeros(r_all, dtype=bool)
    active = np.arange(r_all)
    for _ in range(max_pivots or 4 * m + 20):
        if not len(active):
            break
        p, e, b = points[active], energies[active], basis[active]
        bmat = np.take_along_axis(p, b[..., None], axis=1)  # [A, k, k]: basis phases as rows
        try:
            mu = np.linalg.solve(bmat, np.take_along_axis(e, b, axis=1)[..., None])[..., 0]
        except np.linalg.LinAlgError:  # a (numerically) singular basis: leave these rows unsettled
            break
        reduced = e - np.einsum("amk,ak->am", p, mu)
        enter = reduced.argmin(axis=1)
        best = reduced[np.arange(len(active)), enter]
        settled = best >= -tol * np.maximum(1.0, np.abs(mu).max(axis=1))
        done[active[settled]] = True
        go = ~settled
        active, p, b, enter, bmat = active[go], p[go], b[go], enter[go], bmat[go]
        if not len(active):
            break
        col = p[np.arange(len(active)), enter]  # [A, k]
        try:
            d = np.linalg.solve(np.swapaxes(bmat, 1, 2), col[..., None])[..., 0]
        except np.linalg.LinAlgError:
            break
        la = lam[active]
        ratio = np.where(d > 1e-9, la / np.where(d > 1e-9, d, 1.0), np.inf)  # no pivot on round-off
        leave = ratio.argmin(axis=1)
        step = ratio[np.arange(len(active)), leave]
        la = np.maximum(la - step[:, None] * d, 0.0)
        la[np.arange(len(active)), leave] = step
        b[np.arange(len(active)), leave] = enter
        lam[active], basis[active] = la, b
    e_basis = np.take_along_axis(energies, basis, axis=1)
    return (lam * e_basis).sum(axis=1), basis, lam, done


def _solve_batch(systems: np.ndarray, data: list[tuple], x_full: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``batched_hull_lp`` for candidates of one element count: ``data[systems[i]]`` are row i's
    system points (``PhaseHulls._system_points``), padded to one size, and ``x_full`` [n, 85] its
    compositions. Returns (hull energy, basis labels, basis weights, settled)."""
    n = len(systems)
    k = len(data[systems[0]][0])
    m = max(len(data[s][1]) for s in np.unique(systems))
    pts = np.zeros((n, m, k))
    energy = np.full((n, m), _PAD_ENERGY)
    labels = np.zeros((n, m), dtype=np.int64)
    els = np.zeros((n, k), dtype=np.int64)
    order = np.argsort(systems, kind="stable")
    cuts = np.flatnonzero(np.r_[True, systems[order][1:] != systems[order][:-1], True])
    for a, b in zip(cuts[:-1], cuts[1:], strict=True):  # one assignment per system
        sel = order[a:b]
        e, p, en, lab = data[systems[sel[0]]]
        pts[sel, :len(p)], energy[sel, :len(p)], labels[sel, :len(p)], els[sel] = p, en, lab, e
    value, basis, weights, ok = batched_hull_lp(np.take_along_axis(x_full, els, axis=1), pts, energy)
    return value, np.take_along_axis(labels, basis, axis=1), weights, ok


def plausible_formation_energies(values, limit: float = FORMATION_LIMIT) -> np.ndarray:
    """Mask of |ΔHf| ≤ ``limit`` eV/atom (False for data errors and NaN)."""
    return np.abs(np.asarray(values, dtype=np.float64)) <= limit


def clean_formation_energies(df: pd.DataFrame, column: str = "formation_enthalpy",
                             limit: float = FORMATION_LIMIT) -> tuple[pd.DataFrame, int]:
    """Drop rows with |ΔHf| > ``limit`` eV/atom (data errors); returns (kept, dropped count)."""
    ok = plausible_formation_energies(df[column], limit)
    return df[ok].reset_index(drop=True), int((~ok).sum())


class PhaseHulls:
    """Known phases (compositions and formation energies per atom) and their convex hulls.

    ``amounts`` [M, 85] need not be normalised; energies are eV/atom relative to the elements.
    Phases are stored sparsely (≤ 8 elements a row), so a third of a million cost a few MB.
    """

    def __init__(self, amounts: np.ndarray, energies: np.ndarray, names: Sequence[str] | None = None,
                 sources: dict | None = None):
        a = np.asarray(amounts, dtype=np.float64)
        e = np.asarray(energies, dtype=np.float64)
        if a.ndim != 2 or a.shape[1] != N_ELEMENTS or len(a) != len(e):
            raise ValueError(f"need amounts [M, {N_ELEMENTS}] and energies [M], got {a.shape} and {e.shape}")
        total = a.sum(axis=1)
        ok = (total > 0) & np.isfinite(e) & ((a > 0).sum(axis=1) <= MAX_ELEMENTS)
        raw, a, e = a[ok], a[ok] / total[ok, None], e[ok]
        if names is None:  # formulas of the amounts where they are integers
            names = _pretty_names(raw, np.array([f"phase{i}" for i in np.flatnonzero(ok)], dtype=object))
        else:
            names = np.asarray(names, dtype=object)[ok]
        self.names = names
        self._labels_named = None  # names by label + N_ELEMENTS (elements reversed, then phases),
        # built on first use from ``names``: reset wherever ``names`` changes (``without``)
        self.sources = dict(sources or {})
        self.covered = (a > 0).any(axis=0)  # elements that occur in some known phase
        neg = e < -_FORMATION_TOL  # only phases below the elements can be on a lower hull
        a, e, self.names = a[neg], e[neg], self.names[neg]
        self.energies = e
        order = np.argsort(~(a > 0), axis=1, kind="stable")[:, :MAX_ELEMENTS]
        self.el = np.where(np.take_along_axis(a, order, 1) > 0, order, -1).astype(np.int16)  # [M, 8]
        self.frac = np.take_along_axis(a, order, 1)  # [M, 8]
        masks = system_masks(a > 0)
        self._by_system: dict[int, np.ndarray] = {}
        if len(masks):
            uniq, inverse = np.unique(masks, axis=0, return_inverse=True)
            inverse = inverse.ravel()
            by = np.argsort(inverse, kind="stable")
            bounds = np.searchsorted(inverse[by], np.arange(len(uniq) + 1))
            for j, m in enumerate(uniq):
                self._by_system[_as_int(m)] = by[bounds[j]:bounds[j + 1]]
        self._cache: dict[int, SystemHull] = {}
        self._points: dict[int, tuple] = {}

    def __len__(self) -> int:
        return len(self.energies)

    @classmethod
    def from_table(cls, df: pd.DataFrame, column: str = "formation_enthalpy",
                   limit: float = FORMATION_LIMIT, source: str = "table") -> PhaseHulls:
        """Phases from a ``formula`` / energy table, dropping |ΔHf| > ``limit`` and unparsable
        rows; what was dropped is counted in ``sources``."""
        kept, outliers = clean_formation_energies(df, column, limit)
        batch = parse_formulas(kept["formula"].tolist())
        sources = {"source": source, "rows": int(len(df)), "outliers_dropped": outliers,
                   "limit_ev_per_atom": limit, "unparsable_dropped": int((~batch.valid).sum())}
        if outliers:
            log.info("%s: dropped %d phases with |formation energy| > %g eV/atom", source, outliers, limit)
        a, ok = batch.amounts[batch.valid], batch.valid
        return cls(a, kept[column].to_numpy()[ok], _pretty_names(a, kept["formula"].to_numpy()[ok]), sources)

    @classmethod
    def oqmd(cls, splits: Sequence[str] = ("train", "val", "test"), cache: Path | None = None) -> PhaseHulls:
        """The known phases of the run: crabnet's OQMD formation enthalpies (DFT), cleaned."""
        from discovery.data import load_oqmd_formation_enthalpy

        df = pd.concat([load_oqmd_formation_enthalpy(s, cache) for s in splits], ignore_index=True)
        # one entry per reduced formula across splits (the splits are disjoint; kept for safety)
        df = df.sort_values("formation_enthalpy", kind="stable").drop_duplicates("formula")
        return cls.from_table(df, source=f"crabnet OQMD_Formation_Enthalpy ({'+'.join(splits)})")

    # ------------------------------------------------------------------ hulls
    def _phases_in(self, system: int) -> np.ndarray:
        ids = []
        sub = system
        while sub:  # every non-empty subset of the system's elements
            hit = self._by_system.get(sub)
            if hit is not None:
                ids.append(hit)
            sub = (sub - 1) & system
        return np.concatenate(ids) if ids else np.zeros(0, dtype=np.int64)

    def clear_cache(self) -> None:
        """Forget the chemical systems' points and hulls kept so far (recomputed when asked
        again, to the same values). A 1e6 run's candidates touch ~108,000 systems, ~175 MiB."""
        self._cache.clear()
        self._points.clear()

    def system_hull(self, system: int, exclude: int | None = None) -> SystemHull:
        """The (cached) lower hull of a chemical system given as an element bitmask; with
        ``exclude``, the hull without that phase (by position; not cached)."""
        if exclude is not None:
            return self._compute(system, exclude)
        hull = self._cache.get(system)
        if hull is None:
            hull = self._compute(system)
            if len(self._cache) > 500_000:  # bound memory on very long runs
                self._cache.clear()
            self._cache[system] = hull
        return hull

    def _system_points(self, system: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(elements [k], fractions [k + m, k], energies [k + m], labels [k + m]) of a system:
        the k elements first (label −1 − e), then its m known phases below the elements (cached)."""
        got = self._points.get(system)
        if got is None:
            got = self._gather(system, self._phases_in(system))
            if len(self._points) > 500_000:
                self._points.clear()
            self._points[system] = got
        return got

    def _gather(self, system: int, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        els = np.array(_elements_of(system))
        k, m = len(els), len(ids)
        pts = np.zeros((k + m, k))
        pts[:k] = np.eye(k)
        e_idx = self.el[ids]
        r, c = np.nonzero(e_idx >= 0)
        pts[k + r, np.searchsorted(els, e_idx[r, c])] = self.frac[ids][r, c]
        energy = np.zeros(k + m)
        energy[k:] = self.energies[ids]
        return els, pts, energy, np.concatenate([-1 - els, ids])

    def _compute(self, system: int, exclude: int | None = None) -> SystemHull:
        if exclude is None:
            els, pts, energy, labels = self._system_points(system)
        else:
            ids = self._phases_in(system)
            els, pts, energy, labels = self._gather(system, ids[ids != exclude])
        k = len(els)
        m = len(pts) - k
        if k == 1 or m == 0:  # the elements' plane
            v = np.arange(k)[None, :]
            return SystemHull(els, np.zeros((1, k)), labels[v], pts[v])
        # points in (k-1) fraction coordinates + energy, and one point above all (pymatgen's
        # trick) so the hull is full-dimensional
        data = np.empty((k + m + 1, k))
        data[:-1, :-1], data[:-1, -1] = pts[:, 1:], energy
        data[-1, :-1], data[-1, -1] = 1.0 / k, energy.max() + 1
        try:
            facets = ConvexHull(data, qhull_options="Qt").simplices
        except QhullError:
            facets = ConvexHull(data, qhull_options="QJ").simplices
        facets = facets[(facets != k + m).all(axis=1)]
        vf = pts[facets]  # [F, k, k]
        mat = data[facets]
        mat[..., -1] = 1.0
        ok = np.abs(np.linalg.det(mat)) > 1e-14  # drop vertical facets, as pymatgen does
        facets, vf = facets[ok], vf[ok]
        mu = np.linalg.solve(vf, energy[facets][..., None])[..., 0]  # chemical potentials
        return SystemHull(els, mu, labels[facets], vf)

    # ------------------------------------------------------------------ queries
    def evaluate(self, amounts: np.ndarray, energies: np.ndarray | None = None,
                 decompose: bool = True) -> StabilityResult:
        """Hull energy, e_hull (when ``energies`` are given) and decomposition per composition.

        A composition with an element that no known phase contains gets NaN and the reason in
        ``note``: its hull would be that element alone, and the number would mean nothing.
        """
        a = np.asarray(amounts, dtype=np.float64)
        n = len(a)
        total = a.sum(axis=1)
        hull = np.full(n, np.nan)
        decomp = [""] * n
        note = [""] * n
        present = a > 0
        n_el = present.sum(axis=1)
        uncovered = present & ~self.covered
        ok = (total > 0) & ~uncovered.any(axis=1) & (n_el <= MAX_ELEMENTS)
        for i in np.flatnonzero(~ok):
            if total[i] <= 0:
                note[i] = "empty composition"
            elif n_el[i] > MAX_ELEMENTS:
                note[i] = f"more than {MAX_ELEMENTS} elements"
            else:
                missing = ", ".join(ELEMENTS[e] for e in np.flatnonzero(uncovered[i]))
                note[i] = f"no known phase contains {missing}: no hull to measure against"
        idx = np.flatnonzero(ok)
        if len(idx):
            x_all = a[idx] / total[idx, None]
            masks = system_masks(present[idx])
            uniq, inverse = np.unique(masks, axis=0, return_inverse=True)
            inverse = inverse.ravel()
            data = [self._system_points(_as_int(m)) for m in uniq]
            kk = np.array([len(d[0]) for d in data])
            mm = np.array([len(d[1]) for d in data])
            row_k, row_m = kk[inverse], mm[inverse]
            slow: list[int] = []
            for k in np.unique(kk):
                rows_k = np.flatnonzero(row_k == k)
                rows_k = rows_k[np.argsort(row_m[rows_k], kind="stable")]  # little padding
                for start in range(0, len(rows_k), _LP_BATCH):
                    rows = rows_k[start:start + _LP_BATCH]
                    value, labels, weights, ok = _solve_batch(inverse[rows], data, x_all[rows])
                    hull[idx[rows[ok]]] = value[ok]
                    if decompose:
                        texts = self._describe_rows(labels[ok], weights[ok])
                        for r, text in zip(idx[rows[ok]].tolist(), texts, strict=True):
                            decomp[r] = text
                    slow += rows[~ok].tolist()
            for r in slow:  # did not settle within the pivot limit: the facets of the system
                hull[idx[r]], labels, weights = self.facet_solution(_as_int(uniq[inverse[r]]), x_all[r])
                if decompose:
                    decomp[idx[r]] = self._describe(labels, weights)
        e_hull = np.asarray(energies, dtype=np.float64) - hull if energies is not None else np.full(n, np.nan)
        return StabilityResult(hull, e_hull, decomp, note)

    def facet_solution(self, system: int, x: np.ndarray, exclude: int | None = None
                       ) -> tuple[float, np.ndarray, np.ndarray]:
        """Hull energy at one composition x [85] from the system's facets (qhull; ``exclude`` as
        in ``system_hull``), the facet's phases (labels) and their atom fractions there."""
        h = self.system_hull(system, exclude)
        xs = x[h.elements]
        planes = h.mu @ xs
        best = int(planes.argmax())
        return float(planes[best]), h.vertices[best], np.linalg.solve(h.vertex_fractions[best].T, xs)

    def _describe_rows(self, vertices: np.ndarray, weights: np.ndarray) -> list[str]:
        """``_describe`` of each row of vertices and weights [n, k], ordered in numpy: with no two
        shares of a row within 1e-8 of each other, largest first is the order rounding to 9
        places gives (float64 shares: float32 ones round in float32); rows with such near ties
        go through ``_describe`` (a 1e6 run's 319,370 candidates took ~3 s row by row)."""
        w = np.asarray(weights, dtype=np.float64)
        if w.size == 0:
            return [""] * len(w)
        lab = np.asarray(vertices, dtype=np.int64)
        order = np.argsort(-w, axis=1, kind="stable")
        w, lab = np.take_along_axis(w, order, axis=1), np.take_along_axis(lab, order, axis=1)
        shown = w > _DECOMP_TOL
        near = (shown[:, 1:] & (w[:, :-1] - w[:, 1:] < 1e-8)).any(axis=1)
        if self._labels_named is None:
            self._labels_named = np.array([*ELEMENTS[::-1], *map(str, self.names)], dtype=object)
        names = self._labels_named[lab + N_ELEMENTS]  # label -1 - e is element e
        out = []
        for i, (nm, wi, keep) in enumerate(zip(names.tolist(), w.tolist(), shown.tolist(), strict=True)):
            if near[i]:
                out.append(self._describe(vertices[i], weights[i]))
            else:
                out.append(" + ".join(f"{n} ({x:.3f})" for n, x, k in zip(nm, wi, keep, strict=True) if k))
        return out

    def _describe(self, vertices: np.ndarray, weights: np.ndarray) -> str:
        """'Al2Te3 (0.556) + Al (0.444)': the facet's phases by atom fraction, largest first."""
        named = [(ELEMENTS[-1 - lab] if lab < 0 else str(self.names[lab]), w)
                 for lab, w in zip(vertices, weights, strict=True) if w > _DECOMP_TOL]
        named.sort(key=lambda p: (-round(p[1], 9), p[0]))  # equal shares: by name, not by round-off
        return " + ".join(f"{name} ({w:.3f})" for name, w in named)

    def leave_one_out_hull_energy(self, amounts: np.ndarray, energies: np.ndarray) -> np.ndarray:
        """Hull energy of each known composition on the hull of all *other* phases (Bartel et
        al.'s decomposition energy is E_f − this). A phase above the hull does not shape it, so
        only compositions on the hull get a hull of their own, without their own phase."""
        a = np.asarray(amounts, dtype=np.float64)
        x = a / a.sum(axis=1, keepdims=True)
        hull = self.hull_energy(x)
        masks = system_masks(x > 0)
        for i in np.flatnonzero(np.asarray(energies) <= hull + 1e-9):  # on the hull
            system = _as_int(masks[i])
            own = [j for j in self._by_system.get(system, ())
                   if np.allclose(self.frac[j], np.where(self.el[j] >= 0, x[i, self.el[j]], 0), atol=1e-9)]
            hull[i] = self.facet_solution(system, x[i], exclude=int(own[0]) if own else None)[0]
        return hull

    def hull_energy(self, amounts: np.ndarray) -> np.ndarray:
        """Energy of the lowest mix of known phases at each composition (eV/atom)."""
        return self.evaluate(amounts, decompose=False).hull_energy

    def stable_only(self) -> PhaseHulls:
        """Only the phases at a vertex of their own chemical system's hull. Exact for every hull
        query: a phase above the hull of its own system stays above it in every larger system
        (the larger hull restricted to that face is the same hull), so it never shapes a hull.
        Not for leave-one-out hulls, where removing a stable phase can expose another."""
        own = system_masks(self.el_present())
        uniq = np.unique(own, axis=0)
        keep = np.zeros(len(self), dtype=bool)
        for m in uniq:
            v = self.system_hull(_as_int(m)).vertices
            keep[v[v >= 0]] = True
        out = self.without(np.flatnonzero(~keep))
        out.sources = {**self.sources, "on_own_hull": int(keep.sum()), "negative_phases": len(self)}
        return out

    def amounts(self) -> np.ndarray:
        """Atom fractions [M, 85] of the stored phases (they are kept sparse)."""
        return _dense(self.el, self.frac)

    def el_present(self) -> np.ndarray:
        """Element presence [M, 85] of the stored phases."""
        return self.amounts() > 0

    def save(self, path: Path) -> None:
        """The phases as a compressed .npz (atomic write), for a fast ``load``."""
        import json

        from discovery.atomic import atomic_write

        def write(p: Path) -> None:
            with open(p, "wb") as fh:  # a file object: np.savez on a path would append '.npz'
                np.savez_compressed(fh, el=self.el, frac=self.frac, energies=self.energies,
                                    names=self.names.astype(str), covered=self.covered,
                                    sources=np.array(json.dumps(self.sources)))

        atomic_write(Path(path), write)

    @classmethod
    def load(cls, path: Path) -> PhaseHulls:
        import json

        with np.load(path, allow_pickle=False) as z:
            out = cls(_dense(z["el"], z["frac"]), z["energies"], z["names"].astype(object),
                      json.loads(str(z["sources"])))
            out.covered = z["covered"]
        return out

    def without(self, phase_ids: np.ndarray) -> PhaseHulls:
        """A copy without the given phases (by position in this object), e.g. leave-one-out."""
        keep = np.ones(len(self), dtype=bool)
        keep[np.asarray(phase_ids, dtype=np.int64)] = False
        out = object.__new__(PhaseHulls)
        out.__dict__.update(self.__dict__)
        out.energies, out.el, out.frac, out.names = (self.energies[keep], self.el[keep],
                                                     self.frac[keep], self.names[keep])
        remap = np.cumsum(keep) - 1
        out._by_system = {m: remap[ids[keep[ids]]] for m, ids in self._by_system.items()
                          if keep[ids].any()}
        out._cache, out._points, out._labels_named = {}, {}, None
        return out


SHIPPED_PHASES = Path(__file__).resolve().parent / "resources" / "known_phases.npz"


def default_hulls(cache: Path | None = None) -> PhaseHulls | None:
    """The run's known phases: OQMD's DFT formation enthalpies (``PhaseHulls.oqmd``), shipped in
    the package (``resources/known_phases.npz``, built by ``pipelines/resources/build_known_phases.py``)
    so a machine with only PyPI gets the same e_hull. Without the shipped file they are parsed
    from the fetched crabnet tables once into the data cache; None, with a one-line warning,
    when neither is there."""
    if cache is None and SHIPPED_PHASES.is_file():
        return PhaseHulls.load(SHIPPED_PHASES)
    from discovery.data import cache_dir
    from discovery.errors import DataError

    cache = cache or cache_dir()
    tables = [cache / "crabnet" / f"oqmd_formation_enthalpy_{s}.parquet" for s in ("train", "val", "test")]
    if not all(t.is_file() for t in tables):
        log.warning("no OQMD formation energies in %s: e_hull is left empty (run `discover data fetch`)",
                    cache)
        return None
    saved = cache / f"phase_hulls_v{_CACHE_VERSION}.npz"
    newest = max(t.stat().st_mtime for t in tables)
    if saved.is_file() and saved.stat().st_mtime >= newest:
        try:
            return PhaseHulls.load(saved)
        except Exception as exc:  # a damaged cache is rebuilt, not fatal
            log.warning("%s unreadable (%s); rebuilding it", saved, exc)
    try:
        hulls = PhaseHulls.oqmd(cache=cache)
    except DataError as exc:
        log.warning("e_hull is left empty: %s", exc)
        return None
    hulls.save(saved)
    return hulls


def stability_metrics(ef_true: np.ndarray, ef_pred: np.ndarray, hull_energy: np.ndarray,
                      threshold: float = 0.0, hull_pred: np.ndarray | None = None) -> dict[str, float]:
    """Bartel et al.'s figures: formation-energy MAE, decomposition-energy MAE, and stability
    classification (stable: ΔHd = E_f − hull ≤ ``threshold``) precision, recall, F1, accuracy,
    and the discovery acceleration factor (precision ÷ the share of truly stable ones).

    ``hull_pred``: the hull the predicted ΔHd is measured against when it is not the DFT one
    (Bartel's own protocol puts every competing phase at its predicted energy)."""
    ef_true, ef_pred, hull = (np.asarray(v, dtype=np.float64) for v in (ef_true, ef_pred, hull_energy))
    hull_p = hull if hull_pred is None else np.asarray(hull_pred, dtype=np.float64)
    d_true, d_pred = ef_true - hull, ef_pred - hull_p
    t, p = d_true <= threshold, d_pred <= threshold
    tp, fp, fn = int((t & p).sum()), int((~t & p).sum()), int((t & ~p).sum())
    precision = tp / (tp + fp) if tp + fp else float("nan")
    recall = tp / (tp + fn) if tp + fn else float("nan")
    f1 = 2 * precision * recall / (precision + recall) if tp else 0.0
    return {"n": int(len(t)), "ef_mae": float(np.abs(ef_pred - ef_true).mean()),
            "ed_mae": float(np.abs(d_pred - d_true).mean()), "stable_share": float(t.mean()),
            "precision": precision, "recall": recall, "f1": f1, "accuracy": float((t == p).mean()),
            "daf": precision / t.mean() if t.any() else float("nan"),
            "f1_all_stable": 2 * t.mean() / (1 + t.mean()) if t.any() else 0.0}
