"""Which space groups and Wyckoff sites a composition's crystal is likely to use: pyxtal's table
of the Materials Project's structures (``database/spg_num_wps_mp.csv``, 88,678 structures as
space group, atoms in the conventional cell, Wyckoff positions occupied, count), read as a prior
for the random search.

A row fits a composition when its sites can be shared out among the elements so that each
element's multiplicities sum to its amount times a number of formula units. Taking the likeliest
ways of doing so first puts a random structure where real crystals of that size are (the
elpasolite's 4a 4b 8c 24e of Fm-3m, ThCr2Si2's 2a 4d 4e of I4/mmm) instead of in a space group
drawn uniformly from 2-230, most of which hold such a composition badly or not at all.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

# atoms in the conventional cell per atom of the primitive one, by the lattice's centring letter
CENTRING = {"P": 1, "A": 2, "B": 2, "C": 2, "I": 2, "F": 4, "R": 3}
MAX_ASSIGNMENTS = 64  # site-to-element assignments listed per row (each is a choice)
# Pauling's parsimony rule as a factor per site beyond one per element: in pymatgen's AFLOW
# library, 147 / 71 / 29 / 15 / 8 prototypes have 0 / 1 / 2 / 3 / 4 such sites (geometric,
# maximum-likelihood ratio 0.57). Without it the many low-symmetry rows (P-1 with nine 2i
# orbits, ...) that fit almost any composition outweigh the few that real crystals of that
# stoichiometry use (K2PtCl6's 4a 8c 24e of Fm-3m for A2BX6).
PARSIMONY = 0.57


@dataclass(frozen=True)
class SiteSet:
    """One row of the table: a space group and the Wyckoff positions a structure occupies."""

    group: int
    atoms: int  # in the conventional cell
    sites: tuple[int, ...]  # indices into pyxtal's Group(group).Wyckoff_positions (0: general)
    count: int  # Materials Project structures with this space group and these sites


@functools.lru_cache(maxsize=1)
def site_sets() -> tuple[SiteSet, ...]:
    """The table as shipped in pyxtal's wheel (nothing is downloaded)."""
    from importlib.resources import files

    import pandas as pd

    path = files("pyxtal") / "database" / "spg_num_wps_mp.csv"
    with path.open() as fh:
        table = pd.read_csv(fh, dtype={"wps": str})
    return tuple(SiteSet(int(g), int(n), tuple(int(i) for i in str(w).split("-")), int(c))
                 for g, n, w, c in table[["spg", "n_atoms", "wps", "count"]].itertuples(index=False))


@functools.lru_cache(maxsize=256)
def _group(number: int):
    from pyxtal.symmetry import Group

    return Group(number)


def multiplicities(number: int, sites: Sequence[int]) -> tuple[int, ...]:
    wps = _group(number).Wyckoff_positions
    return tuple(wps[i].multiplicity for i in sites)


def site_labels(number: int, sites: Sequence[int]) -> tuple[str, ...]:
    """``("4a", "8c", ...)`` for the indices, as pyxtal's ``sites`` argument names them."""
    wps = _group(number).Wyckoff_positions
    return tuple(f"{wps[i].multiplicity}{wps[i].letter}" for i in sites)


def share_out(mults: Sequence[int], targets: Sequence[int], kinds: Sequence[int] | None = None,
              limit: int = MAX_ASSIGNMENTS) -> list[tuple[int, ...]]:
    """Assignments of sites to elements (``out[k][i]``: the element of site ``i``) whose
    multiplicities sum to each element's target. Sites of one kind (the same Wyckoff position
    used twice, as 2i 2i in P-1) are interchangeable, so each split is listed once; sites of
    different kinds (4d and 4e) are not. ``kinds`` default: every site its own. At most ``limit``."""
    kinds = list(range(len(mults))) if kinds is None else list(kinds)
    order = sorted(range(len(mults)), key=lambda i: (-mults[i], kinds[i]))
    left = list(targets)
    chosen = [0] * len(mults)
    out: list[tuple[int, ...]] = []
    if sum(mults) != sum(left):
        return out

    def walk(k: int, floor: int) -> None:
        if len(out) >= limit:
            return
        if k == len(order):
            out.append(tuple(chosen))
            return
        i = order[k]
        # sites of one kind in a row take non-decreasing elements, so a split is not listed twice
        same = k > 0 and kinds[order[k - 1]] == kinds[i]
        for e in range(floor if same else 0, len(left)):
            if left[e] >= mults[i]:
                left[e] -= mults[i]
                chosen[i] = e
                walk(k + 1, e)
                left[e] += mults[i]

    walk(0, 0)
    return out


def _fitting(amounts: Sequence[int], max_atoms: int, limit: int):
    """(row, formula units, up to ``limit`` splits) for every row that fits, in the table's order."""
    per_unit = sum(amounts)
    for row in site_sets():
        z, rest = divmod(row.atoms, per_unit)
        if rest or z < 1:
            continue
        symbol = _group(row.group).symbol
        if row.atoms // CENTRING.get(symbol[0], 1) > max_atoms:
            continue
        mults = multiplicities(row.group, row.sites)
        if sum(mults) != row.atoms:  # a row this pyxtal reads otherwise
            continue
        if splits := share_out(mults, [z * a for a in amounts], row.sites, limit=limit):
            yield row, z, splits


def candidates(amounts: Sequence[int], max_atoms: int) -> list[tuple[SiteSet, int]]:
    """Rows that fit the reduced ``amounts`` with at most ``max_atoms`` atoms in the primitive
    cell, with their formula units per conventional cell; in the table's order."""
    return [(row, z) for row, z, _ in _fitting(amounts, max_atoms, limit=1)]


@dataclass(frozen=True)
class Choice:
    """A space group with the Wyckoff sites of each element (indices, per element in order)."""

    group: int
    z: int  # formula units in the conventional cell
    sites: tuple[tuple[int, ...], ...]
    weight: float

    def labels(self) -> list[list[str]]:
        """pyxtal's ``sites`` argument: ``[["4a"], ["8c"], ["24e"]]``."""
        return [list(site_labels(self.group, s)) for s in self.sites]


@functools.lru_cache(maxsize=256)
def _orders(number: int) -> tuple[tuple[int, ...], ...]:
    """The permutations of Group(number)'s Wyckoff positions (as indices) that its Euclidean
    normalizer makes: Fm-3m's 4a and 4b, Pnma's 4a and 4b are one choice up to an origin shift."""
    group = _group(number)
    last = len(group.Wyckoff_positions) - 1
    # pyxtal lists the orders over the positions counted from the most special one
    return tuple(tuple(last - int(order[last - i]) for i in range(last + 1)) for order in group.get_orders())


def _canonical(number: int, sites: tuple[tuple[int, ...], ...]) -> tuple[tuple[int, ...], ...]:
    return min(tuple(tuple(sorted(p[i] for i in el)) for el in sites) for p in _orders(number))


def choices(amounts: Sequence[int], max_atoms: int) -> list[Choice]:
    """Every way the table's fitting rows put the elements on sites, likeliest first (ties: the
    table's order). A row's weight is its count times PARSIMONY per site beyond one per element,
    shared equally among its splits (the table does not say which element takes which site);
    splits that the normalizer maps onto each other are one choice, their weights summed."""
    merged: dict[tuple, list] = {}
    for row, z, splits in _fitting(amounts, max_atoms, MAX_ASSIGNMENTS):
        weight = row.count * PARSIMONY ** max(len(row.sites) - len(amounts), 0) / len(splits)
        for split in splits:
            per_element = tuple(tuple(sorted(row.sites[i] for i, e in enumerate(split) if e == k))
                                for k in range(len(amounts)))
            key = (row.group, z, _canonical(row.group, per_element))
            entry = merged.setdefault(key, [0.0, len(merged)])
            entry[0] += weight
    ranked = sorted(merged.items(), key=lambda kv: (-kv[1][0], kv[1][1]))
    return [Choice(group, z, sites, weight) for (group, z, sites), (weight, _) in ranked]
