"""Ion substitution (Hautier et al. 2011): swap one ion of a known composition for another.

Fit: each training composition gets its most probable charge-neutral oxidation-state
assignment over the species of pymatgen's data-mined substitution table
(``SubstitutionProbability``; probability of a species = its marginal ``px`` in that table).
Compositions with no such assignment (intermetallics, carbides, hydrides...) are skipped and
counted in the card, or with ``element_swaps`` swap elements through charge-0 pseudo-species
(``with_element_species``; registry name ``substitution-elements``). Sample: pick a source
composition, one of its sites (species), and a new species by the conditional substitution
probability P(new | old) of the table, among species of the same charge (so the result keeps
its charges balanced) whose element is not already in the composition. The count at the site
is kept.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from discovery.elements import ELEMENTS as ELEMENT_SYMBOLS
from discovery.elements import INDEX, N_ELEMENTS
from discovery.errors import ConfigError
from discovery.generation.base import BlockGenerator, read_card, read_state, write_state
from discovery.generation.training import training_counts

ALPHA = -5.0  # pymatgen's default lambda of never-observed pairs
STATE_FILE = "substitution.npz"


@dataclass(frozen=True)
class SpeciesTable:
    """pymatgen's substitution table restricted to species of the 85 elements.

    ``lam[i, j]`` is ``SubstitutionProbability.get_lambda(i, j)`` (``alpha`` when never
    observed) and ``px[i]`` its ``get_px(i)``, so exp(lam[new, old]) / px[old] is pymatgen's
    ``cond_prob(new, old)``.
    """

    species: list[str]
    elem: np.ndarray  # [S] element index
    charge: np.ndarray  # [S] oxidation state
    lam: np.ndarray  # [S, S]
    px: np.ndarray  # [S]
    observed: np.ndarray  # [S, S] bool: the pair is in the table (else lam = alpha)

    @classmethod
    def from_pymatgen(cls, alpha: float = ALPHA) -> SpeciesTable:
        return _pymatgen_table(float(alpha))

    def arrays(self) -> dict[str, np.ndarray]:
        return {"species": np.array(self.species), "species_elem": self.elem,
                "species_charge": self.charge, "lam": self.lam, "px": self.px, "observed": self.observed}

    @classmethod
    def from_arrays(cls, z: dict) -> SpeciesTable:
        return cls([str(x) for x in z["species"]], z["species_elem"].astype(np.int64),
                   z["species_charge"].astype(np.int64), z["lam"], z["px"], z["observed"].astype(bool))


@functools.lru_cache(maxsize=4)
def _pymatgen_table(alpha: float) -> SpeciesTable:
    from pymatgen.core.structure_prediction.substitution_probability import SubstitutionProbability

    sp = SubstitutionProbability(alpha=alpha)
    every = sorted(sp.species, key=lambda s: (s.symbol, s.oxi_state))
    pos = {s: i for i, s in enumerate(every)}
    lam = np.full((len(every), len(every)), alpha)
    seen = np.zeros(lam.shape, dtype=bool)
    for pair, value in sp._l.items():  # the observed pairs (what get_lambda looks up)
        a, b = (*pair, *pair)[:2]  # a frozenset of one species pairs it with itself
        if a in pos and b in pos:
            lam[pos[a], pos[b]] = lam[pos[b], pos[a]] = value
            seen[pos[a], pos[b]] = seen[pos[b], pos[a]] = True
    # pymatgen's get_px, summed in a fixed order (its own sum follows set order, which
    # varies between processes in the last bits)
    px = np.array([math.fsum(np.exp(row)) for row in lam])
    keep = sorted((i for i, s in enumerate(every) if s.symbol in INDEX and s.oxi_state),
                  key=lambda i: (INDEX[every[i].symbol], every[i].oxi_state))
    ix = np.array(keep)
    return SpeciesTable([str(every[i]) for i in keep], np.array([INDEX[every[i].symbol] for i in keep]),
                        np.array([int(round(every[i].oxi_state)) for i in keep]), lam[np.ix_(ix, ix)],
                        px[ix], seen[np.ix_(ix, ix)])


def with_element_species(t: SpeciesTable, alpha: float = ALPHA) -> SpeciesTable:
    """The table plus one charge-0 pseudo-species per element ('Fe0'), for compositions with
    no ionic assignment: its lambda with another element's pseudo-species is the log mean of
    exp(lambda) over their species pairs (observed when any pair is); pseudo-species pair with
    no ion (lambda = alpha, unobserved), so same-charge swaps keep them apart."""
    els = np.unique(t.elem)
    s, e = len(t.species), len(els)
    a = np.zeros((e, s))
    a[np.searchsorted(els, t.elem), np.arange(s)] = 1
    lam_el = np.log((a @ np.exp(t.lam) @ a.T) / np.outer(a.sum(1), a.sum(1)))
    lam = np.full((s + e, s + e), alpha)
    lam[:s, :s], lam[s:, s:] = t.lam, lam_el
    seen = np.zeros(lam.shape, dtype=bool)
    seen[:s, :s], seen[s:, s:] = t.observed, (a @ t.observed @ a.T) > 0
    return SpeciesTable([*t.species, *(f"{ELEMENT_SYMBOLS[x]}0" for x in els)], np.r_[t.elem, els],
                        np.r_[t.charge, np.zeros(e, dtype=np.int64)], lam,
                        np.r_[t.px, np.exp(lam_el).sum(1)], seen)


def assign_species(counts: np.ndarray, elem: np.ndarray, charge: np.ndarray, score: np.ndarray,
                   max_assignments: int = 2_000_000) -> np.ndarray:
    """Most probable charge-neutral species per composition, vectorised.

    ``counts`` [N, 85]; species given by element index, charge and log-probability ``score``.
    Returns species indices [N, 85] (-1 where the element is absent) maximising the summed
    score among assignments with sum(charge * count) = 0; rows with no neutral assignment
    are all -1. Ties go to the first assignment in species order.
    """
    c = np.asarray(counts, dtype=np.int64)
    out = np.full(c.shape, -1, dtype=np.int64)
    by_elem = [np.flatnonzero(elem == e) for e in range(N_ELEMENTS)]
    n_opt_el = np.array([len(x) for x in by_elem], dtype=np.int64)
    width = max(1, int(n_opt_el.max()))
    opts = np.full((N_ELEMENTS, width), -1, dtype=np.int64)
    for e, x in enumerate(by_elem):
        opts[e, : len(x)] = x
    present = c > 0
    m = present.sum(1)
    k = int(m.max(initial=0))
    if k == 0:
        return out
    # Each row's elements in column order, padded to k slots (padding: element -1, 1 option)
    order = np.argsort(~present, axis=1, kind="stable")[:, :k]
    slot_el = np.where(np.take_along_axis(present, order, 1), order, -1)
    slot_n = np.where(slot_el >= 0, np.take_along_axis(c, order, 1), 0)
    n_opt = np.where(slot_el >= 0, n_opt_el[np.maximum(slot_el, 0)], 1)
    total = n_opt.prod(1)  # 0 when an element has no species: no assignment
    cum = np.cumsum(total)
    lo = 0
    while lo < len(c):
        base = cum[lo - 1] if lo else 0
        hi = max(int(np.searchsorted(cum, base + max_assignments, side="right")), lo + 1)
        t = total[lo:hi]
        owner = np.repeat(np.arange(lo, hi), t)
        rest = np.arange(int(t.sum())) - np.repeat(np.cumsum(t) - t, t)
        q = np.zeros(len(owner), dtype=np.int64)
        s = np.zeros(len(owner))
        picks = np.empty((len(owner), k), dtype=np.int64)
        for p in range(k):
            rest, d = np.divmod(rest, n_opt[owner, p])
            el = slot_el[owner, p]
            sp = np.where(el >= 0, opts[np.maximum(el, 0), d], -1)
            picks[:, p] = sp
            q += np.where(sp >= 0, charge[np.maximum(sp, 0)] * slot_n[owner, p], 0)
            s += np.where(sp >= 0, score[np.maximum(sp, 0)], 0.0)
        ok = q == 0
        s = np.where(ok, s, -np.inf)
        if len(owner):
            # best assignment per row: the first maximum within each owner's segment
            best = np.full(hi - lo, -np.inf)
            np.maximum.at(best, owner - lo, s)
            is_best = ok & (s == best[owner - lo])
            idx = np.flatnonzero(is_best)
            first = idx[np.unique(owner[idx], return_index=True)[1]]
            rows = owner[first]
            for p in range(k):
                el = slot_el[rows, p]
                has = el >= 0
                out[rows[has], el[has]] = picks[first[has], p]
        lo = hi
    return out


class IonSubstitution(BlockGenerator):
    """Known compositions with one ion swapped by data-mined substitution probabilities."""

    name = "substitution"

    def __init__(self, source_counts: np.ndarray | None = None, source_species: np.ndarray | None = None,
                 table: SpeciesTable | None = None, same_charge: bool = True, two_site: float = 0.0,
                 sharpness: float = 4.0, observed_only: bool = True, alpha: float = ALPHA,
                 element_swaps: bool = False, card: dict | None = None):
        super().__init__(card)
        self.counts = None if source_counts is None else np.asarray(source_counts, dtype=np.int8)
        self.species_of = None if source_species is None else np.asarray(source_species, dtype=np.int16)
        self.table = table
        if not 0.0 <= two_site <= 1.0:
            raise ConfigError(f"two_site must be a probability in [0, 1], got {two_site}")
        if not sharpness > 0:
            raise ConfigError(f"sharpness must be positive, got {sharpness}")
        self.same_charge, self.two_site = bool(same_charge), float(two_site)
        self.sharpness, self.observed_only, self.alpha = float(sharpness), bool(observed_only), float(alpha)
        self.element_swaps = bool(element_swaps)
        self._tables()

    def _tables(self) -> None:
        t = self.table
        if t is None:
            return
        # log P(new | old) = lambda(new, old) - log px(old) (pymatgen's cond_prob), times the
        # sharpness; -inf for the same element, other charges (same_charge) and pairs never
        # observed (observed_only). Rows: old species; columns: new.
        logp = self.sharpness * (t.lam - np.log(t.px)[:, None])
        if self.observed_only:
            logp[~t.observed] = -np.inf
        logp[t.elem[:, None] == t.elem[None, :]] = -np.inf
        if self.same_charge:
            logp[t.charge[:, None] != t.charge[None, :]] = -np.inf
        self._logp = logp

    # ----------------------------------------------------------------- fit / save / load
    def fit(self, formulas, seed: int = 0) -> IonSubstitution:
        """Assign oxidation states to the training compositions (formulas or counts [N, 85])."""
        counts = training_counts(formulas)
        t = SpeciesTable.from_pymatgen(self.alpha)
        assigned = assign_species(counts, t.elem, t.charge, np.log(t.px / t.px.sum()))
        present = counts > 0
        ionic = (assigned >= 0).sum(1) == present.sum(1)
        if self.element_swaps:  # the rest swap elements through pseudo-species
            n_ions = len(t.species)
            t = with_element_species(t, self.alpha)
            pseudo = np.full(N_ELEMENTS, -1)
            pseudo[t.elem[n_ions:]] = np.arange(n_ions, len(t.species))
            assigned = np.where(ionic[:, None], assigned, np.where(present, pseudo[None, :], -1))
        self.table = t
        ok = ((assigned >= 0).sum(1) == present.sum(1)) & (present.sum(1) >= 2)
        self.counts, self.species_of = counts[ok], assigned[ok].astype(np.int16)
        self._tables()
        import pymatgen.core

        self.card.update({
            "name": self.name, "kind": "substitution",
            "training_compositions": int(len(counts)), "sources": int(ok.sum()),
            "sources_ionic": int((ok & ionic).sum()),
            "skipped_no_neutral_assignment": int((~ok).sum()),
            "pymatgen_version": pymatgen.core.__version__, "species": len(t.species),
            **self._settings(),
            "fit_summary": f"{int((ok & ionic).sum()):,} of {len(counts):,} compositions have a "
                           "charge-neutral assignment of table species"
                           + (f", {int((ok & ~ionic).sum()):,} more swap elements"
                              if self.element_swaps else "") + f"; {int((~ok).sum()):,} skipped",
        })
        return self

    def save(self, directory: Path | str) -> None:
        self._require_fit()
        rows, cols = np.nonzero(self.counts)
        self.card = write_state(directory, {**self.card, **self._settings()}, STATE_FILE,
                                n=len(self.counts), rows=rows.astype(np.int32), cols=cols.astype(np.int8),
                                counts=self.counts[rows, cols], species_at=self.species_of[rows, cols],
                                **self.table.arrays())

    @classmethod
    def load(cls, directory: Path | str) -> IonSubstitution:
        card = read_card(directory)
        z = read_state(directory, STATE_FILE)
        n = int(z["n"])
        counts = np.zeros((n, N_ELEMENTS), dtype=np.int8)
        species_of = np.full((n, N_ELEMENTS), -1, dtype=np.int16)
        counts[z["rows"], z["cols"]] = z["counts"]
        species_of[z["rows"], z["cols"]] = z["species_at"]
        return cls(counts, species_of, SpeciesTable.from_arrays(z), card=card,
                   **{k: card[k] for k in ("same_charge", "two_site", "sharpness", "observed_only", "alpha",
                                           "element_swaps") if k in card})

    def _settings(self) -> dict:
        return {"same_charge": self.same_charge, "two_site": self.two_site, "sharpness": self.sharpness,
                "observed_only": self.observed_only, "alpha": self.alpha, "element_swaps": self.element_swaps}

    def _require_fit(self) -> None:
        if self.counts is None or self.table is None:
            raise ConfigError(f"generator {self.name!r} is not fitted: call fit() or load() first")

    # ----------------------------------------------------------------- sampling
    def _block(self, rng: np.random.Generator, size: int) -> np.ndarray:
        src = rng.integers(0, len(self.counts), size)
        out = self.counts[src].copy()
        sp = self.species_of[src].astype(np.int64)
        first = self._swap(out, sp, rng, exclude_col=None)
        if self.two_site > 0:
            again = rng.random(size) < self.two_site
            rows = np.flatnonzero(again)
            sub, sub_sp = out[rows], sp[rows]
            self._swap(sub, sub_sp, rng, exclude_col=first[rows])
            out[rows] = sub
        return out

    def _swap(self, out: np.ndarray, sp: np.ndarray, rng: np.random.Generator,
              exclude_col: np.ndarray | None) -> np.ndarray:
        """Swap one site per row in place (``sp`` updated too); returns the new element column
        (-1 where no swap was possible). ``exclude_col``: a column that may not be picked."""
        b = len(out)
        r = np.arange(b)
        eligible = sp >= 0
        if exclude_col is not None:
            eligible[r[exclude_col >= 0], exclude_col[exclude_col >= 0]] = False
        # a uniformly chosen eligible site: Gumbel-max over the eligible columns
        site = np.where(eligible, rng.random((b, N_ELEMENTS)), -1.0).argmax(1)
        old = sp[r, site]
        elem = self.table.elem
        keys = self._logp[np.maximum(old, 0)] + rng.gumbel(size=(b, len(elem)))
        keys[(out > 0)[:, elem]] = -np.inf  # the new element must not be there already
        new = keys.argmax(1)
        ok = (old >= 0) & np.isfinite(keys[r, new])
        col = np.where(ok, elem[new], -1)
        rr = r[ok]
        out[rr, col[ok]] = out[rr, site[ok]]
        out[rr, site[ok]] = 0
        sp[rr, col[ok]] = new[ok]
        sp[rr, site[ok]] = -1
        return col


__all__ = ["IonSubstitution", "SpeciesTable", "assign_species", "with_element_species"]
