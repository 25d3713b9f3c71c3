"""Random symmetric structures (pyxtal) for a composition no template fits: a small
AIRSS-style search, seeded, within a budget of structures."""

from __future__ import annotations

import contextlib
import io

import numpy as np
from pymatgen.core import Composition

from discovery.structure.prototypes import Proposal, reduced_amounts

FORMULA_UNITS = (1, 2, 3, 4, 6, 8)
ATTEMPTS_PER_STRUCTURE = 15


def random_structures(comp: Composition, budget: int, seed: int, max_atoms: int) -> list[Proposal]:
    """Up to ``budget`` random structures of ``comp`` in random space groups (2-230), each with at
    most ``max_atoms`` atoms in the cell pyxtal builds; fewer when pyxtal cannot place the atoms."""
    if budget <= 0:
        return []
    from pyxtal import pyxtal

    elements, amounts = reduced_amounts(comp)
    units = [z for z in FORMULA_UNITS if z * sum(amounts) <= max_atoms]
    if not units:
        return []
    rng = np.random.default_rng(seed)
    out: list[Proposal] = []
    for _ in range(budget * ATTEMPTS_PER_STRUCTURE):
        if len(out) >= budget:
            break
        z = int(rng.choice(units))
        group = int(rng.integers(2, 231))
        crystal = pyxtal()
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                crystal.from_random(3, group, list(elements), [n * z for n in amounts],
                                    random_state=int(rng.integers(2**31 - 1)))
        except Exception:  # pyxtal raises when the Wyckoff positions cannot hold the atoms
            continue
        if not crystal.valid:
            continue
        structure = crystal.to_pymatgen()
        if len(structure) > max_atoms:
            continue
        out.append(Proposal(f"random {crystal.group.symbol} (pyxtal)", structure, 0.0))
    return out
