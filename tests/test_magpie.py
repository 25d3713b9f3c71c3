"""discovery.magpie against matminer's ElementProperty.from_preset("magpie")."""

from __future__ import annotations

import numpy as np
import pytest

import discovery.magpie as magpie
from discovery.elements import INDEX, N_ELEMENTS
from discovery.encoding import parse_formulas
from discovery.magpie import MAGPIE_PROPERTIES, MAGPIE_STATS, magpie_features, magpie_labels


def _col(stat: str, prop: str) -> int:
    return magpie_labels().index(f"MagpieData {stat} {prop}")


@pytest.fixture(scope="module")
def preset():
    pytest.importorskip("matminer")
    from matminer.featurizers.composition import ElementProperty

    return ElementProperty.from_preset("magpie")


def test_labels_match_matminer(preset):
    assert magpie_labels() == preset.feature_labels()
    assert list(MAGPIE_PROPERTIES) == list(preset.features)
    assert list(MAGPIE_STATS) == list(preset.stats)


def test_table_matches_matminer_data(preset):
    from pymatgen.core.periodic_table import Element

    from discovery.elements import ELEMENTS

    ref = np.array([[preset.data_source.get_elemental_property(Element(e), p) for p in MAGPIE_PROPERTIES]
                    for e in ELEMENTS], dtype=float)
    np.testing.assert_array_equal(magpie.magpie_table(), ref)


def test_equals_matminer_featurize(preset, training_data):
    from pymatgen.core import Composition

    from discovery.data import load_gan_formulas, load_supercon_tc

    rng = np.random.default_rng(20240611)
    gan = load_gan_formulas()["formula"].to_numpy()
    sc = load_supercon_tc()["formula"].to_numpy()
    formulas = [str(f) for f in rng.choice(gan, min(700, len(gan)), replace=False)]
    formulas += [str(f) for f in rng.choice(sc, 300, replace=False)]
    batch = parse_formulas(formulas)
    assert batch.valid.all()
    ours = magpie_features(batch.amounts)
    ref = np.array([preset.featurize(Composition(f)) for f in formulas], dtype=np.float64)
    assert ours.shape == ref.shape == (len(formulas), 132) and len(formulas) >= 700
    np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=1e-6, equal_nan=True)


def test_nacl_by_hand():
    f = magpie_features(parse_formulas(["NaCl"]).amounts)[0]
    assert f[_col("mean", "Number")] == pytest.approx(14.0)
    assert f[_col("range", "Number")] == pytest.approx(6.0)
    assert f[_col("minimum", "Number")] == 11.0
    assert f[_col("maximum", "Number")] == 17.0
    assert f[_col("avg_dev", "Number")] == pytest.approx(3.0)
    assert f[_col("mode", "Number")] == 11.0  # equal amounts: the smaller value wins


def test_mode_takes_largest_amount_and_near_ties():
    f = magpie_features(parse_formulas(["Fe2O3"]).amounts)[0]
    assert f[_col("mode", "Number")] == 8.0
    a = np.zeros((1, N_ELEMENTS))
    a[0, INDEX["Fe"]], a[0, INDEX["O"]] = 1.0, 1.0 + 1e-9  # np.isclose tie, as matminer
    assert magpie_features(a)[0, _col("mode", "Number")] == 8.0
    a[0, INDEX["Fe"]] = 1.0 + 1e-9
    assert magpie_features(a)[0, _col("mode", "Number")] == 8.0


def test_scale_invariant_and_empty_rows_nan():
    a = parse_formulas(["Fe2O3", "Fe4O6", "Ba0.4K0.6Fe2As2"]).amounts
    out = magpie_features(np.vstack([a, np.zeros((1, N_ELEMENTS))]))
    np.testing.assert_allclose(out[0], out[1], rtol=1e-12)
    assert np.isfinite(out[:3]).all()
    assert np.isnan(out[3]).all()
    assert magpie_features(np.zeros((0, N_ELEMENTS))).shape == (0, 132)


def test_nan_elemental_values_follow_property_stats(monkeypatch):
    """A missing elemental value: min/max/range/mean/avg_dev NaN; mode NaN only if it is among the ties."""
    pytest.importorskip("matminer")
    from matminer.featurizers.utils.stats import PropertyStats

    table = np.array(magpie.magpie_table())
    table[INDEX["O"], 0] = np.nan
    monkeypatch.setattr(magpie, "magpie_table", lambda: table)
    cases = {"Fe2O3": ([26.0, np.nan], [2.0, 3.0]), "Fe3O2": ([26.0, np.nan], [3.0, 2.0])}
    out = magpie_features(parse_formulas(list(cases)).amounts)
    for row, (vals, w) in zip(out, cases.values(), strict=True):
        ref = [PropertyStats.calc_stat(vals, s, w) for s in MAGPIE_STATS]
        np.testing.assert_array_equal(row[:len(MAGPIE_STATS)], ref)
    assert np.isnan(out[0, _col("mode", "Number")]) and out[1, _col("mode", "Number")] == 26.0


def test_rejects_bad_input():
    with pytest.raises(ValueError):
        magpie_features(np.zeros((2, 3)))
    with pytest.raises(ValueError):
        magpie_features(-np.ones((1, N_ELEMENTS)))
