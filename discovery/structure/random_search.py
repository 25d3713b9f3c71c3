"""Random symmetric structures (pyxtal) for a composition no template fits: a small
AIRSS-style search, seeded, within a budget of structures.

With the ``mp-wyckoff`` prior (the default) the space groups and Wyckoff sites are the likeliest
rows of the Materials Project's table (``wyckoff_prior``: how often real crystals use them,
times a parsimony factor per extra site) that the composition fits, its elements shared out over
the sites; only the free coordinates and the lattice are random. What the prior cannot fill is
drawn as before (``uniform``): a space group from 2-230 and the sites pyxtal picks.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np
from pymatgen.core import Composition

from discovery.structure.prototypes import Proposal, reduced_amounts
from discovery.structure.settings import RANDOM_PRIORS

FORMULA_UNITS = (1, 2, 3, 4, 6, 8)
ATTEMPTS_PER_STRUCTURE = 15


def random_structures(comp: Composition, budget: int, seed: int, max_atoms: int,
                      prior: str = "mp-wyckoff") -> list[Proposal]:
    """Up to ``budget`` random structures of ``comp``, each with at most ``max_atoms`` atoms in
    the cell relaxed (the primitive cell with the prior, pyxtal's cell without); fewer when
    pyxtal cannot place the atoms."""
    if budget <= 0:
        return []
    if prior not in RANDOM_PRIORS:
        raise ValueError(f"unknown random-structure prior {prior!r}; use {' or '.join(RANDOM_PRIORS)}")
    elements, amounts = reduced_amounts(comp)
    rng = np.random.default_rng(seed)
    out = _from_prior(elements, amounts, budget, rng, max_atoms) if prior == "mp-wyckoff" else []
    return out + _uniform(elements, amounts, budget - len(out), rng, max_atoms)


def _build(group: int, elements, counts, rng: np.random.Generator, sites=None):
    from pyxtal import pyxtal

    crystal = pyxtal()
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            crystal.from_random(3, group, list(elements), list(counts), sites=sites,
                                random_state=int(rng.integers(2**31 - 1)))
    except Exception:  # pyxtal raises when the Wyckoff positions cannot hold the atoms
        return None
    return crystal if crystal.valid else None


def _from_prior(elements, amounts, budget: int, rng: np.random.Generator, max_atoms: int) -> list[Proposal]:
    from discovery.structure.wyckoff_prior import choices

    out: list[Proposal] = []
    for choice in choices(amounts, max_atoms):
        if len(out) >= budget:
            break
        labels = choice.labels()
        for _ in range(3):  # a few placements of the free coordinates before the next choice
            crystal = _build(choice.group, elements, [choice.z * a for a in amounts], rng, labels)
            if crystal is None:
                continue
            structure = crystal.to_pymatgen().get_primitive_structure()
            if len(structure) > max_atoms:
                break
            names = " ".join(f"{el}:{','.join(sites)}" for el, sites in zip(elements, labels, strict=True))
            out.append(Proposal(f"{crystal.group.symbol} {names} (pyxtal, MP Wyckoff prior)", structure, 0.0))
            break
    return out


def _uniform(elements, amounts, budget: int, rng: np.random.Generator, max_atoms: int) -> list[Proposal]:
    units = [z for z in FORMULA_UNITS if z * sum(amounts) <= max_atoms]
    out: list[Proposal] = []
    if budget <= 0 or not units:
        return out
    for _ in range(budget * ATTEMPTS_PER_STRUCTURE):
        if len(out) >= budget:
            break
        z = int(rng.choice(units))
        group = int(rng.integers(2, 231))
        crystal = _build(group, elements, [n * z for n in amounts], rng)
        if crystal is None:
            continue
        structure = crystal.to_pymatgen()
        if len(structure) > max_atoms:
            continue
        out.append(Proposal(f"random {crystal.group.symbol} (pyxtal)", structure, 0.0))
    return out
