"""The count-pattern WGAN: exact stoichiometries, seeded and batch-independent samples, save and
load, resume equal to an uninterrupted run, skipped training rows counted."""

from __future__ import annotations

import numpy as np
import pytest

from discovery.encoding import count_patterns, parse_formulas
from discovery.errors import ConfigError
from discovery.generation import registry
from discovery.generation.pattern_wgan import PatternWGAN, pattern_tables

TINY = dict(iterations=6, eval_every=3, eval_samples=500, batch_size=32, hidden=16, critic_hidden=16,
            embed_dim=4, z_dim=4, pattern_dim=2)
FIT = ["Fe2O3", "NaCl", "LiCoO2", "CaTiO3", "MgO", "ZnS", "KBr", "Al2O3", "BaSO4", "Cu2MnAl", "TiNiSn",
       "Ni2MnGa", "Co2TiSn", "LiFePO4", "SrTiO3", "GaAs", "InP", "CdTe", "NaN", "Mg2Si"]


@pytest.fixture(scope="module")
def fitted():
    return PatternWGAN(**TINY).fit(FIT, seed=0)


def test_pattern_tables_on_a_hand_made_set():
    c = parse_formulas(["Fe2O3", "Al2O3", "NaCl", "Cu2MnAl"]).amounts.astype(np.int64)
    labels, shares, sites, rows = pattern_tables(c)
    assert labels.tolist() == ["1-1", "2-1-1", "3-2"]
    np.testing.assert_allclose(shares, [0.25, 0.25, 0.5])
    assert sites.tolist() == [[1, 1, 0], [2, 1, 1], [3, 2, 0]] and rows.tolist() == [2, 2, 0, 1]


def test_samples_have_the_training_patterns_in_their_shares(fitted):
    a = fitted.sample_counts(20000, seed=2)
    pats = count_patterns(a)
    assert set(pats) <= set(fitted.patterns.tolist())  # exact stoichiometries, distinct elements
    for label, share in zip(fitted.patterns, fitted.pattern_p, strict=True):
        assert abs(np.mean(pats == label) - share) < 0.02
    assert fitted.atom_embedding().shape == (85, TINY["embed_dim"])


def test_seeded_batch_independent_prefix_and_save_load(fitted, tmp_path):
    a = fitted.sample_counts(9000, seed=7, batch_size=1000)
    assert a.dtype == np.int8 and np.array_equal(a, np.concatenate(list(fitted.iter_counts(9000, 7, 333))))
    assert np.array_equal(a[:100], fitted.sample_counts(100, seed=7))  # sample(m) starts with sample(n)
    assert not np.array_equal(a, fitted.sample_counts(9000, seed=8))
    fitted.save(tmp_path)
    again = registry.load_generator("wgan-pattern", tmp_path)
    assert type(again) is PatternWGAN and again.version == fitted.version
    assert np.array_equal(a, again.sample_counts(9000, seed=7, batch_size=4096))


def test_same_seed_same_training_and_resume_equals_one_run(tmp_path):
    import keras

    one = PatternWGAN(**TINY).fit(FIT, seed=3, run_dir=tmp_path / "one")
    two = PatternWGAN(**TINY).fit(FIT, seed=3)
    assert np.array_equal(one.sample_counts(2000, seed=1), two.sample_counts(2000, seed=1))
    # stop after the first checkpoint (3 of 6 iterations), then resume to the end
    PatternWGAN(**{**TINY, "iterations": 3}).fit(FIT, seed=3, run_dir=tmp_path / "two")
    resumed = PatternWGAN(**TINY).fit(FIT, seed=3, run_dir=tmp_path / "two", resume=True)
    assert [r["iteration"] for r in resumed.card["training"]["log"]] == [3, 6]
    assert one.card["training"]["best_iteration"] == resumed.card["training"]["best_iteration"]
    for name in ("generator", "critic"):  # the state after iteration 6, whatever was selected
        a = keras.models.load_model(tmp_path / "one" / "last" / f"{name}.keras", compile=False)
        b = keras.models.load_model(tmp_path / "two" / "last" / f"{name}.keras", compile=False)
        for w1, w2 in zip(a.get_weights(), b.get_weights(), strict=True):
            np.testing.assert_allclose(w1, w2, rtol=1e-5, atol=1e-6)
    with pytest.raises(ConfigError, match="holds another training"):
        PatternWGAN(**TINY).fit(FIT, seed=4, run_dir=tmp_path / "two", resume=True)


def test_a_half_written_save_is_refused(fitted, tmp_path):
    from discovery.model_files import ModelFileError

    fitted.save(tmp_path / "a")
    other = PatternWGAN(**TINY).fit(FIT, seed=5)
    other.generator.save(tmp_path / "a" / "generator.keras")  # as if killed before the card
    with pytest.raises(ModelFileError, match="do not match the card's version"):
        PatternWGAN.load(tmp_path / "a")


def test_training_counts_skipped_rows_and_checks_options():
    gen = PatternWGAN(**TINY).fit([*FIT, "Xx2O", "Fe0.5O", ""], seed=0)
    assert gen.card["skipped_rows"] == {"unknown element": 1, "non-integer amount": 1, "empty formula": 1}
    assert gen.card["training_compositions"] == len(FIT)
    with pytest.raises(ConfigError, match="unknown PatternWGAN option 'layers'"):
        PatternWGAN(layers=3)
    with pytest.raises(ConfigError, match="iterations must be an integer >= 1"):
        PatternWGAN(iterations=0)
    with pytest.raises(ConfigError, match="z_dim must be an integer"):
        PatternWGAN(z_dim=2.5)
    with pytest.raises(ConfigError, match=r"val_fraction must be a number in \(0, 1\)"):
        PatternWGAN(val_fraction=1.0)
    with pytest.raises(ConfigError, match="not fitted"):
        PatternWGAN().sample(3)
    with pytest.raises(ConfigError, match="at least 2"):
        PatternWGAN(**TINY).fit(["NaCl"])
    two = PatternWGAN(**TINY).fit(["NaCl", "Fe2O3"])  # still one validation row to select on
    assert (two.card["train_rows"], two.card["validation_rows"]) == (1, 1)
