"""Decomposition energy against pymatgen's PhaseDiagram, edge cases, and e_hull in a run."""

import numpy as np
import pandas as pd
import pytest
from pymatgen.analysis.phase_diagram import PDEntry, PhaseDiagram
from pymatgen.core import Composition

from discovery.elements import ELEMENTS, INDEX
from discovery.encoding import parse_formulas
from discovery.stability import PhaseHulls, clean_formation_energies


def _comp(row: np.ndarray) -> Composition:
    return Composition({ELEMENTS[j]: row[j] for j in np.flatnonzero(row)})


def _random_system(rng, k: int, m: int):
    els = rng.choice(len(ELEMENTS), k, replace=False)
    a = np.zeros((m, len(ELEMENTS)))
    for i in range(m):
        sub = rng.choice(els, rng.integers(2, k + 1), replace=False)
        a[i, sub] = rng.integers(1, 6, len(sub))
    return els, a, rng.normal(-0.5, 0.6, m)


def _pymatgen(els, a, e) -> PhaseDiagram:
    entries = [PDEntry(Composition(ELEMENTS[x]), 0.0) for x in els]
    entries += [PDEntry(_comp(r), en * _comp(r).num_atoms) for r, en in zip(a, e, strict=True)]
    return PhaseDiagram(entries)


def test_equals_pymatgen_on_random_systems():
    """Binary to quaternary systems, candidates above and below the hull, and in subsystems."""
    rng = np.random.default_rng(0)
    compared = below = 0
    for _ in range(90):
        k = int(rng.integers(2, 5))
        els, a, e = _random_system(rng, k, int(rng.integers(1, 25)))
        hulls, pd_ = PhaseHulls(a, e), _pymatgen(els, a, e)
        cand = np.zeros((30, len(ELEMENTS)))
        cand[:, els] = rng.integers(0, 6, (30, k))
        cand[cand.sum(axis=1) == 0, els[0]] = 1
        ec = rng.normal(-0.6, 0.8, 30)
        res = hulls.evaluate(cand, ec)
        for row, en, mine, dec in zip(cand, ec, res.e_hull, res.decomposition, strict=True):
            if not np.isfinite(mine):  # an element without a phase: checked elsewhere
                continue
            c = _comp(row)
            ref_dec, ref = pd_.get_decomp_and_e_above_hull(PDEntry(c, en * c.num_atoms), allow_negative=True)
            assert mine == pytest.approx(ref, abs=1e-6)
            ref_amounts = {e.composition.reduced_formula: amt for e, amt in ref_dec.items()}
            mine_amounts = {Composition(p.split(" (")[0]).reduced_formula: float(p.split("(")[1][:-1])
                            for p in dec.split(" + ")}
            assert set(mine_amounts) == set(ref_amounts)
            for name, amt in ref_amounts.items():
                assert mine_amounts[name] == pytest.approx(amt, abs=1e-3)
            compared += 1
            below += mine < 0
    assert compared > 2000 and 100 < below < compared - 100


def test_edge_cases():
    a = parse_formulas(["Li2O", "LiO2"]).amounts
    hulls = PhaseHulls(a, np.array([-2.0, -1.5]))
    q = parse_formulas(["Li", "Na", "NaCl", "LiO", "LiCl", "Li2O"]).amounts
    res = hulls.evaluate(q, np.array([0.0, 0.0, -1.0, -1.0, -0.7, -2.0]))
    assert res.e_hull[0] == 0.0 and res.hull_energy[0] == 0.0  # an element alone sits on its hull
    assert res.decomposition[0] == "Li (1.000)"
    # Na and Cl occur in no known phase: no number, and the reason names them
    assert np.isnan(res.e_hull[1]) and "Na" in res.note[1]
    assert np.isnan(res.e_hull[2]) and "Cl" in res.note[2] and "Na" in res.note[2]
    # LiO lies between Li2O (-2.0) and LiO2 (-1.5, below the Li2O-O line): their mix is the hull
    w = np.linalg.solve([[2 / 3, 1 / 3], [1 / 3, 2 / 3]], [0.5, 0.5])  # atom shares of Li2O, LiO2
    assert res.hull_energy[3] == pytest.approx(w @ [-2.0, -1.5])
    assert res.note[3] == ""
    # a known phase on its own composition: e_hull 0 at its own energy
    assert res.e_hull[5] == pytest.approx(0.0)


def test_system_without_phases_measures_against_the_elements():
    hulls = PhaseHulls(parse_formulas(["FeO", "NiS"]).amounts, np.array([-1.4, -0.5]))
    res = hulls.evaluate(parse_formulas(["FeNi", "FeS", "FeNiS2"]).amounts, np.array([-0.2, 0.3, -0.3]))
    np.testing.assert_allclose(res.hull_energy[:2], 0.0)  # no Fe-Ni or Fe-S phase: the elements' line
    np.testing.assert_allclose(res.e_hull[:2], [-0.2, 0.3])
    assert res.hull_energy[2] == pytest.approx(-0.5 * 0.5)  # FeNiS2 = 1/2 NiS + Fe + S by atoms


def test_outliers_are_dropped_and_counted():
    df = pd.DataFrame({"formula": ["Mg2Tc", "CuPaU2", "NaCl", "Fe2O3"],
                       "formation_enthalpy": [-198.7, 43.5, -2.05, -1.65]})
    kept, dropped = clean_formation_energies(df)
    assert dropped == 2 and kept["formula"].tolist() == ["NaCl", "Fe2O3"]
    hulls = PhaseHulls.from_table(df)
    assert hulls.sources["outliers_dropped"] == 2 and len(hulls) == 2
    res = hulls.evaluate(parse_formulas(["Mg2Tc"]).amounts, np.array([-0.1]))
    assert np.isnan(res.e_hull[0]) and "Mg" in res.note[0]  # the outlier did not make Mg known


def test_save_load_and_leave_one_out(tmp_path):
    rng = np.random.default_rng(3)
    els, a, e = _random_system(rng, 3, 20)
    hulls = PhaseHulls(a, e)
    cand = np.zeros((50, len(ELEMENTS)))
    cand[:, els] = rng.integers(1, 5, (50, 3))
    hulls.save(tmp_path / "h.npz")
    back = PhaseHulls.load(tmp_path / "h.npz")
    np.testing.assert_array_equal(back.hull_energy(cand), hulls.hull_energy(cand))
    stable = np.flatnonzero(e < 0)[:3]
    loo = hulls.without(stable)
    keep = np.setdiff1d(np.arange(len(hulls)), stable)  # positions among the negative phases
    ref = PhaseHulls(a[e < -1e-11][keep], e[e < -1e-11][keep])
    np.testing.assert_allclose(loo.hull_energy(cand), ref.hull_energy(cand), atol=1e-12)
    assert not np.allclose(loo.hull_energy(cand), hulls.hull_energy(cand))  # removal mattered


def test_real_oqmd_phases_equal_pymatgen(crabnet_cache):
    """On OQMD's phases: random ternary and quaternary candidates of real chemical systems."""
    from discovery.stability import default_hulls

    hulls = default_hulls(crabnet_cache)
    rng = np.random.default_rng(1)
    systems = [("Li", "Fe", "O"), ("Ba", "Y", "Cu", "O"), ("Al", "Te"), ("Na", "Mn", "P", "O")]
    for system in systems:
        els = np.array([INDEX[s] for s in system])
        ids = hulls._phases_in(sum(1 << int(x) for x in els))
        a = hulls.amounts()[ids]
        pd_ = _pymatgen(els, a, hulls.energies[ids])
        cand = np.zeros((40, len(ELEMENTS)))
        cand[:, els] = rng.integers(1, 6, (40, len(els)))
        ec = rng.normal(-1.0, 0.5, 40)
        res = hulls.evaluate(cand, ec, decompose=False)
        for row, en, mine in zip(cand, ec, res.e_hull, strict=True):
            c = _comp(row)
            ref = pd_.get_e_above_hull(PDEntry(c, en * c.num_atoms), allow_negative=True)
            assert mine == pytest.approx(ref, abs=1e-6)


def test_stability_metrics_on_a_hand_made_case():
    from discovery.stability import stability_metrics

    hull = np.zeros(6)
    ef_true = np.array([-0.1, -0.2, 0.1, 0.3, -0.05, 0.2])  # stable: rows 0, 1, 4
    ef_pred = np.array([-0.2, 0.1, -0.1, 0.2, -0.05, 0.3])  # called stable: rows 0, 2, 4
    m = stability_metrics(ef_true, ef_pred, hull)
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 / 3) and m["accuracy"] == pytest.approx(4 / 6)
    assert m["daf"] == pytest.approx((2 / 3) / 0.5) and m["stable_share"] == 0.5
    assert m["ef_mae"] == pytest.approx(np.abs(ef_pred - ef_true).mean())
    assert m["f1_all_stable"] == pytest.approx(2 * 0.5 / 1.5)
    # predictions measured against a hull 0.15 higher: row 1 is called stable too (rows 0, 1, 2, 4)
    m2 = stability_metrics(ef_true, ef_pred, hull, hull_pred=hull + 0.15)
    assert m2["recall"] == 1.0 and m2["precision"] == pytest.approx(3 / 4)
    assert m2["ed_mae"] == pytest.approx(np.abs(ef_pred - 0.15 - ef_true).mean())


def test_leave_one_out_hull_excludes_only_the_compound_itself():
    # Li2O on the hull; LiO2 above it: Li2O's own hull (without itself) is the Li-LiO2-O one
    a = parse_formulas(["Li2O", "LiO2", "Li3O"]).amounts
    e = np.array([-2.0, -0.5, -1.0])
    hulls = PhaseHulls(a, e)
    loo = hulls.leave_one_out_hull_energy(a, e)
    assert hulls.hull_energy(a[:1])[0] == pytest.approx(-2.0)  # with itself: on the hull
    assert loo[0] == pytest.approx(_line(-0.5, 1 / 3, -1.0, 3 / 4, 2 / 3))  # = -0.9: LiO2 + Li3O
    assert loo[1] == pytest.approx(hulls.hull_energy(a[1:2])[0])  # above the hull: unchanged
    assert loo[1] == pytest.approx(-1.0) and e[1] - loo[1] > 0


def _line(e1: float, x1: float, e2: float, x2: float, x: float) -> float:
    """Energy at Li fraction x on the tie line between (x1, e1) and (x2, e2)."""
    return e1 + (e2 - e1) * (x - x1) / (x2 - x1)


def test_shipped_phases_equal_the_fetched_tables(crabnet_cache):
    """The package's known phases are OQMD's, as `discover data fetch` gives them."""
    from discovery.stability import SHIPPED_PHASES, default_hulls

    shipped, fetched = default_hulls(), default_hulls(crabnet_cache)
    assert SHIPPED_PHASES.is_file() and len(fetched) == 140_798 and len(shipped) < len(fetched) / 4
    q = parse_formulas(["Al2Te", "Ba2YCu3O7", "LiFePO4", "NaMnPO4", "CsPbI3"]).amounts
    rng = np.random.default_rng(0)  # and random compositions of real systems (elements of the phases)
    present = fetched.el_present()
    for ids in rng.choice(len(fetched), (300, 2)):
        q = np.vstack([q, (present[ids].any(axis=0) * rng.integers(1, 5, 85))[None]])
    np.testing.assert_allclose(shipped.hull_energy(q), fetched.hull_energy(q), atol=1e-9)
    assert shipped.evaluate(q[:1], np.zeros(1)).decomposition == ["Al2Te3 (0.556) + Al (0.444)"]


def test_batched_simplex_equals_facets_and_falls_back(monkeypatch):
    """The batched simplex gives the facet construction's hull energy; a row that has not
    settled within the pivot limit is reported, and ``evaluate`` then solves it by the facets,
    with the same energy and decomposition."""
    import discovery.stability as st

    rng = np.random.default_rng(7)
    els, a, e = _random_system(rng, 5, 40)
    els = np.sort(els)
    cand = np.zeros((200, len(ELEMENTS)))
    cand[:, els] = rng.integers(1, 6, (200, 5))
    x = cand[:, els] / cand[:, els].sum(axis=1, keepdims=True)
    hulls = PhaseHulls(a, e)
    system = sum(1 << int(j) for j in els)
    h = hulls.system_hull(system)
    _, pts, energy, _ = hulls._system_points(system)
    pts, energy = np.repeat(pts[None], 200, 0), np.repeat(energy[None], 200, 0)
    value, _, weights, settled = st.batched_hull_lp(x, pts, energy)
    assert settled.all()
    np.testing.assert_allclose(value, (x @ h.mu.T).max(axis=1), atol=1e-10)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0)
    *_, settled = st.batched_hull_lp(x, pts, energy, max_pivots=1)
    assert not settled.all()
    fast = hulls.evaluate(cand, np.zeros(200))
    real = st.batched_hull_lp
    monkeypatch.setattr(st, "batched_hull_lp", lambda *args, **kw: real(*args, **{**kw, "max_pivots": 1}))
    slow = PhaseHulls(a, e).evaluate(cand, np.zeros(200))
    np.testing.assert_allclose(slow.hull_energy, fast.hull_energy, atol=1e-10)

    def parts(text):  # {phase: share}; shares are printed to 3 decimals
        return {p.split(" (")[0]: float(p.split("(")[1][:-1]) for p in text.split(" + ")}

    for mine, ref in zip(slow.decomposition, fast.decomposition, strict=True):
        a_, b_ = parts(mine), parts(ref)
        assert a_.keys() == b_.keys() and all(abs(a_[k] - b_[k]) <= 0.0011 for k in a_)


def test_decompositions_described_in_batch_equal_row_by_row():
    rng = np.random.default_rng(3)
    els, a, e = _random_system(rng, 4, 30)
    hulls = PhaseHulls(a, e)
    n, k = 500, 4
    labels = np.where(rng.random((n, k)) < 0.4, -1 - rng.choice(els, size=(n, k)),
                      rng.integers(0, len(hulls.energies), size=(n, k)))
    weights = rng.dirichlet(np.ones(k), size=n)
    weights[:100, 1] = weights[:100, 0]  # exact ties: by name
    weights[100:200, 2] = weights[100:200, 0] + 3e-10  # near ties: by the shares rounded to 9 places
    weights[200:250, 3] = 0.0  # parts that do not show
    weights[250:260] = 0.0  # nothing shows
    got = hulls._describe_rows(labels, weights)
    want = [hulls._describe(lab, w) for lab, w in zip(labels, weights, strict=True)]
    assert got == want
    assert sum(" + " in t for t in got) > 400 and got[255] == ""


def test_a_copy_without_phases_names_its_own_phases_in_decompositions():
    rng = np.random.default_rng(4)
    els, a, e = _random_system(rng, 3, 12)
    hulls = PhaseHulls(a, e)
    labels, weights = np.array([[0, 1]]), np.array([[0.6, 0.4]])
    hulls._describe_rows(labels, weights)  # builds the lookup of names
    loo = hulls.without([0])
    assert loo._describe_rows(labels, weights) == [loo._describe(labels[0], weights[0])]
    assert loo._describe_rows(labels, weights) != hulls._describe_rows(labels, weights)
