"""CompositionLM: canonical token sequences, grammar, seeded batched sampling, training,
checkpoint resume and persistence (tiny networks on a few dozen formulas)."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from discovery.elements import INDEX
from discovery.errors import ConfigError
from discovery.generation.autoregressive import CompositionLM, compound_counts
from discovery.generation.lm_sampler import gru_weights
from discovery.generation.lm_tokens import (
    BOS,
    CNT0,
    EL0,
    EOS,
    GRAMMAR,
    PAD,
    VOCAB,
    counts_to_tokens,
    tokens_to_counts,
)
from discovery.generation.lm_train import train
from discovery.generation.splits import unique_counts

FORMULAS = [
    "Fe2O3", "NaCl", "KZn2Ru", "LiFePO4", "GaN", "NaN", "MgO", "Al2O3", "SiO2", "TiO2", "CaTiO3",
    "SrTiO3", "BaTiO3", "ZnS", "CdTe", "GaAs", "InP", "CsPbI3", "Li2O", "K2O", "Cu2O", "CuO",
    "NiO", "CoO", "MnO2", "Cr2O3", "V2O5", "LaAlO3", "YBa2Cu3O7", "Bi2Te3", "PbS", "SnO2", "ZrO2",
    "HfO2", "Na2SO4", "K2SO4", "CaCO3", "MgAl2O4", "Fe3O4", "Li3N",
]
TINY = {"units": 16, "embed_dim": 8, "epochs": 2, "batch_size": 16, "block": 256, "patience": 5}


@pytest.fixture(scope="module")
def tiny_lm() -> CompositionLM:
    return CompositionLM(**TINY).fit(FORMULAS, seed=3)


def test_canonical_sequence_round_trips_and_is_ordered():
    c = unique_counts(FORMULAS)
    tok = counts_to_tokens(c)
    assert (tokens_to_counts(tok) == c).all()
    # Fe2O3: Fe before O (electronegativity order), each followed by its count
    fe2o3 = counts_to_tokens(unique_counts(["O3Fe2"]))[0]
    assert fe2o3[0] == BOS and fe2o3[2] == CNT0 + 1 and fe2o3[4] == CNT0 + 2 and fe2o3[5] == EOS
    assert (fe2o3[6:] == PAD).all() and EL0 <= fe2o3[1] < fe2o3[3]
    els = tok[:, 1:-1:2]
    for row in els:
        e = row[(row >= EL0) & (row < CNT0)]
        assert (np.diff(e) > 0).all()


def test_training_sequences_obey_the_grammar_mask():
    tok = counts_to_tokens(unique_counts(FORMULAS))
    x, y = tok[:, :-1], tok[:, 1:]
    prev = np.c_[np.full(len(x), PAD), x[:, :-1]]
    allowed = GRAMMAR[np.arange(x.shape[1])[None], prev, y]
    assert (allowed | (y == PAD)).all()
    assert not GRAMMAR[0, PAD, EOS] and not GRAMMAR[2, EL0, EOS] and GRAMMAR[4, EL0 + 5, EOS]
    assert not GRAMMAR[16, EL0, EL0 + 50] and GRAMMAR[16, EL0, EOS]  # eight elements: only EOS
    assert GRAMMAR.any(axis=2)[::2, EL0:CNT0 - 1].all()  # never a dead end after an element


def test_encoding_rejects_unary_and_big_counts_naming_the_row():
    c = np.zeros((2, 85), dtype=np.int8)
    c[0, INDEX["Fe"]], c[0, INDEX["O"]] = 2, 3
    c[1, INDEX["Fe"]] = 1
    with pytest.raises(ConfigError, match="row 1"):
        counts_to_tokens(c)


def test_same_seed_same_samples_other_seed_other_samples(tiny_lm):
    a = tiny_lm.sample_counts(300, seed=5)
    assert (a == tiny_lm.sample_counts(300, seed=5)).all()
    assert not (a == tiny_lm.sample_counts(300, seed=6)).all()
    assert not (a == tiny_lm.sample_counts(300, seed=(5, 1))).all()


def test_samples_do_not_depend_on_batch_size(tiny_lm):
    ref = tiny_lm.sample_counts(600, seed=(2, 4), batch_size=600)
    for bs in (7, 256, 1000):
        parts = list(tiny_lm.iter_counts(600, seed=(2, 4), batch_size=bs))
        assert max(len(p) for p in parts) <= bs
        assert (np.concatenate(parts) == ref).all()
    assert (tiny_lm.sample_counts(100, seed=(2, 4)) == ref[:100]).all()


def test_a_rows_draw_does_not_depend_on_the_rows_decoding_beside_it(tiny_lm):
    """The sampler drops rows from its loop once they emit EOS; a row's draw must not change
    with which rows remain: not when other rows are forced to end early (its noise is its own
    row's, not its rank among the rows still decoding), and the first rows of a bigger block
    are the smaller block."""
    sampler = tiny_lm.sampler()
    seed = tiny_lm.block_seed(7, 0)
    big = sampler.block(512, seed, 1.3)
    n_el = (big > 0).sum(axis=1)
    assert len(np.unique(n_el)) >= 3  # rows finish at different steps
    assert (sampler.block(40, seed, 1.3) == big[:40]).all()
    assert (sampler.block(300, seed, 1.3) == big[:300]).all()
    nacl = counts_to_tokens(unique_counts(["NaCl"]))[0]  # BOS Na 1 Cl 1 EOS
    forced = np.full((512, 5), -1, dtype=np.int32)
    forced[:64] = nacl[1:6]  # the first 64 rows end after two elements
    ended = sampler.block(512, seed, 1.3, forced)
    assert (ended[:64] == unique_counts(["NaCl"])[0]).all()
    assert (n_el[:64] > 2).any()  # some of them would have gone on
    assert (ended[64:] == big[64:]).all()


def test_next_draw_rows_asks_for_what_the_block_still_needs():
    from discovery.generation.autoregressive import MIN_DRAW_ROWS, next_draw_rows

    assert next_draw_rows(4096, 500, 0.3) == 4096  # 1.5 x 500 / 0.3 = 2,500 rows: 4,096
    assert next_draw_rows(4096, 300, 0.5) == 1024
    assert next_draw_rows(4096, 3, 0.9) == MIN_DRAW_ROWS
    assert next_draw_rows(4096, 10, 0.0) == 1024  # no fresh rows last time: 1/64 assumed
    assert next_draw_rows(256, 300, 0.5) == 256  # never more than a block


def test_distinct_sampling_never_repeats_and_is_seeded(tiny_lm):
    from discovery.encoding import composition_keys

    lm = tiny_lm.with_options(distinct=True)
    ref = lm.sample_counts(800, seed=(3, 1), batch_size=800)
    keys = composition_keys(ref)
    assert len(np.unique(keys)) == 800  # plain sampling repeats (next assert); distinct never
    assert len(np.unique(composition_keys(tiny_lm.sample_counts(800, seed=(3, 1))))) < 800
    for bs in (9, 300):
        assert (np.concatenate(list(lm.iter_counts(800, seed=(3, 1), batch_size=bs))) == ref).all()
    assert (lm.sample_counts(200, seed=(3, 1)) == ref[:200]).all()
    assert not (lm.sample_counts(800, seed=(3, 2)) == ref).all()


def test_distinct_draws_never_repeat_even_cold_and_across_cycles():
    """A model that knows one composition: independent draws at T = 0.02 would repeat it
    forever; draws without replacement (the stochastic beam from the shard's cells) give a
    block of distinct compositions, the known one first, and the next cycles of the one
    shard take the next ranks of the same draw, so they repeat nothing either."""
    lm = CompositionLM(units=16, embed_dim=8, epochs=60, learning_rate=3e-2, block=256, patience=60,
                       shards=1)  # one shard: every block draws from the whole distribution
    lm.fit(["YBa2Cu3O7"], seed=0)
    cold = lm.with_options(temperature=0.02, distinct=True)
    c = cold.sample_counts(768, seed=1)  # three blocks: three cycles of the one shard
    from discovery.encoding import composition_keys, reduce_counts

    assert len(np.unique(composition_keys(c))) == 768
    assert (c[0] == unique_counts(["YBa2Cu3O7"])[0]).all()
    assert (reduce_counts(c) == c).all()  # never a multiple (A2B2) of a composition
    n_el = (c > 0).sum(axis=1)
    assert (n_el >= 2).all() and (n_el <= 8).all()
    assert (cold.sample_counts(256, seed=1) == c[:256]).all()


@pytest.mark.parametrize("temperature", [1.0, 4.0])
def test_every_sample_is_a_valid_compound(tiny_lm, temperature):
    c = tiny_lm.with_options(temperature=temperature).sample_counts(2000, seed=0)
    n_el = (c > 0).sum(axis=1)
    assert c.dtype == np.int8 and c.shape == (2000, 85)
    assert (n_el >= 2).all() and (n_el <= 8).all()
    assert c.min() >= 0 and c.max() <= 8
    if temperature > 1:
        assert n_el.max() > 4  # hot sampling reaches past the training set's sizes


def test_top_p_keeps_grammar_and_narrows_samples(tiny_lm):
    wide = tiny_lm.sample_counts(2000, seed=0)
    narrow = tiny_lm.with_options(top_p=0.3).sample_counts(2000, seed=0)
    assert ((narrow > 0).sum(axis=1) >= 2).all()
    assert len(np.unique(narrow, axis=0)) < len(np.unique(wide, axis=0))


def test_save_load_gives_the_same_samples(tiny_lm, tmp_path):
    tiny_lm.save(tmp_path / "lm")
    back = CompositionLM.load(tmp_path / "lm")
    assert (back.sample_counts(500, seed=9) == tiny_lm.sample_counts(500, seed=9)).all()
    assert back.card["training"]["compositions"] == len(unique_counts(FORMULAS))
    assert len(back.card["training"]["data_sha256"]) == 64
    assert not list((tmp_path / "lm").glob("*.tmp*"))
    # the sampling options are part of the version (the network alone is not)
    versions = set()
    for i, opts in enumerate(({}, {"shards": 8}, {"draw_temperature": 1.5}, {"temperature": 0.9})):
        other = CompositionLM(tiny_lm.card, **{**tiny_lm.hparams, **opts})
        other.model = tiny_lm.model
        other.save(tmp_path / f"v{i}")
        versions.add(CompositionLM.load(tmp_path / f"v{i}").card["version"])
    assert len(versions) == 4 and back.card["version"] in versions


def test_in_graph_step_equals_the_keras_network(tiny_lm):
    """The sampler's folded GRU step gives the Keras model's logits (teacher forcing)."""
    tok = counts_to_tokens(unique_counts(["YBa2Cu3O7", "GaN"]))[:, :-1]
    ref = tiny_lm.model(tok).numpy()
    s = tiny_lm.sampler().net
    w = gru_weights(tiny_lm.model)
    h = tf.zeros([len(tok), s.units])
    for t in range(tok.shape[1]):
        h = s.step(tf.constant(tok[:, t]), s.recurrent(h), h)
        logits = h.numpy() @ w["h_mat"][:, :VOCAB] + w["h_bias"][:VOCAB]
        np.testing.assert_allclose(logits, ref[:, t], rtol=1e-4, atol=1e-4)


def test_cold_sampling_reproduces_a_single_training_composition():
    lm = CompositionLM(units=16, embed_dim=8, epochs=60, learning_rate=3e-2, block=256, patience=60,
                       shards=1)  # one shard: every block draws from the whole distribution
    lm.fit(["YBa2Cu3O7"], seed=0)
    c = lm.with_options(temperature=0.02).sample_counts(256, seed=1)
    assert (c == unique_counts(["YBa2Cu3O7"])[0]).all()


def test_malformed_training_formulas_are_counted_and_reported():
    bad = ["Fe2O3", "Xx2O", "Fe", "Fe0.5O", "NaCl", "Fe9O", "HLiBeBCNOFNa", ""]
    counts, skipped = compound_counts(bad)
    assert len(counts) == 2
    assert skipped["non-integer amount"] == 1 and skipped["fewer than 2 elements"] == 1
    assert skipped["amount above 8"] == 1 and skipped["more than 8 elements"] == 1
    assert sum(skipped.values()) == 6
    with pytest.warns(UserWarning, match="skipped 6 of 8 rows"):
        lm = CompositionLM(**{**TINY, "epochs": 1}).fit(bad)
    assert lm.card["skipped_rows"] == skipped


def test_bad_options_are_one_line_errors():
    with pytest.raises(ConfigError, match="temperature must be > 0, got 0"):
        CompositionLM(temperature=0)
    with pytest.raises(ConfigError, match="'width'"):
        CompositionLM(width=3)
    with pytest.raises(ConfigError, match="none of the 1 formulas"):
        CompositionLM(**TINY).fit(["Fe"])
    with pytest.raises(ConfigError, match="top_p=0.5 applies to independent sampling only"):
        CompositionLM(top_p=0.5, distinct=True)  # draws without replacement would ignore it
    with pytest.raises(ConfigError, match="top_p=0.5 applies to independent sampling only"):
        CompositionLM(decoding="beam").with_options(top_p=0.5)
    with pytest.raises(ConfigError, match="unknown CompositionLM option 'min_fresh'"):
        CompositionLM(min_fresh=2)  # the retired warm-up of independent distinct draws
    with pytest.raises(ConfigError, match="distinct must be True or False, got 'yes'"):
        CompositionLM(distinct="yes")
    with pytest.raises(ConfigError, match="draw_temperature must be None or > 0, got 0"):
        CompositionLM(draw_temperature=0)


def test_resume_continues_exactly(tmp_path):
    c = unique_counts(FORMULAS)
    full = CompositionLM(**{**TINY, "epochs": 3})
    train(full, c, seed=1, run_dir=tmp_path / "a")
    part = CompositionLM(**{**TINY, "epochs": 3})
    s = train(part, c, seed=1, run_dir=tmp_path / "b", budget_s=0)
    assert s["epochs"] == 1 and not s["finished"]
    again = CompositionLM(**{**TINY, "epochs": 3})
    s = train(again, c, seed=1, run_dir=tmp_path / "b", resume=True)
    assert s["epochs"] == 3
    for a, b in zip(full.model.get_weights(), again.model.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    log = (tmp_path / "b" / "log.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in log[1:]] == ["1", "2", "3"]


def test_fine_tuning_starts_from_the_pretrained_network(tiny_lm, tmp_path):
    tiny_lm.save(tmp_path / "base")
    c = unique_counts(FORMULAS[:10])
    ft = CompositionLM(**{**TINY, "epochs": 1, "learning_rate": 1e-9})
    s = train(ft, c, seed=0, init_from=tmp_path / "base" / "model.keras")
    assert s["initialised_from"].endswith("model.keras")
    for a, b in zip(tiny_lm.model.get_weights(), ft.model.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)
    fresh = CompositionLM(**{**TINY, "epochs": 1, "learning_rate": 1e-9})
    train(fresh, c, seed=0)
    assert not np.allclose(tiny_lm.model.get_weights()[0], fresh.model.get_weights()[0], atol=1e-3)


def test_shipped_model_loads_and_samples_compounds():
    from discovery.generation.autoregressive import SHIPPED_LM_DIR

    lm = CompositionLM.load()
    size = sum(f.stat().st_size for f in SHIPPED_LM_DIR.iterdir())
    assert size < 5e6
    card = lm.card
    assert card["generator"] == "lm" and len(card["training"]["data_sha256"]) == 64
    assert card["metrics_mp_validation"]["temperature"] == lm.hparams["temperature"]
    c = lm.sample_counts(1000, seed=0)
    n_el = (c > 0).sum(axis=1)
    assert (n_el >= 2).all() and (n_el <= 8).all() and c.max() <= 8
    assert len(np.unique(c, axis=0)) > 500  # a trained model, not a collapsed one


def test_distinct_draws_after_training_come_from_the_new_weights(tmp_path):
    """Training again replaces the weights: the draws' search (kept per thread) must not keep
    the old network's (the same model saved and loaded draws the same blocks)."""
    lm = CompositionLM(**{**TINY, "epochs": 3}).with_options(distinct=True)
    lm.fit(FORMULAS, seed=3)
    before = lm.sample_counts(512, seed=2)
    # an evaluation callback draws with each epoch's weights; the best epoch's are kept at the end
    train(lm, unique_counts(FORMULAS), seed=5, evaluate=lambda m: {"n": len(m.sample_counts(512, seed=2))})
    after = lm.sample_counts(512, seed=2)
    lm.save(tmp_path / "lm")
    assert (CompositionLM.load(tmp_path / "lm").sample_counts(512, seed=2) == after).all()
    assert not (after == before).all()
