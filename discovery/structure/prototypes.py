"""Template proposals: every AFLOW prototype (pymatgen's library, 288 structures) with the
candidate's stoichiometry type, its sites assigned the candidate's elements in the order of
Hautier's ion-substitution probability (the table the ``substitution`` generator uses), capped.

Only elements with the same amount in the reduced formula may swap sites, so an assignment
keeps the composition. An assignment's score is the sum over the template's elements of the
element-level log-probability (lambda) that the candidate's element substitutes for the
template's; the original compound of the template scores highest. Each template is scaled to the
candidate's atoms (cube of the atomic radii) before relaxation.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pymatgen.core import Composition, Element, Structure

from discovery.elements import INDEX


@dataclass(frozen=True)
class Proposal:
    """A structure to relax: where it came from (``label``), and its substitution score."""

    label: str
    structure: Structure
    score: float = 0.0


@dataclass(frozen=True)
class Template:
    aflow: str
    mineral: str
    structure: Structure  # primitive cell of the prototype's own compound
    elements: tuple[str, ...]  # in order of first appearance
    amounts: tuple[int, ...]  # reduced amounts of ``elements``

    @property
    def label(self) -> str:
        return f"{self.aflow} ({self.mineral})" if self.mineral else self.aflow


def reduced_amounts(comp: Composition) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """Elements and their integer amounts in the reduced formula (element order of ``comp``)."""
    red = comp.reduced_composition
    els = tuple(str(e) for e in red.elements)
    amounts = tuple(int(round(red[e])) for e in els)
    return els, amounts


@functools.lru_cache(maxsize=1)
def library() -> tuple[Template, ...]:
    """pymatgen's AFLOW prototype library as templates (the cell as stored; reduced on use)."""
    from pymatgen.analysis.prototypes import AFLOW_PROTOTYPE_LIBRARY

    out = []
    for entry in AFLOW_PROTOTYPE_LIBRARY:
        s = entry["snl"].structure
        if not s.is_ordered:
            continue
        els, amounts = reduced_amounts(s.composition)
        tags = entry["tags"]
        mineral = tags.get("mineral") or ""
        if mineral in ("None", "none"):
            mineral = ""
        out.append(Template(tags["aflow"], mineral, s, els, amounts))
    return tuple(out)


def prototype_matcher() -> Any:
    """pymatgen's matcher of a structure to the AFLOW library's prototypes (``get_prototypes``):
    ``PrototypeDatabaseMatcher`` over the library, or ``AflowPrototypeMatcher`` (deprecated, past its
    2026-11-15 removal date) on a pymatgen that predates it. On pymatgen 2026.10 the old class is a
    subclass of the new one over the same library; the two matched the same 23 of CSPML's 90."""
    try:
        import pandas as pd
        from pymatgen.analysis.prototypes import AFLOW_PROTOTYPE_LIBRARY
        from pymatgen.analysis.prototypes.matcher import PrototypeDatabaseMatcher
    except ImportError:
        from pymatgen.analysis.prototypes import AflowPrototypeMatcher

        return AflowPrototypeMatcher()
    return PrototypeDatabaseMatcher(pd.DataFrame(AFLOW_PROTOTYPE_LIBRARY))


@functools.lru_cache(maxsize=512)
def _primitive(index: int) -> Structure:
    return library()[index].structure.get_primitive_structure()


@functools.lru_cache(maxsize=1)
def element_lambda() -> np.ndarray:
    """[85, 85] element-level log substitution probability (pymatgen's Hautier table: the log
    mean of exp(lambda) over the two elements' species pairs; never observed: alpha)."""
    from discovery.generation.substitution import ALPHA, SpeciesTable, with_element_species

    table = SpeciesTable.from_pymatgen()
    full = with_element_species(table)
    s = len(table.species)
    els = full.elem[s:]
    lam = np.full((len(INDEX), len(INDEX)), ALPHA)
    lam[np.ix_(els, els)] = full.lam[s:, s:]
    return lam


def _lambda(new: str, old: str) -> float:
    from discovery.generation.substitution import ALPHA

    if new not in INDEX or old not in INDEX:
        return ALPHA
    return float(element_lambda()[INDEX[new], INDEX[old]])


@functools.cache
def _radius(symbol: str) -> float:
    el = Element(symbol)
    for name in ("atomic_radius", "atomic_radius_calculated", "average_ionic_radius"):
        r = getattr(el, name)  # one at a time: pymatgen warns for each one it lacks
        if r is not None and float(r) > 0:
            return float(r)
    return 1.5


def substitute(structure: Structure, mapping: dict[str, str]) -> Structure:
    """``structure`` with its elements replaced by ``mapping`` and its volume scaled by the
    ratio of the atoms' summed cubed radii (new over old)."""
    out = structure.copy()
    out.replace_species({Element(a): Element(b) for a, b in mapping.items()})
    return scaled_to_atoms(structure, out)


def scaled_to_atoms(template: Structure, decorated: Structure) -> Structure:
    """``decorated`` (``template``'s sites with other atoms on them), its volume scaled in place
    to the template's times the ratio of the atoms' summed cubed radii (new over old)."""
    old = sum(_radius(str(site.specie)) ** 3 for site in template)
    new = sum(_radius(str(site.specie)) ** 3 for site in decorated)
    decorated.scale_lattice(template.volume * new / old)
    return decorated


def assignments(template: Template, elements: Sequence[str], amounts: Sequence[int]
                ) -> list[tuple[float, dict[str, str]]]:
    """Every mapping template element -> candidate element that keeps the composition, with its
    substitution score, best first (ties: the order generated)."""
    if sorted(template.amounts) != sorted(amounts):
        return []
    groups: dict[int, tuple[list[str], list[str]]] = {}
    for el, n in zip(template.elements, template.amounts, strict=True):
        groups.setdefault(n, ([], []))[0].append(el)
    for el, n in zip(elements, amounts, strict=True):
        groups[n][1].append(el)
    per_group = [[dict(zip(olds, perm, strict=True)) for perm in itertools.permutations(news)]
                 for olds, news in groups.values()]
    out = []
    for combo in itertools.product(*per_group):
        mapping = {k: v for part in combo for k, v in part.items()}
        out.append((sum(_lambda(new, old) for old, new in mapping.items()), mapping))
    out.sort(key=lambda x: -x[0])
    return out


def propose(comp: Composition, cap: int, max_atoms: int) -> list[Proposal]:
    """Up to ``cap`` template structures for ``comp``, best substitution score first (ties by
    AFLOW label), each at most ``max_atoms`` atoms in its primitive cell."""
    if cap <= 0:
        return []
    elements, amounts = reduced_amounts(comp)
    ranked = []
    for i, template in enumerate(library()):
        if len(template.elements) != len(elements) or sorted(template.amounts) != sorted(amounts):
            continue
        for score, mapping in assignments(template, elements, amounts):
            ranked.append((-score, template.aflow, i, tuple(sorted(mapping.items())), mapping))
    ranked.sort(key=lambda r: r[:4])
    out: list[Proposal] = []
    seen = set()
    for neg, _, i, key, mapping in ranked:
        if (i, key) in seen:
            continue
        seen.add((i, key))
        prim = _primitive(i)
        if len(prim) > max_atoms:
            continue
        label = library()[i].label
        out.append(Proposal(label, substitute(prim, mapping), -neg))
        if len(out) >= cap:
            break
    return out
