"""The structure stage (issue 28): templates, relaxation, formation energy, CIFs, resume, bad input.

Tiny cases with a low step cap: a rocksalt (NaCl) and a perovskite (SrTiO3). The elemental
references are relaxed for real into a temp cache shared by this module's tests.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pandas as pd
import pytest
from pymatgen.core import Composition, Lattice, Structure
from typer.testing import CliRunner

from discovery.cli import app
from discovery.errors import ConfigError
from discovery.structure.settings import RelaxSettings

runner = CliRunner()
needs_extra = pytest.mark.skipif(
    __import__("importlib.util").util.find_spec("chgnet") is None,
    reason='the structure extra is not installed (pip install "discovery[structure]")')
# the likeliest template only, a low step cap
SETTINGS = RelaxSettings(max_prototypes=1, random_budget=0, max_steps=60, max_atoms=10, prescreen=0,
                         derivatives=0)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A fresh data cache for the elemental references (DISCOVERY_CACHE)."""
    path = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DISCOVERY_CACHE", str(path))
        yield path


@pytest.fixture(scope="module")
def relaxed(cache, tmp_path_factory):
    """NaCl and SrTiO3 relaxed once into one structures folder."""
    from discovery.structure.stage import run_stage

    folder = tmp_path_factory.mktemp("run") / "report_structures"
    result = run_stage(["NaCl", "SrTiO3"], SETTINGS, folder)
    return folder, {r["formula"]: r for r in result.records}


def rocksalt(a: float = 5.64) -> Structure:
    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(a), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])


def fake_search(monkeypatch, fake_relax, templates: int = 0, rerank: bool = False) -> list:
    """Stage._search with ``fake_relax`` for the potentials, formation energy = energy per atom
    (CHGNet's; the re-ranker's 0.25 below), and
    ``templates`` rocksalt templates t0, t1, ... (lattice 5.0, 5.1, ...; likeliest first), which it
    returns, and no ordered derivatives; ``rerank``: whether the re-ranker covers the elements
    (else it is never asked)."""
    import discovery.structure.derivatives as derivatives_mod
    import discovery.structure.energy as energy_mod
    import discovery.structure.prototypes as proto_mod
    import discovery.structure.relax as relax_mod

    proposals = [proto_mod.Proposal(f"t{i}", rocksalt(5.0 + 0.1 * i), -i) for i in range(templates)]
    monkeypatch.setattr(relax_mod, "relax", fake_relax)
    monkeypatch.setattr(relax_mod, "model_version", lambda: "fake")
    monkeypatch.setattr(relax_mod, "covered", lambda comp, model: rerank)
    monkeypatch.setattr(proto_mod, "propose", lambda comp, cap, max_atoms: proposals[:cap])
    monkeypatch.setattr(derivatives_mod, "derivatives", lambda comp, cap, max_atoms: [])
    # the re-ranker's elemental references put its formation energies 0.25 eV/atom below its energies
    monkeypatch.setattr(energy_mod, "formation_energy",
                        lambda comp, e, cache=None, model="chgnet": e if model == "chgnet" else e - 0.25)
    return proposals


def cubic_perovskite() -> Structure:
    return Structure.from_spacegroup("Pm-3m", Lattice.cubic(3.905), ["Sr", "Ti", "O"],
                                     [[0.5, 0.5, 0.5], [0, 0, 0], [0.5, 0, 0]])


def test_templates_are_ordered_by_substitution_probability():
    from discovery.structure.prototypes import propose

    nacl = propose(Composition("NaCl"), 3, 24)
    assert "Rock Salt" in nacl[0].label and nacl[0].score >= nacl[1].score >= nacl[2].score
    assert nacl[0].structure.composition.reduced_formula == "NaCl"
    assert "Cubic) Perovskite" in propose(Composition("SrTiO3"), 1, 24)[0].label
    assert len(propose(Composition("SrTiO3"), 20, 5)) <= 20  # cap and atom limit hold
    assert all(len(p.structure) <= 5 for p in propose(Composition("SrTiO3"), 20, 5))
    assert propose(Composition("K3CoF7"), 6, 24) == []  # no A3BC7 template


def test_the_prototype_matcher_names_a_templates_own_prototype_and_no_other():
    from discovery.structure.prototypes import prototype_matcher

    matcher = prototype_matcher()
    rocksalt = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"],
                                         [[0, 0, 0], [0.5, 0.5, 0.5]])
    assert matcher.get_prototypes(rocksalt)[0]["tags"]["aflow"] == "AB_cF8_225_a_b"
    zincblende = Structure.from_spacegroup("F-43m", Lattice.cubic(5.65), ["Ga", "As"],
                                           [[0, 0, 0], [0.25, 0.25, 0.25]])
    assert {p["tags"]["aflow"] for p in matcher.get_prototypes(zincblende)} == {"AB_cF8_216_c_a"}


def test_random_structures_are_seeded_and_keep_the_composition():
    pytest.importorskip("pyxtal")
    from discovery.structure.random_search import random_structures

    a = random_structures(Composition("K3CoF7"), 2, 7, 24)
    b = random_structures(Composition("K3CoF7"), 2, 7, 24)
    assert len(a) == 2 and [p.label for p in a] == [p.label for p in b]
    assert all(p.structure.composition.reduced_formula == "K3CoF7" for p in a)
    assert a[0].structure.lattice.abc == pytest.approx(b[0].structure.lattice.abc)


def test_share_out_lists_every_split_of_the_sites_once():
    """Against brute force: every site-to-element assignment whose multiplicities sum to the
    targets, once each, with sites of one kind (one Wyckoff position used twice) interchangeable
    and sites of different kinds (4d and 4e) not."""
    import itertools

    from discovery.structure.wyckoff_prior import share_out

    cases = (((24, 8, 4, 4), (8, 4, 24), (7, 9, 10, 11)), ((2, 2, 2, 1, 1), (4, 2, 2), (5, 5, 6, 7, 8)),
             ((4, 4, 4, 2), (6, 8), (3, 3, 3, 4)), ((3, 3, 1), (2, 5), (0, 1, 2)),
             ((8, 4, 4, 4, 2, 2), (12, 8, 4), (1, 2, 2, 3, 4, 4)), ((4, 4, 2), (2, 4, 4), (11, 10, 14)))
    for mults, targets, kinds in cases:
        def split(combo, mults=mults, targets=targets, kinds=kinds):  # the kinds each element holds
            return tuple(tuple(sorted(k for k, e in zip(kinds, combo, strict=True) if e == el))
                         for el in range(len(targets)))

        def sums(combo, mults=mults, targets=targets):
            return [sum(m for m, e in zip(mults, combo, strict=True) if e == el)
                    for el in range(len(targets))]

        brute = {split(c) for c in itertools.product(range(len(targets)), repeat=len(mults))
                 if sums(c) == list(targets)}
        got = share_out(mults, targets, kinds)
        assert all(sums(a) == list(targets) for a in got)
        splits = [split(a) for a in got]
        assert sorted(splits) == sorted(brute) and len(set(splits)) == len(splits), (mults, targets)
    # ThCr2Si2 both ways round
    assert sorted(share_out((4, 4, 2), (2, 4, 4), (11, 10, 14))) == [(1, 2, 0), (2, 1, 0)]
    assert share_out((24, 8, 4), (8, 4, 24)) == [(2, 0, 1)]  # K2PtCl6: 24e Br, 8c Cs, 4a Zr
    assert share_out((24, 8, 4), (9, 4, 23)) == []


def test_the_wyckoff_prior_fits_the_composition_and_ranks_real_structure_types_first():
    pytest.importorskip("pyxtal")
    from discovery.structure.wyckoff_prior import CENTRING, _group, candidates, choices, multiplicities

    rows = candidates((2, 1, 6), 12)  # A2BX6
    assert rows and all(sum(multiplicities(r.group, r.sites)) == z * 9 for r, z in rows)
    assert all(r.atoms // CENTRING[_group(r.group).symbol[0]] <= 12 for r, _ in rows)
    top = [(c.group, c.labels()) for c in choices((2, 1, 6), 12)[:4]]
    assert any(g == 225 and a == ["8c"] and b in (["4a"], ["4b"]) and x == ["24e"] for g, (a, b, x) in top)
    elpasolite = choices((3, 1, 6), 24)  # A3BX6: Fm-3m 4a 4b 8c 24e (count 2,673) first
    first = elpasolite[0].labels()
    assert elpasolite[0].group == 225 and first[2] == ["24e"]
    assert sorted(first[0]) in (["4a", "8c"], ["4b", "8c"])
    # Cs on 8c+4a, In on 4b is Cs on 8c+4b, In on 4a shifted by half a cell: one choice, not two
    assert sum(c.group == 225 and c.labels()[2] == ["24e"] for c in elpasolite) == 1
    thcr2si2 = [c.labels() for c in choices((1, 2, 2), 24) if c.group == 139 and c.z == 2]
    ways = {(tuple(fe), tuple(x)) for ba, fe, x in thcr2si2 if ba in (["2a"], ["2b"])}
    assert {(("4d",), ("4e",)), (("4e",), ("4d",))} <= ways  # both ways round
    assert candidates((14, 1, 11), 24) == []  # Ca14MnSb11: no row within 24 atoms


def test_random_structures_from_the_prior_are_seeded_symmetric_and_primitive(monkeypatch):
    pytest.importorskip("pyxtal")
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    import discovery.structure.wyckoff_prior as prior
    from discovery.structure.random_search import random_structures

    a = random_structures(Composition("Cs3InF6"), 3, 11, 24)
    b = random_structures(Composition("Cs3InF6"), 3, 11, 24)
    assert [p.label for p in a] == [p.label for p in b] and len(a) == 3
    assert a[0].structure.lattice.abc == pytest.approx(b[0].structure.lattice.abc)
    assert all("MP Wyckoff prior" in p.label for p in a)
    assert all(p.structure.composition.reduced_formula == "Cs3InF6" for p in a)
    assert len(a[0].structure) == 10  # the elpasolite's primitive cell, not its 40-atom conventional one
    assert SpacegroupAnalyzer(a[0].structure, symprec=0.01).get_space_group_number() == 225
    other = random_structures(Composition("Cs3InF6"), 3, 12, 24)
    assert other[0].structure.lattice.abc != pytest.approx(a[0].structure.lattice.abc)  # the seed moves it
    uniform = random_structures(Composition("Cs3InF6"), 2, 11, 24, prior="uniform")
    assert all(p.label.startswith("random ") for p in uniform)
    # where no row of the table fits, the uniform draw fills the budget
    monkeypatch.setattr(prior, "choices", lambda amounts, max_atoms: [])
    filled = random_structures(Composition("Cs3InF6"), 2, 11, 24)
    assert len(filled) == 2 and all(p.label.startswith("random ") for p in filled)


@pytest.mark.parametrize("kwargs, fragment", [
    ({"max_steps": 0}, "--max-steps must be >= 1"), ({"fmax": 0.0}, "--fmax must be > 0"),
    ({"max_prototypes": 0, "random_budget": 0}, "both 0"), ({"optimizer": "LBFGS"}, "unknown optimizer"),
    ({"max_atoms": -1}, "--max-atoms must be a whole number >= 0"),
    ({"prescreen": -2}, "--prescreen must be a whole number >= 0"),
    ({"prescreen_steps": 0}, "--prescreen-steps must be >= 1"),
    ({"random_prior": "spg"}, "unknown --random-prior 'spg'"),
    ({"rerank": "mace"}, "unknown --rerank 'mace'"),
    ({"rerank_top": 1}, "--rerank-top must be >= 2"),
    ({"rerank_tie": "lowest"}, "unknown --rerank-tie 'lowest'"),
    ({"derivatives": -1}, "--derivatives must be a whole number >= 0")])
def test_bad_settings_are_one_line_errors(kwargs, fragment):
    with pytest.raises(ConfigError, match=fragment):
        RelaxSettings(**kwargs)


def test_missing_extra_is_a_one_line_error(monkeypatch):
    import discovery.pipeline as pipeline_mod
    import discovery.structure as structure

    monkeypatch.setattr(structure, "missing_modules", lambda: ["torch", "chgnet"])
    monkeypatch.setattr(pipeline_mod.Pipeline, "default", classmethod(lambda *a, **k: 1 / 0))
    r = runner.invoke(app, ["run", "--n", "100", "--relax-top", "5"])
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1, r.output
    assert 'pip install "discovery[structure]"' in r.output


@needs_extra
def test_rocksalt_is_recovered_with_a_negative_formation_energy(relaxed):
    from pymatgen.analysis.structure_matcher import StructureMatcher

    folder, records = relaxed
    nacl = records["NaCl"]
    assert "Rock Salt" in nacl["prototype"] and nacl["spacegroup"] == "Fm-3m (225)"
    assert nacl["relax_converged"] is True
    cif = Structure.from_file(folder / nacl["cif_name"])
    assert StructureMatcher().fit(cif, rocksalt())
    # OQMD's NaCl is the hull at NaCl (-2.05 eV/atom; MP -2.11): CHGNet within 0.1 of it
    assert nacl["formation_energy_relaxed"] < -1.8
    assert abs(nacl["e_hull_relaxed"]) < 0.1
    # one template relaxed: nothing to re-rank, but SevenNet-0's own ΔHf of it is recorded
    assert nacl["rerank_model"].startswith("SevenNet-0") and -2.3 < nacl["rerank_formation_energy"] < -1.5


@needs_extra
def test_perovskite_is_recovered(relaxed):
    from pymatgen.analysis.structure_matcher import StructureMatcher

    folder, records = relaxed
    sto = records["SrTiO3"]
    assert "Perovskite" in sto["prototype"], sto
    assert StructureMatcher().fit(Structure.from_file(folder / sto["cif_name"]), cubic_perovskite())
    # Materials Project's SrTiO3 (mp-5229): -3.55 eV/atom, the frame CHGNet was trained in
    assert sto["formation_energy_relaxed"] == pytest.approx(-3.55, abs=0.15)


@needs_extra
def test_a_finished_candidate_is_never_relaxed_again(relaxed, monkeypatch):
    import discovery.structure.relax as relax_mod
    from discovery.structure.stage import run_stage

    folder, records = relaxed
    before = {p.name: p.read_bytes() for p in folder.glob("*.cif")}
    (folder / ".NaCl.cif.123.abcdef12.tmp").write_text("half-written")  # a killed write

    def no_relax(*args, **kwargs):
        raise AssertionError("a finished candidate was relaxed again")

    monkeypatch.setattr(relax_mod, "relax", no_relax)
    again = run_stage(["NaCl", "SrTiO3"], SETTINGS, folder)
    assert all(r["resumed"] for r in again.records)
    for r in again.records:
        assert {k: v for k, v in r.items() if k != "resumed"} == \
               {k: v for k, v in records[r["formula"]].items() if k != "resumed"}
    assert {p.name: p.read_bytes() for p in folder.glob("*.cif")} == before
    assert not list(folder.glob("*.tmp"))
    with pytest.raises(AssertionError, match="relaxed again"):  # other settings: redone
        run_stage(["NaCl"], RelaxSettings(max_prototypes=1, random_budget=0, max_steps=61, max_atoms=10,
                                          derivatives=0), folder)


@needs_extra
def test_bad_rows_say_why_and_the_run_goes_on(cache, tmp_path):
    report = tmp_path / "cands.csv"
    pd.DataFrame({"rank": [1, 2, 3, 4], "formula": ["CmO2", "K3CoF7", "NaCl", "LiF"],
                  "e_hull [eV/atom]": ["-0.1000", "0.0100", "-0.0200", "0.5000"],
                  "decomposition": ["CmO2 (1.000)", "KF (0.5) + CoF3 (0.5)", "", "LiF, x"]}
                 ).to_csv(report, index=False, lineterminator="\n")
    original = report.read_text().splitlines()
    report.with_suffix(".summary.json").write_text(json.dumps({"settings": {"n": 1}}))
    r = runner.invoke(app, ["relax", str(report), "--top", "3", "--max-prototypes", "1", "--random-budget",
                            "0", "--max-steps", "40", "--max-atoms", "10", "--prescreen", "2",
                            "--prescreen-steps", "5"])
    assert r.exit_code == 0, r.output
    out = pd.read_csv(report, dtype=str, keep_default_na=False)
    assert list(out.columns[-7:]) == ["prototype", "spacegroup", "formation_energy_relaxed [eV/atom]",
                                      "e_hull_relaxed [eV/atom]", "relax_converged", "structure_file",
                                      "relax_note"]
    notes = dict(zip(out["formula"], out["relax_note"], strict=True))
    assert "element Cm not covered by CHGNet" in notes["CmO2"]
    assert "no AFLOW prototype fits" in notes["K3CoF7"]
    nacl = out.set_index("formula").loc["NaCl"]
    assert nacl["structure_file"] == "cands_structures/NaCl.cif"
    assert (tmp_path / nacl["structure_file"]).is_file()
    assert out.set_index("formula").loc["LiF", "structure_file"] == ""  # beyond --top
    assert out.loc[out["formula"] == "CmO2", "structure_file"].item() == ""
    # the columns written before come back byte for byte
    assert [line.split(",prototype")[0] for line in report.read_text().splitlines()][:1] == original[:1]
    assert out[["rank", "formula", "e_hull [eV/atom]", "decomposition"]].to_csv(
        index=False, lineterminator="\n").splitlines() == original
    summary = json.loads(report.with_suffix(".summary.json").read_text())
    assert summary["settings"] == {"n": 1} and summary["structure"]["candidates"] == 3
    assert set(summary["structure"]["seconds"]["per_candidate"]) == {"CmO2", "K3CoF7", "NaCl"}


@needs_extra
def test_relaxations_that_explode_are_discarded(cache, tmp_path, monkeypatch):
    import discovery.structure.relax as relax_mod
    from discovery.structure.stage import run_stage

    monkeypatch.setattr(relax_mod, "relax", lambda s, settings, cell=True: relax_mod.Relaxed(
        s, -1.0, False, 3, "relaxation exploded (volume per atom x9)"))
    rec = run_stage(["NaCl"], SETTINGS, tmp_path / "x_structures").records[0]
    assert rec["relax_note"].startswith("every relaxation failed (1 tried): relaxation exploded")
    assert rec["cif_name"] == "" and rec["e_hull_relaxed"] is None


def test_relax_refuses_bad_arguments_in_one_line(tmp_path):
    r = runner.invoke(app, ["relax", str(tmp_path / "missing.csv")])
    assert r.exit_code == 2 and "no report at" in r.output and len(r.output.strip().splitlines()) == 1
    (tmp_path / "a.csv").write_text("formula\nNaCl\n")
    for args, fragment in ((["--top", "0"], "--top must be a whole number >= 1"),
                           (["--max-steps", "0"], "--max-steps must be >= 1"),
                           (["--engine", "spark"], "unknown engine 'spark'"),
                           (["--random-prior", "gaussian"], "unknown --random-prior 'gaussian'")):
        r = runner.invoke(app, ["relax", str(tmp_path / "a.csv"), *args])
        assert r.exit_code == 2 and fragment in r.output, r.output
        assert len(r.output.strip().splitlines()) == 1


def test_relax_names_a_malformed_formula_in_one_line(tmp_path):
    """A formula the codec cannot read is the report's fault: one line naming it, nothing relaxed."""
    (tmp_path / "b.csv").write_text("formula\nNaCl\nXx2O\n")
    r = runner.invoke(app, ["relax", str(tmp_path / "b.csv"), "--top", "2"])
    assert r.exit_code == 2 and "'Xx2O' is not a formula of known elements" in r.output, r.output
    assert len(r.output.strip().splitlines()) == 1
    assert not (tmp_path / "b_structures").exists()


def test_a_runaway_cell_is_stopped_at_the_step_it_runs_away(monkeypatch):
    """A cell leaving the volume window is stopped during the relaxation, not after it (a
    collapsing cell's graph once grew past 24 GB before the run ended)."""
    from pymatgen.core import Lattice, Structure

    import discovery.structure.relax as relax_mod

    nacl = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.0), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    settings = relax_mod.RelaxSettings(max_steps=60)
    free = relax_mod.relax(nacl, settings)  # compressed 12%: it expands by more than 2%
    assert free.note == "" and free.structure.volume > 1.02 * nacl.volume
    monkeypatch.setattr(relax_mod, "VOLUME_RATIO", 1.02)
    stopped = relax_mod.relax(nacl, settings)
    assert "exploded" in stopped.note and "at step" in stopped.note
    assert stopped.steps < free.steps and not stopped.converged


def test_a_light_atom_template_starts_no_denser_than_the_floor():
    """Cubed-radius scaling puts H3N into heavy templates at 0.4–1 Å³ per atom (thousands of
    neighbours within CHGNet's cutoff; one such relaxation took 10.9 GB): the floor lifts it,
    and leaves a template already at a real density untouched."""
    from discovery.structure.prototypes import propose
    from discovery.structure.volume import START_FRACTION, elemental_volume, with_volume_floor

    ammonia = propose(Composition("H3N"), 4, 24)
    dense = [p.structure for p in ammonia
             if p.structure.volume < START_FRACTION * elemental_volume(p.structure)]
    assert dense, "no H3N template starts below the floor: the case this guards is gone"
    for s in dense:
        lifted = with_volume_floor(s)
        assert lifted.volume == pytest.approx(START_FRACTION * elemental_volume(s))
        assert lifted.lattice.angles == pytest.approx(s.lattice.angles)
        assert lifted.frac_coords == pytest.approx(s.frac_coords)
    salt = rocksalt()
    assert with_volume_floor(salt) is salt


@needs_extra
def test_a_geometry_below_the_floor_is_never_evaluated(monkeypatch):
    """relax refuses a cell compressed below EVALUATE_FRACTION of the elemental volume before the
    potential sees it."""
    import discovery.structure.relax as relax_mod
    from discovery.structure.volume import EVALUATE_FRACTION, elemental_volume

    seen = []
    inner = relax_mod.calculator()
    monkeypatch.setitem(relax_mod._STATE, "chgnet", inner)
    original = inner.calculate
    monkeypatch.setattr(inner, "calculate", lambda *a, **k: (seen.append(1), original(*a, **k)))
    salt = rocksalt()
    salt.scale_lattice(0.9 * EVALUATE_FRACTION * elemental_volume(salt))
    res = relax_mod.relax(salt, RelaxSettings(max_steps=5))
    assert "below" in res.note and "at step 0" in res.note and not seen


def test_frame_shifts_recover_planted_per_element_offsets():
    """Errors built from known per-element offsets (plus noise, plus two broken relaxations) give
    back those offsets, and out of fold leave about the noise."""
    import numpy as np

    from discovery.structure.frame import Frame, fit_shifts, shift_cv

    rng = np.random.default_rng(3)
    planted = {"O": -0.15, "Te": -0.2, "Na": 0.05, "Cl": -0.1, "Fe": 0.0, "Al": 0.02}
    els = list(planted)
    formulas, error = [], []
    for _ in range(120):
        a, b = rng.choice(els, 2, replace=False)
        formula = f"{a}{int(rng.integers(1, 4))}{b}{int(rng.integers(1, 4))}"
        formulas.append(formula)
        error.append(Frame(planted).offset(Composition(formula))[0] + rng.normal(0, 0.01))
    error[:2] = [2.9, -1.5]  # exploded relaxations: never fitted on
    shifts = fit_shifts(formulas, np.array(error), ridge=1e-3)
    assert shifts == pytest.approx(planted, abs=0.02)
    cv = shift_cv(formulas, np.array(error), ridge=1e-3)
    assert cv["mae_without_exploded"] < 0.02 and cv["mae"] > cv["mae_without_exploded"]
    shifted, missing = Frame(shifts).to_oqmd(Composition("NaCl"), -2.0)
    assert shifted == pytest.approx(-2.0 - 0.5 * (planted["Na"] + planted["Cl"]), abs=0.02)
    assert missing == [] and Frame({"Na": 0.1}).to_oqmd(Composition("NaCl"), -2.0)[1] == ["Cl"]


@needs_extra
def test_the_report_moves_relaxed_energies_into_oqmds_frame(relaxed):
    """ΔHf and e_hull_relaxed move by the composition-weighted shifts (e_hull at a fixed
    composition is linear in ΔHf); an element without a shift is named; no frame: unchanged."""
    from discovery.structure.frame import Frame
    from discovery.structure.stage import frame_summary, in_oqmd_frame

    _, records = relaxed
    raw = records["NaCl"]
    assert in_oqmd_frame(raw, {}) is raw
    moved = in_oqmd_frame(raw, {"chgnet": Frame({"Na": 0.1})})
    expected = raw["formation_energy_relaxed"] - 0.05
    assert moved["formation_energy_relaxed"] == pytest.approx(expected, abs=1e-6)
    assert moved["formation_energy_chgnet"] == raw["formation_energy_relaxed"]
    assert moved["formation_energy_from"] == "chgnet"
    if raw["e_hull_relaxed"] is not None:  # a fresh clone has no known phases: no e_hull either way
        assert moved["e_hull_relaxed"] - raw["e_hull_relaxed"] == pytest.approx(-0.05, abs=1e-5)
    assert "no OQMD-frame shift for Cl" in moved["relax_note"]

    # with the re-ranker's ΔHf too: the mean of the two, moved by the mean's own shifts
    both = raw | {"rerank_formation_energy": raw["formation_energy_relaxed"] + 0.2}
    frames = {"chgnet": Frame({"Na": 0.1, "Cl": 0.0}), "mean": Frame({"Na": 0.3, "Cl": -0.1})}
    mean = in_oqmd_frame(both, frames)
    assert mean["formation_energy_from"] == "mean" and "no OQMD-frame shift" not in mean["relax_note"]
    assert mean["formation_energy_relaxed"] == pytest.approx(expected + 0.05 + 0.1 - 0.1, abs=1e-6)
    assert mean["formation_energy_chgnet"] == raw["formation_energy_relaxed"]
    alone = in_oqmd_frame(both, {"chgnet": frames["chgnet"]})  # no mean shifts shipped: CHGNet's alone
    assert alone["formation_energy_from"] == "chgnet"
    assert alone["formation_energy_relaxed"] == pytest.approx(expected, abs=1e-6)
    partial = in_oqmd_frame(both, frames | {"mean": Frame({"Na": 0.3})})  # the mean's shifts lack Cl
    assert partial["formation_energy_from"] == "chgnet"
    assert partial["formation_energy_relaxed"] == pytest.approx(expected, abs=1e-6)
    summary = frame_summary(frames, [mean, alone, partial])["energies"]
    assert summary["mean"]["rows"] == 1 and summary["chgnet"]["rows"] == 2


@needs_extra
def test_a_candidate_relaxes_on_one_blas_thread(tmp_path, monkeypatch):
    """BFGS's eigh and the cell filter run on numpy's BLAS: on two threads beside another worker a
    step took 2.3x as long. Inside the task BLAS has one thread, and the limit ends with it."""
    from threadpoolctl import threadpool_info

    import discovery.structure.stage as stage

    seen = []

    def spy(formula, settings, cache):
        seen.append(max(p["num_threads"] for p in threadpool_info()))
        return stage._empty(formula, "spied"), None

    monkeypatch.setattr(stage, "_search", spy)
    before = [p["num_threads"] for p in threadpool_info()]
    stage.relax_candidate("NaCl", SETTINGS, str(tmp_path / "s"))
    assert seen == [1]
    assert [p["num_threads"] for p in threadpool_info()] == before


def test_the_prescreen_sends_the_lowest_on_and_ties_go_to_the_likelier(monkeypatch):
    """Four templates, likeliest first; after the short relaxation t2 is 3 meV below t1 (ranked
    first), t3 fails: t1 and t2 are relaxed fully, and of the two (within TIE) the likelier t1 wins."""
    import discovery.structure.relax as relax_mod
    from discovery.structure import stage

    energy = {5.0: -1.0, 5.1: -1.2, 5.2: -1.203, 5.3: None}
    steps_seen = []

    def fake_relax(structure, settings, cell=True):
        steps_seen.append(settings.max_steps)
        e = energy[round(structure.lattice.a, 1)]
        note = "" if e is not None else "relaxation exploded (made up)"
        return relax_mod.Relaxed(structure, float("nan") if e is None else e, True, 3, note)

    proposals = fake_search(monkeypatch, fake_relax, templates=4)  # no re-ranking here
    settings = RelaxSettings(max_prototypes=2, prescreen=4, prescreen_steps=7, random_budget=0,
                             max_steps=50)
    ranked, failures = stage._prescreen(proposals, settings)
    assert [i for i, _ in ranked] == [2, 1, 0] and len(failures) == 1 and steps_seen == [7] * 4
    record, cif = stage._search("NaCl", settings, None)
    assert record["prototype"] == "t1" and record["prescreened"] == 4 and record["tried"] == 4
    assert [label for label, _ in record["relaxed_energies"]] == ["t1", "t2"]
    assert steps_seen[-2:] == [50, 50] and "1 of 4 relaxations discarded" in record["relax_note"]
    unscreened = RelaxSettings(max_prototypes=2, prescreen=0, random_budget=0, max_steps=50)
    assert stage._search("NaCl", unscreened, None)[0]["prototype"] == "t1"
    assert stage._search("NaCl", unscreened, None)[0]["prescreened"] == 0


def test_sevennet_picks_among_chgnets_lowest_and_the_energies_stay_chgnets(monkeypatch):
    """Four templates, likeliest first. CHGNet puts t1 lowest; SevenNet-0 re-relaxes CHGNet's three
    lowest (t1, t2, t3, from CHGNet's relaxed structures) and puts t2 lowest: t2 is kept with
    CHGNet's energy, and the note says so. t0, SevenNet's lowest of all but not among CHGNet's
    three, is never re-relaxed. Within TIE the likelier wins; --rerank none, elements SevenNet
    lacks, or fewer than two of its relaxations succeeding: CHGNet's lowest."""
    import discovery.structure.relax as relax_mod
    from discovery.structure import stage

    chgnet = {5.0: -1.00, 5.1: -1.10, 5.2: -1.05, 5.3: -1.08}
    sevennet = {5.0: -2.0, 5.1: -1.50, 5.2: -1.60, 5.3: -1.55}
    calls = []

    def fake_relax(structure, settings, cell=True, model="chgnet"):
        a = round(structure.lattice.a, 2)
        calls.append((model, a))
        if model == "chgnet":  # CHGNet's relaxed cell is marked by +0.01 Å
            return relax_mod.Relaxed(rocksalt(a + 0.01), chgnet[round(a, 1)], True, 3, "")
        e = sevennet[round(a, 1)]
        return relax_mod.Relaxed(structure, float("nan") if e is None else e, True, 2,
                                 "" if e is not None else "relaxation exploded (made up)")

    fake_search(monkeypatch, fake_relax, templates=4, rerank=True)
    monkeypatch.setattr(relax_mod, "rerank_version", lambda model: "SevenNet-0 (fake)")
    # rock salts of other sizes: one structure to StructureMatcher, so each finalist is not distinct
    settings = RelaxSettings(max_prototypes=4, prescreen=0, random_budget=0, rerank_top=3,
                             rerank_distinct=False)

    record, _ = stage._search("NaCl", settings, None)
    assert [a for model, a in calls if model == "sevennet"] == [5.11, 5.21, 5.31]
    assert record["prototype"] == "t2" and record["energy_per_atom"] == -1.05
    assert record["formation_energy_relaxed"] == -1.05 and record["rerank_model"] == "SevenNet-0 (fake)"
    assert "SevenNet-0 (fake) put it lowest; CHGNet put t1 50 meV/atom below it" in record["relax_note"]
    assert record["reranked"] == [["t1", -1.1, -1.5], ["t2", -1.05, -1.6], ["t3", -1.08, -1.55]]
    assert record["rerank_changed"] is True
    # the re-ranker's own formation energy of the kept structure, from its own references
    assert record["rerank_energy_per_atom"] == -1.6 and record["rerank_formation_energy"] == -1.85

    sevennet[5.1] = -1.597  # within TIE of t2: the likelier t1 (the mean agrees: -1.3485 against -1.325)
    tied = stage._search("NaCl", settings, None)[0]
    assert tied["prototype"] == "t1" and tied["rerank_changed"] is False
    assert "mean" not in tied["relax_note"]
    # the mean puts t2 lower by more than TIE (-1.3625 against -1.3485): with --rerank-tie mean, t2;
    # with likelier, SevenNet-0's pick t1 stands
    chgnet[5.2] = -1.125
    broken = stage._search("NaCl", settings, None)[0]
    assert broken["prototype"] == "t2" and broken["energy_per_atom"] == -1.125
    assert broken["rerank_energy_per_atom"] == -1.6 and broken["rerank_changed"] is False
    assert "tied it with t1 within 5 meV/atom; the mean of the two potentials put it 14 meV/atom lower" \
        in broken["relax_note"]
    likelier = replace(settings, rerank_tie="likelier")
    assert stage._search("NaCl", likelier, None)[0]["prototype"] == "t1"
    assert likelier.digest() != settings.digest()
    # outside SevenNet-0's tie the mean is never asked: t1 6 meV/atom above t2 on SevenNet-0 but
    # 122 below on the mean (CHGNet's lowest by 250) stays out
    sevennet[5.1], chgnet[5.1], chgnet[5.2] = -1.594, -1.30, -1.05
    alone = stage._search("NaCl", settings, None)[0]
    assert alone["prototype"] == "t2" and "mean" not in alone["relax_note"]
    assert "SevenNet-0 (fake) put it lowest; CHGNet put t1 250 meV/atom below it" in alone["relax_note"]
    # all three tied on SevenNet-0 (pick t1); CHGNet's lowest t2; the mean's t3 (-1.357 against
    # t1's -1.350): t3, which neither potential alone would keep
    chgnet.update({5.1: -1.100, 5.2: -1.114, 5.3: -1.110})
    sevennet.update({5.1: -1.600, 5.2: -1.596, 5.3: -1.604})
    third = stage._search("NaCl", settings, None)[0]
    assert third["prototype"] == "t3" and third["rerank_changed"] is True
    assert "tied it with t1 within 5 meV/atom; the mean of the two potentials put it 7 meV/atom lower" \
        in third["relax_note"]
    assert "kept on the mean; CHGNet put t2 4 meV/atom below it" in third["relax_note"]
    chgnet.update({5.1: -1.10, 5.2: -1.05, 5.3: -1.08})
    sevennet.update({5.1: -1.50, 5.2: -1.60, 5.3: -1.55})
    calls.clear()
    off_settings = RelaxSettings(max_prototypes=4, prescreen=0, random_budget=0, rerank="none")
    off = stage._search("NaCl", off_settings, None)[0]
    assert off["prototype"] == "t1" and off["reranked"] is None and all(c[0] == "chgnet" for c in calls)
    assert off["rerank_formation_energy"] is None
    sevennet[5.2] = sevennet[5.3] = None  # one finalist left: nothing to compare, but its energy counts
    failed = stage._search("NaCl", settings, None)[0]
    assert failed["prototype"] == "t1" and failed["reranked"] is None
    assert failed["rerank_energy_per_atom"] == -1.5 and failed["rerank_formation_energy"] == -1.75
    sevennet[5.1] = None  # CHGNet's lowest failed under SevenNet-0: no energy of the kept structure
    assert stage._search("NaCl", settings, None)[0]["rerank_formation_energy"] is None
    sevennet[5.1] = -1.50
    one = stage._search("NaCl", RelaxSettings(max_prototypes=1, prescreen=0, random_budget=0), None)[0]
    assert one["prototype"] == "t0" and one["rerank_formation_energy"] == -2.25  # a single structure too
    sevennet[5.2], sevennet[5.3] = -1.60, -1.55
    monkeypatch.setattr(relax_mod, "covered", lambda comp, model: False)
    lacking = stage._search("NaCl", settings, None)[0]
    assert lacking["prototype"] == "t1" and lacking["reranked"] is None
    assert lacking["rerank_energy_per_atom"] is None and lacking["rerank_formation_energy"] is None
    assert "SevenNet-0 (fake) lacks an element of NaCl: CHGNet's lowest kept" in lacking["relax_note"]


@needs_extra
def test_sevennet_compares_distinct_structures_and_chgnets_pick_among_them(monkeypatch):
    """Three templates: t0 and t1 relax to one rock salt (t1 2 meV/atom lower: within TIE, so
    CHGNet keeps the likelier t0), t2 to caesium chloride. SevenNet-0 re-relaxes t0 (standing for
    its structure) and t2, not the copy t1; with ``rerank_distinct`` False, the three lowest."""
    import discovery.structure.relax as relax_mod
    from discovery.structure import stage

    cscl = Structure(Lattice.cubic(3.4), ["Na", "Cl"], [[0, 0, 0], [0.5] * 3])
    chgnet = {5.0: -1.100, 5.1: -1.102, 5.2: -1.05}
    calls = []

    def fake_relax(structure, settings, cell=True, model="chgnet"):
        a = round(structure.lattice.a, 2)
        calls.append((model, a))
        if model == "chgnet":  # t2 ends as caesium chloride, the others as rock salt (+0.01 Å)
            end = cscl if round(a, 1) == 5.2 else rocksalt(a + 0.01)
            return relax_mod.Relaxed(end, chgnet[round(a, 1)], True, 3, "")
        return relax_mod.Relaxed(structure, -1.5 if a == 3.4 else -1.4, True, 2, "")

    fake_search(monkeypatch, fake_relax, templates=3, rerank=True)
    monkeypatch.setattr(relax_mod, "rerank_version", lambda model: "SevenNet-0 (fake)")
    settings = RelaxSettings(max_prototypes=3, prescreen=0, random_budget=0, rerank_top=3)
    record, _ = stage._search("NaCl", settings, None)
    assert [a for model, a in calls if model == "sevennet"] == [5.01, 3.4]
    assert [row[0] for row in record["reranked"]] == ["t0", "t2"]
    assert record["prototype"] == "t2" and record["rerank_changed"] is True
    calls.clear()
    copies = RelaxSettings(max_prototypes=3, prescreen=0, random_budget=0, rerank_top=3,
                           rerank_distinct=False)
    stage._search("NaCl", copies, None)
    assert [a for model, a in calls if model == "sevennet"] == [5.01, 5.11, 3.4]
    assert copies.digest() != settings.digest()
    # without a re-ranker the rule is moot, and the digest is the one made before it
    assert (RelaxSettings(rerank="none").digest()
            == RelaxSettings(rerank="none", rerank_distinct=False).digest())


def test_sevennet_relaxes_and_ranks_rocksalt_below_cesium_chloride_nacl(cache):
    """The real SevenNet-0: a finite energy per atom for NaCl, rocksalt below the CsCl type
    (rocksalt is NaCl's structure at ambient pressure), and Po (Z 84) not covered. Its formation
    energy comes from its own elemental references (Na metal, the Cl2 molecule), kept apart from
    CHGNet's: NaCl's is about -1.9 eV/atom (OQMD -1.88, MP -2.1)."""
    from discovery.structure.energy import elemental_energy, formation_energy, reference_dir
    from discovery.structure.relax import covered, relax

    csc = Structure(Lattice.cubic(3.3), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    settings = RelaxSettings(max_steps=40)
    salt, cesium = relax(rocksalt(), settings, model="sevennet"), relax(csc, settings, model="sevennet")
    assert salt.ok and cesium.ok and -4.5 < salt.energy_per_atom < -3.0
    assert salt.energy_per_atom < cesium.energy_per_atom - 0.01
    assert covered(Composition("NaCl"), "sevennet") and not covered(Composition("PoO2"), "sevennet")
    ef = formation_energy(Composition("NaCl"), salt.energy_per_atom, model="sevennet")
    assert -2.3 < ef < -1.5
    own, chgnet = reference_dir(model="sevennet"), reference_dir()
    assert own != chgnet and own.parent.name.startswith("SevenNet-0")
    assert {"Na.json", "Cl.json"} <= {p.name for p in own.glob("*.json")}
    assert abs(elemental_energy("Na", model="sevennet") - elemental_energy("Na")) > 1e-4


def test_random_structures_from_the_prior_are_prescreened_and_uniform_ones_are_not(monkeypatch):
    """No template fits: with the prior a pool of --prescreen structures gets the short relaxation
    and the --random-budget lowest are relaxed in full; --random-prior uniform draws the budget
    only and relaxes it unscreened; --max-prototypes 0 skips the templates for the random search."""
    import discovery.structure.prototypes as proto_mod
    import discovery.structure.random_search as random_mod
    import discovery.structure.relax as relax_mod
    from discovery.structure import stage

    energy = {5.0: -1.0, 5.1: -1.1, 5.2: -1.3, 5.3: -1.2, 5.4: -0.9, 5.5: -1.25}
    asked, steps_seen = [], []

    def fake_random(comp, budget, seed, max_atoms, prior="mp-wyckoff"):
        asked.append((budget, prior))
        return [proto_mod.Proposal(f"r{i}", rocksalt(5.0 + 0.1 * i)) for i in range(min(budget, 6))]

    def fake_relax(structure, settings, cell=True):
        steps_seen.append(settings.max_steps)
        return relax_mod.Relaxed(structure, energy[round(structure.lattice.a, 1)], True, 3, "")

    fake_search(monkeypatch, fake_relax)  # no templates, no re-ranking
    monkeypatch.setattr(random_mod, "random_structures", fake_random)
    prior = RelaxSettings(random_budget=2, prescreen=6, prescreen_steps=7, max_steps=50)
    record, _ = stage._search("NaCl", prior, None)
    assert asked == [(6, "mp-wyckoff")] and steps_seen == [7] * 6 + [50, 50]
    assert [label for label, _ in record["relaxed_energies"]] == ["r2", "r5"]  # the two lowest
    assert record["prototype"] == "r2" and "(of 6 prescreened)" in record["relax_note"]
    asked.clear(), steps_seen.clear()
    record, _ = stage._search("NaCl", RelaxSettings(random_budget=2, prescreen=6, random_prior="uniform",
                                                    max_steps=50), None)
    assert asked == [(2, "uniform")] and steps_seen == [50, 50] and record["prototype"] == "r1"
    salt_template = [proto_mod.Proposal("rocksalt", rocksalt(5.4))]
    monkeypatch.setattr(proto_mod, "propose", lambda comp, cap, max_atoms: salt_template)
    assert stage._search("NaCl", prior, None)[0]["prototype"] == "rocksalt"
    no_templates = RelaxSettings(max_prototypes=0, random_budget=2, prescreen=6, max_steps=50)
    assert stage._search("NaCl", no_templates, None)[0]["prototype"] == "r2"


def test_the_shipped_frame_shifts_load_and_record_their_out_of_fold_error():
    from discovery.structure.frame import load_frame, load_frames

    frame = load_frame()
    assert frame is not None and len(frame.shifts) >= 50 and {"O", "F", "Cl", "S"} <= set(frame.shifts)
    card = frame.card
    assert card["mae_out_of_fold"] < card["mae_before"] and "fit_" in card["command"]
    mean = load_frames()["mean"]
    assert len(mean.shifts) >= 40 and {"O", "F", "Cl", "S"} <= set(mean.shifts)
    assert mean.card["energy"] == "mean" and "--energy mean" in mean.card["command"]
    assert mean.card["mae_out_of_fold"] < mean.card["mae_before"]
    assert frame.shifts["O"] < 0  # CHGNet's oxides lie below OQMD's (MP2020's fitted O correction)
