"""Ordered derivatives of the AFLOW templates: a candidate with one element more than a template,
two of its elements sharing the sites of one template element.

Many compounds are orderings of a simpler type: ThCr2Si2 (BaFe2As2) and CaBe2Ge2 (EuCu2Sb2) order
BaAl4's Al sites, elpasolites the B sites of a perovskite, chalcopyrite and stannite zinc blende's
cations, ZrNiAl (SmZnPd) the Fe sites of Fe2P. In CSPML's 90-crystal benchmark, 13 of the 67
crystals whose type pymatgen's AFLOW library lacks become a library prototype when two of their
elements are merged (``research/probe_derivatives.py``). The library holds only the parents, so
these are built here, as the derivative-structure enumeration of Hart and Forcade does it in a
small cell: in the template's primitive cell, and its conventional cell for orderings the
primitive cannot hold, wherever the cell holds a whole number of each of the two elements, assign
every subset of the shared element's sites of the right size to one element and the rest to the
other, and keep one decoration per class of subsets that the cell's symmetry operations map onto
each other.

A derivative's substitution score is the template's, with the shared element's term the mean of
its two substitutions', so derivatives and templates rank on one scale.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Sequence

import numpy as np
from pymatgen.core import Composition, Structure

from discovery.encoding import reduce_counts
from discovery.structure.prototypes import (
    Proposal,
    _lambda,
    _primitive,
    assignments,
    library,
    reduced_amounts,
    scaled_to_atoms,
)

MAX_SUBSETS = 5000  # site subsets enumerated per cell and split; larger cells are skipped
SYMPREC = 1e-3
ORDERING_DECAY = math.log(2)  # score units (log-odds) each further ordering of a split loses


@functools.lru_cache(maxsize=256)
def _cells(index: int) -> tuple[Structure, ...]:
    """The template's primitive and conventional cells, smallest first (one when they agree)."""
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    prim = _primitive(index)
    try:
        conv = SpacegroupAnalyzer(prim, symprec=SYMPREC).get_conventional_standard_structure()
    except Exception:  # spglib failed on the cell: the primitive alone
        return (prim,)
    return (prim,) if len(conv) == len(prim) else (prim, conv)


@functools.lru_cache(maxsize=256)
def _site_permutations(index: int, cell: int) -> tuple[np.ndarray, np.ndarray]:
    """[ops, sites] permutations of the cell's sites by its symmetry operations (centring
    translations included, from spglib through pymatgen), and which of them are pure translations."""
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    s = _cells(index)[cell]
    frac = s.frac_coords
    perms, shifts = [], []
    for op in SpacegroupAnalyzer(s, symprec=SYMPREC).get_symmetry_operations(cartesian=False):
        moved = op.operate_multi(frac)
        diff = moved[:, None, :] - frac[None, :, :]
        diff -= np.round(diff)
        dist = np.linalg.norm(diff @ s.lattice.matrix, axis=2)
        target = dist.argmin(1)
        if dist[np.arange(len(s)), target].max() > 0.01 or len(set(target)) != len(s):
            continue  # not a clean permutation at this tolerance: left out rather than guessed
        perms.append(target)
        moves = not np.array_equal(target, np.arange(len(s)))
        shifts.append(bool(np.allclose(op.rotation_matrix, np.eye(3)) and moves))
    if not perms:
        return np.arange(len(s))[None, :], np.array([False])
    return np.array(perms, dtype=np.int64), np.array(shifts)


def orderings(perms: np.ndarray, sites: Sequence[int], k: int) -> list[tuple[int, ...]]:
    """One representative per symmetry class of the ``k``-subsets of ``sites`` (cell indices)
    under ``perms`` ([ops, sites]): the lexicographically smallest of each class, the most
    symmetric orderings (smallest classes) first, then in lexicographic order. Empty when there
    are more than ``MAX_SUBSETS`` subsets."""
    if math.comb(len(sites), k) > MAX_SUBSETS:
        return []
    seen, out = set(), []
    for subset in itertools.combinations(sorted(sites), k):
        if subset in seen:
            continue
        images = {tuple(sorted(p[list(subset)])) for p in perms}
        seen |= images
        out.append((len(images), min(images)))
    return [subset for _, subset in sorted(out)]


def _splits(elements: Sequence[str], amounts: Sequence[int], template_amounts: Sequence[int]):
    """(x, y, merged elements, merged amounts): the pairs of the candidate's elements whose merge
    gives the template's stoichiometry type."""
    target = sorted(template_amounts)
    for i, j in itertools.combinations(range(len(elements)), 2):
        rest = [n for k, n in enumerate(amounts) if k not in (i, j)]
        merged = [amounts[i] + amounts[j], *rest]
        reduced = tuple(int(n) for n in reduce_counts(np.array([merged]))[0])
        if sorted(reduced) == target:
            names = [f"{elements[i]}+{elements[j]}", *(e for k, e in enumerate(elements) if k not in (i, j))]
            yield elements[i], elements[j], names, reduced


def derivatives(comp: Composition, cap: int, max_atoms: int) -> list[Proposal]:
    """Up to ``cap`` ordered derivatives of templates for ``comp``, each at most ``max_atoms``
    atoms. Template splits rank by substitution score (ties: AFLOW label, then the mapping), and a
    split's orderings, most symmetric first, each count ``ORDERING_DECAY`` less than the one before:
    a likely template's fifth ordering (EuCu2Sb2's CaBe2Ge2 type in BaAl4) comes before an
    unlikely template's first, and one template with many orderings does not fill the cap. (One
    ordering of each split in turn put that fifth one 77th, behind splits 10 log-odds less likely.)
    Splits are decorated in rank order until no further split's first ordering could enter: one
    whose cell cannot hold the ordering yields none and leaves its place to the next."""
    if cap <= 0:
        return []
    elements, amounts = reduced_amounts(comp)
    ranked = []
    for index, template in enumerate(library()):
        if len(template.elements) != len(elements) - 1:
            continue
        for x, y, names, merged in _splits(elements, amounts, template.amounts):
            # the merged pair is one pseudo-element ("x+y"), its term replaced by the mean of the two
            for score, mapping in assignments(template, names, merged):
                shared = next(old for old, new in mapping.items() if "+" in new)
                score += (_lambda(x, shared) + _lambda(y, shared)) / 2 - _lambda(mapping[shared], shared)
                ranked.append((-score, template.aflow, tuple(sorted(mapping.items())), x, y, index, shared,
                               mapping))
    ranked.sort(key=lambda r: r[:5])
    scored = []
    for rank, (neg, _, _, x, y, index, shared, mapping) in enumerate(ranked):
        if len(scored) >= cap:  # full: a split whose first ordering cannot enter ends the search
            scored.sort(key=lambda r: r[:3])
            del scored[cap:]
            if neg >= scored[-1][0]:
                break
        found = _decorate(index, mapping, shared, x, y, comp, max_atoms, -neg)
        # the split's k-th ordering (0-based) counts as half as likely as its (k-1)-th
        scored += [(neg + k * ORDERING_DECAY, rank, k, p) for k, p in enumerate(found)]
    scored.sort(key=lambda r: r[:3])
    return [p for *_, p in scored[:cap]]


def _decorate(index: int, mapping: dict[str, str], shared: str, x: str, y: str, comp: Composition,
              max_atoms: int, score: float) -> list[Proposal]:
    """The distinct orderings of ``x`` and ``y`` on ``shared``'s sites in the template's primitive
    cell, then those of its conventional cell that the primitive cannot hold (not invariant under
    the centring translations: CaBe2Ge2 in BaAl4's body-centred cell), in cells of at most
    ``max_atoms`` that hold whole numbers of both; each scaled to the candidate's atoms (the cube
    of the atomic radii, as ``prototypes.substitute``)."""
    red = comp.reduced_composition
    fx = red[x] / (red[x] + red[y])
    out = []
    for cell_index, cell in enumerate(_cells(index)):
        if len(cell) > max_atoms:
            break
        sites = [i for i, site in enumerate(cell) if str(site.specie) == shared]
        k = len(sites) * fx
        if abs(k - round(k)) > 1e-6 or round(k) in (0, len(sites)):
            continue
        perms, shifts = _site_permutations(index, cell_index)
        for subset in orderings(perms, sites, int(round(k))):
            chosen = set(subset)
            if cell_index and shifts.any() and all(set(p[list(subset)]) == chosen for p in perms[shifts]):
                continue  # the primitive cell holds this ordering: proposed there already
            species = [x if i in chosen else y if i in sites else mapping[str(site.specie)]
                       for i, site in enumerate(cell)]
            structure = scaled_to_atoms(cell, Structure(cell.lattice, species, cell.frac_coords))
            label = f"{library()[index].label} ordered {x}/{y} on {shared} #{len(out) + 1}"
            out.append(Proposal(label, structure, score))
    return out
