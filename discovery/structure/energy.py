"""Formation energy and e_hull of a relaxed structure in a potential's own energy frame.

Each element's reference is the lowest energy per atom among its candidate ground states, each
relaxed with the same potential (CHGNet, or SevenNet-0 for the re-ranker's own formation energy):
fcc, bcc, hcp and diamond, every AFLOW prototype of that element, and for H, N, O, F, Cl, Br and I
a diatomic molecule in a 12 Å box. References are computed once per element and potential and
cached (``<cache>/structure/<model version>/refs/<El>.json``). ``e_hull`` is the formation energy
minus the hull of the known phases (OQMD's, ``discovery.stability``).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
from pymatgen.core import Composition, Lattice, Structure

from discovery.atomic import atomic_write
from discovery.structure.settings import RelaxSettings

BOND = {"H": 0.74, "N": 1.10, "O": 1.21, "F": 1.42, "Cl": 1.99, "Br": 2.28, "I": 2.67}  # Å, X2 molecules
BOX = 12.0  # Å
BASIC = ("A_cF4_225_a", "A_cI2_229_a", "A_hP2_194_c", "A_cF8_227_a")  # fcc, bcc, hcp, diamond
MAX_REFERENCE_ATOMS = 32  # alpha-S (32 atoms) and alpha-Mn (29) are their elements' ground states
REFERENCE_SETTINGS = RelaxSettings(max_steps=400, fmax=0.03)

_HULLS: dict[str, object] = {}


def reference_candidates(symbol: str) -> list[tuple[str, Structure, bool]]:
    """(label, structure, relax the cell?) for ``symbol``'s candidate ground states."""
    from discovery.structure.prototypes import library, substitute

    out = []
    for t in library():
        if len(t.elements) != 1:
            continue
        if (t.aflow in BASIC and symbol not in BOND) or t.elements[0] == symbol:  # gases: molecules only
            prim = t.structure.get_primitive_structure()
            if len(prim) <= MAX_REFERENCE_ATOMS and t.aflow not in {o[0].split(" ")[0] for o in out
                                                                    if t.elements[0] != symbol}:
                out.append((f"{t.aflow} ({t.elements[0]})", substitute(prim, {t.elements[0]: symbol}), True))
    if symbol in BOND:
        d = BOND[symbol]
        mol = Structure(Lattice.cubic(BOX), [symbol, symbol],
                        [[0.5, 0.5, 0.5], [0.5, 0.5, 0.5 + d / BOX]], coords_are_cartesian=False)
        out.append((f"{symbol}2 molecule", mol, False))
    return out


def reference_dir(cache: Path | None = None, model: str = "chgnet") -> Path:
    """Where ``model``'s elemental references are cached: one folder per weights version."""
    from discovery.data import cache_dir
    from discovery.structure.relax import model_version, rerank_version

    version = model_version() if model == "chgnet" else rerank_version(model)
    folder = re.sub(r"[^A-Za-z0-9.+-]+", "-", version).strip("-")  # 'CHGNet 0.3.0' -> CHGNet-0.3.0
    return (cache or cache_dir()) / "structure" / folder / "refs"


def elemental_energy(symbol: str, cache: Path | None = None, model: str = "chgnet") -> float:
    """``model``'s energy per atom of ``symbol``'s lowest candidate ground state (cached)."""
    from discovery.structure.relax import relax

    path = reference_dir(cache, model) / f"{symbol}.json"
    if path.is_file():
        try:
            return float(json.loads(path.read_text())["energy_per_atom"])
        except (ValueError, KeyError, OSError):
            pass  # a damaged cache entry is recomputed
    tried = {}
    for label, structure, cell in reference_candidates(symbol):
        res = relax(structure, REFERENCE_SETTINGS, cell=cell, model=model)
        if res.ok and math.isfinite(res.energy_per_atom):
            tried[label] = res.energy_per_atom
    if not tried:
        raise RuntimeError(f"no reference structure of {symbol} relaxed")
    best = min(tried, key=tried.get)
    record = {"element": symbol, "energy_per_atom": tried[best], "structure": best, "tried": tried}
    atomic_write(path, lambda p: p.write_text(json.dumps(record, indent=1) + "\n"))
    return tried[best]


def formation_energy(comp: Composition, energy_per_atom: float, cache: Path | None = None,
                     model: str = "chgnet") -> float:
    """Energy per atom minus the atom-fraction-weighted elemental references of the same ``model``."""
    frac = comp.fractional_composition
    return energy_per_atom - sum(float(frac[el]) * elemental_energy(str(el), cache, model)
                                 for el in frac.elements)


def hulls():
    """The known phases' hulls (loaded once per process; None without phase data)."""
    if "hulls" not in _HULLS:
        from discovery.stability import default_hulls

        _HULLS["hulls"] = default_hulls()
    return _HULLS["hulls"]


def e_hull(formula: str, formation: float) -> tuple[float, str, str]:
    """(e_hull, decomposition, note) of a formation energy at ``formula`` against known phases."""
    from discovery.encoding import parse_formulas

    phases = hulls()
    if phases is None:
        return math.nan, "", "no known-phase data (discover data fetch)"
    res = phases.evaluate(parse_formulas([formula]).amounts, np.array([formation]))
    return float(res.e_hull[0]), res.decomposition[0], res.note[0]
