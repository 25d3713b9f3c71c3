"""Ordered derivatives of the AFLOW templates (issue 28): two of a candidate's elements sharing
one template element's sites, one decoration per symmetry class, and their place in the search."""

from __future__ import annotations

import importlib.util
import itertools
from dataclasses import replace
from pathlib import Path

import pytest
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Composition, Lattice, Structure
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

from discovery.structure.derivatives import _cells, _site_permutations, derivatives, orderings
from discovery.structure.prototypes import library
from discovery.structure.settings import RelaxSettings


def _bench_structures():
    """pipelines/bench/bench_structures.py as a module (its settings, not its run)."""
    script = Path(__file__).resolve().parents[1] / "pipelines" / "bench" / "bench_structures.py"
    spec = importlib.util.spec_from_file_location("bench_structures", script)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def template_index(aflow: str) -> int:
    return next(i for i, t in enumerate(library()) if t.aflow == aflow)


@pytest.mark.parametrize("aflow, cell, element, k", [
    ("A4B_tI10_139_de_a", 0, "Al", 2),   # BaAl4's primitive cell: 2 of its 4 Al sites
    ("A4B_tI10_139_de_a", 1, "Al", 4),   # its conventional cell: 4 of 8
    ("AB_cF8_225_a_b", 1, "Na", 2),      # rocksalt's conventional cell: 2 of 4 cations
    ("AB3C_cP5_221_a_c_b", 0, "O", 1)])  # cubic perovskite: 1 of 3 anions
def test_one_ordering_per_class_as_structure_matcher_groups_them(aflow, cell, element, k):
    """The classes that the cell's symmetry operations make of the k-subsets are the ones
    pymatgen's StructureMatcher finds among all decorated cells (the library's answer)."""
    index = template_index(aflow)
    s = _cells(index)[cell]
    perms, _ = _site_permutations(index, cell)
    sites = [i for i, site in enumerate(s) if str(site.specie) == element]

    def decorated(subset):
        return Structure(s.lattice, ["Xe" if i in subset else str(site.specie) for i, site in enumerate(s)],
                         s.frac_coords)

    every = [decorated(set(c)) for c in itertools.combinations(sites, k)]
    groups = StructureMatcher().group_structures(every)
    assert len(orderings(perms, sites, k)) == len(groups)


def test_barium_iron_arsenide_is_the_first_derivative_of_baal4():
    """BaFe2As2 from BaAl4 (Fe and As merged are Al): the likeliest derivative is ThCr2Si2's type,
    I4/mmm with Fe and As on different orbits, and every proposal keeps the composition."""
    proposals = derivatives(Composition("BaFe2As2"), 8, 24)
    assert 0 < len(proposals) <= 8
    assert all(p.structure.composition.reduced_formula == "Ba(FeAs)2" for p in proposals)
    assert all(len(p.structure) <= 24 for p in proposals)
    first = proposals[0]
    assert first.label.startswith("A4B_tI10_139_de_a") and "Fe/As on Al" in first.label
    sga = SpacegroupAnalyzer(first.structure, symprec=1e-3)
    assert sga.get_space_group_number() == 139
    orbits = sga.get_symmetrized_structure().equivalent_sites
    assert all(len({str(site.specie) for site in orbit}) == 1 for orbit in orbits)
    assert {str(o[0].specie) for o in orbits} == {"Ba", "Fe", "As"}
    scores = [p.score for p in proposals]
    assert scores[0] == max(scores)


def test_derivatives_respect_the_cap_the_cell_size_and_the_element_count():
    assert derivatives(Composition("BaFe2As2"), 0, 24) == []
    assert all(len(p.structure) <= 5 for p in derivatives(Composition("BaFe2As2"), 30, 5))
    # a double perovskite needs the B sites of two formula units: none in a 5-atom cell
    assert derivatives(Composition("Ba2FeMoO6"), 10, 5) == []
    assert derivatives(Composition("Fe"), 10, 24) == []  # one element: nothing to share


def test_derivatives_join_the_prescreened_pools(monkeypatch):
    """Templates fit: the derivatives are prescreened with them and the lowest wins. No template
    fits: they are prescreened with the random structures. --derivatives 0 asks for none, and a
    settings digest without them is the one records made before derivatives existed carry."""
    import discovery.structure.derivatives as derivatives_mod
    import discovery.structure.prototypes as proto_mod
    import discovery.structure.random_search as random_mod
    import discovery.structure.relax as relax_mod
    from discovery.structure import stage

    def salt(a):
        return Structure.from_spacegroup("Fm-3m", Lattice.cubic(a), ["Na", "Cl"], [[0, 0, 0], [0.5] * 3])

    energy = {5.0: -1.0, 5.1: -1.1, 5.7: -1.5, 5.8: -1.05}
    asked = []
    monkeypatch.setattr(relax_mod, "relax", lambda s, settings, cell=True: relax_mod.Relaxed(
        s, energy[round(s.lattice.a, 1)], True, 3, ""))
    monkeypatch.setattr(relax_mod, "model_version", lambda: "fake")
    monkeypatch.setattr(relax_mod, "covered", lambda comp, model: False)
    monkeypatch.setattr("discovery.structure.energy.formation_energy",
                        lambda comp, e, cache=None, model="chgnet": e)
    monkeypatch.setattr(derivatives_mod, "derivatives", lambda comp, cap, max_atoms: (
        asked.append(cap), [proto_mod.Proposal("d0", salt(5.7))][:cap])[1])
    templates = [proto_mod.Proposal("t0", salt(5.0)), proto_mod.Proposal("t1", salt(5.1))]
    monkeypatch.setattr(proto_mod, "propose", lambda comp, cap, max_atoms: templates)
    monkeypatch.setattr(random_mod, "random_structures", lambda comp, budget, seed, max_atoms, prior: [
        proto_mod.Proposal("r0", salt(5.8))][:budget])
    settings = RelaxSettings(max_prototypes=1, prescreen=2, random_budget=1, derivatives=3, max_steps=20)
    record, _ = stage._search("NaCl", settings, None)
    assert asked == [3] and record["prototype"] == "d0" and record["prescreened"] == 3
    templates.clear()
    record, _ = stage._search("NaCl", settings, None)
    assert record["prototype"] == "d0" and "1 ordered derivatives of templates" in record["relax_note"]
    asked.clear()
    templates.append(proto_mod.Proposal("t0", salt(5.0)))
    none = RelaxSettings(max_prototypes=1, prescreen=2, random_budget=1, derivatives=0, max_steps=20)
    assert stage._search("NaCl", none, None)[0]["prototype"] == "t0" and asked == [0]
    assert none.digest() != settings.digest()
    # the formation benchmark's settings (no derivatives, duplicates among the finalists): the
    # digest its records were made with before either option existed
    # and the tie rule of then (the re-ranker's pick stands): the mean's tie-break is another search
    formation = RelaxSettings(max_prototypes=2, random_budget=0, max_steps=200, max_atoms=12, prescreen=24,
                              derivatives=0, rerank_distinct=False, rerank_tie="likelier")
    assert formation.digest() == "02d47a147d0b"
    bench = _bench_structures()
    assert bench.FORMATION_SETTINGS == formation  # the bench's: its records stay valid
    assert replace(formation, rerank_tie="mean").digest() != "02d47a147d0b"
    assert none.digest() == RelaxSettings(max_prototypes=1, prescreen=2, random_budget=1, derivatives=0,
                                          max_steps=20).digest()


def test_a_splits_further_orderings_count_half_as_likely_each():
    """The pool is ordered by the split's score less ln 2 per earlier ordering of that split: a
    likely template's fifth ordering (EuCu2Sb2's CaBe2Ge2 type, 5th of BaAl4's Cu/Sb splits) comes
    before an unlikely template's first, not after every split's first few."""
    import math
    import re

    pool = derivatives(Composition("EuCu2Sb2"), 24, 24)
    assert len(pool) == 24
    effective = [p.score - (int(re.search(r"#(\d+)$", p.label).group(1)) - 1) * math.log(2) for p in pool]
    assert all(a >= b - 1e-9 for a, b in zip(effective, effective[1:], strict=False))
    baal4 = [p.label for p in pool if p.label.startswith("A4B_tI10_139_de_a ordered Cu/Sb on Al")]
    assert baal4[:5] == [f"A4B_tI10_139_de_a ordered Cu/Sb on Al #{k}" for k in range(1, 6)]
    # without the prior, one ordering of each split in turn: the pool would end before the 5th
    first = {p.label.rsplit(" #", 1)[0] for p in pool if p.label.endswith("#1")}
    assert len(first) < len(pool) - 4


def test_derivatives_take_at_most_half_the_places_beside_templates(monkeypatch):
    """Six derivatives prescreened lower than four templates, four places: two go to the lowest
    derivatives and two to the lowest templates, in the order of likelihood. With one template
    prescreened, derivatives fill the places it leaves; without templates they take all."""
    import discovery.structure.relax as relax_mod
    from discovery.structure import stage
    from discovery.structure.prototypes import Proposal

    def salt(a):
        return Structure.from_spacegroup("Fm-3m", Lattice.cubic(a), ["Na", "Cl"], [[0, 0, 0], [0.5] * 3])

    monkeypatch.setattr(relax_mod, "relax", lambda s, settings, cell=True: relax_mod.Relaxed(
        s, -s.lattice.a, True, 3, ""))  # the larger cell is lower
    templates = [Proposal(f"t{i}", salt(5.0 + 0.1 * i)) for i in range(4)]
    ordered = [Proposal(f"d{i}", salt(6.0 + 0.1 * i)) for i in range(6)]
    settings = RelaxSettings(max_prototypes=4, prescreen=10, derivatives=6)
    kept, _, tried = stage._keep_lowest(templates + ordered, 4, settings, ordered_from=len(templates))
    assert [p.label for p in kept] == ["t2", "t3", "d4", "d5"] and tried == 10
    kept, _, _ = stage._keep_lowest(templates[:1] + ordered, 4, settings, ordered_from=1)
    assert [p.label for p in kept] == ["t0", "d3", "d4", "d5"]
    kept, _, _ = stage._keep_lowest(templates + ordered, 4, settings)
    assert [p.label for p in kept] == ["d2", "d3", "d4", "d5"]
    # half rounded up: three places, two derivatives; one place, the lowest of all
    kept, _, _ = stage._keep_lowest(templates + ordered, 3, settings, ordered_from=len(templates))
    assert [p.label for p in kept] == ["t3", "d4", "d5"]
    kept, _, _ = stage._keep_lowest(templates + ordered, 1, settings, ordered_from=len(templates))
    assert [p.label for p in kept] == ["d5"]


def test_the_reranker_compares_distinct_structures():
    """Two relaxations that ended in one structure (StructureMatcher) take one finalist's place:
    rock salt at two sizes is one structure, caesium chloride another."""
    import discovery.structure.relax as relax_mod
    from discovery.structure import stage

    def relaxed(label, s):
        return label, relax_mod.Relaxed(s, -1.0, True, 3, "")

    salt = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.6), ["Na", "Cl"], [[0, 0, 0], [0.5] * 3])
    bigger = salt.copy()
    bigger.scale_lattice(salt.volume * 1.1)
    cscl = Structure(Lattice.cubic(3.4), ["Na", "Cl"], [[0, 0, 0], [0.5] * 3])
    found = [relaxed("a", salt), relaxed("b", bigger), relaxed("c", cscl)]
    assert stage._distinct(found, [0, 1, 2], 2) == [0, 2]
    assert stage._distinct(found, [1, 0, 2], 3) == [1, 2]  # the first stands for its structure
    assert stage._distinct(found, [2, 1, 0], 3) == [2, 0]  # any other for its likeliest copy
    assert stage._distinct(found, [2, 0], 1) == [2]


@pytest.mark.parametrize("formula", ["CoSb3", "NaTmF4"])
def test_a_smaller_cap_is_the_start_of_a_larger_ones_pool(formula):
    """The pool is one ranking cut at the cap: splits whose cells hold no ordering leave their
    places to the next, so the 6 likeliest are the first 6 of the 60 likeliest (taking the
    first ``cap`` splits only, CoSb3's and NaTmF4's were not)."""
    small = [p.label for p in derivatives(Composition(formula), 6, 24)]
    large = [p.label for p in derivatives(Composition(formula), 60, 24)]
    assert len(small) == 6 and small == large[:6]
