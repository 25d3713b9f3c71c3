"""Beam decoding of the composition LM: exact log probabilities, best first, sampling without
replacement at T > 0, products of experts, and the beam-first stream of ``CompositionLM``."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from discovery.encoding import composition_keys
from discovery.errors import ConfigError
from discovery.generation.autoregressive import CompositionLM
from discovery.generation.lm_beam import GRUBeamSearch, truncated_gumbel
from discovery.generation.lm_sampler import folded_log_probs, gru_weights
from discovery.generation.lm_tokens import PAD, REVERSE_COLUMNS, counts_to_tokens
from discovery.generation.lm_train import masked_logits, train
from discovery.generation.splits import unique_counts

FORMULAS = ["Fe2O3", "NaCl", "GaN", "MgO", "Al2O3", "SiO2", "TiO2", "CaTiO3", "SrTiO3", "ZnS",
            "GaAs", "InP", "Li2O", "CuO", "NiO", "LaAlO3", "Bi2Te3", "SnO2", "Na2SO4", "Li3N"]
TINY = {"units": 16, "embed_dim": 8, "epochs": 30, "batch_size": 8, "block": 256, "patience": 30,
        "learning_rate": 1e-2}


def log_probs(model, counts: np.ndarray, batch: int = 16384) -> np.ndarray:
    """The Keras reference for ``lm_sampler.folded_log_probs``: log p [N] of count vectors
    [N, 85] (2..8 elements, counts 1..8) under a network, the sum of its grammar-masked
    log-softmax over each composition's tokens (teacher forcing)."""
    fn = _log_prob_fn(model)
    tok = counts_to_tokens(counts)
    out = [fn(tf.constant(tok[i:i + batch])).numpy() for i in range(0, len(tok), batch)]
    return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)


def _log_prob_fn(model):
    @tf.function(reduce_retracing=True, autograph=False)
    def fn(tokens):
        x, y = tokens[:, :-1], tokens[:, 1:]
        logp = tf.nn.log_softmax(masked_logits(model(x, training=False), x), axis=-1)
        return tf.reduce_sum(tf.where(y != PAD, tf.gather(logp, y, batch_dims=2), 0.0), axis=1)
    return fn


@pytest.fixture(scope="module")
def lm() -> CompositionLM:
    return CompositionLM(**TINY).fit(FORMULAS, seed=1)


@pytest.fixture(scope="module")
def other(lm) -> CompositionLM:
    return CompositionLM(**TINY).fit(FORMULAS, seed=2)


def teacher_forced_logp(models, counts: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """log p of each composition under the product of ``models`` (mean of masked log-softmax,
    renormalised; each token's distribution at ``temperature``), summed over its tokens: the
    reference the beam's scores must equal."""
    tok = tf.constant(counts_to_tokens(counts))
    x, y = tok[:, :-1], tok[:, 1:]
    logp = tf.add_n([tf.nn.log_softmax(masked_logits(m(x), x), axis=-1) for m in models]) / len(models)
    logp = tf.nn.log_softmax(masked_logits(logp, x) / temperature, axis=-1)
    picked = tf.gather(logp, y, batch_dims=2)
    return tf.reduce_sum(tf.where(y != PAD, picked, 0.0), axis=1).numpy()


@pytest.mark.parametrize("members", [1, 2])
def test_beam_scores_are_exact_log_probabilities_best_first(lm, other, members):
    models = [lm.model, other.model][:members]
    counts, phi = GRUBeamSearch([gru_weights(m) for m in models]).search(300, np.array([0, 1]))
    assert len(counts) == 300 and (np.diff(phi) <= 1e-6).all()
    assert len(np.unique(counts, axis=0)) == 300  # distinct sequences (A2B2 and AB both may occur)
    np.testing.assert_allclose(phi, teacher_forced_logp(models, counts), atol=2e-4)
    # the beam finds likelier compositions than 4,000 ancestral draws do (beam search is not
    # exact: a prefix can drop out before its completion would have won)
    pool = np.unique(lm.with_options(temperature=1.0).sample_counts(4000, seed=3), axis=0)
    pool_logp = np.sort(teacher_forced_logp(models, pool))[::-1]
    assert phi[0] >= pool_logp[0] - 1e-5 and phi[:100].mean() > pool_logp[:100].mean()


def test_folded_scoring_equals_the_keras_network(lm):
    counts = lm.with_options(temperature=1.0).sample_counts(700, seed=8)
    fast = folded_log_probs(gru_weights(lm.model), counts_to_tokens(counts), chunk=256)
    np.testing.assert_allclose(fast, log_probs(lm.model, counts), atol=1e-4)
    np.testing.assert_allclose(fast, teacher_forced_logp([lm.model], counts), atol=1e-4)


def test_a_beam_wider_than_the_first_steps_holds_only_valid_compounds(lm):
    """Step 0 has 84 children and k = 3,000: masked tokens must never fill the beam."""
    counts, phi = GRUBeamSearch(gru_weights(lm.model)).search(3000, np.array([0, 2]))
    n_el = (counts > 0).sum(axis=1)
    assert len(counts) == 3000 and (n_el >= 2).all() and (n_el <= 8).all() and (counts <= 8).all()
    assert (phi > -1e3).all()
    np.testing.assert_allclose(phi, teacher_forced_logp([lm.model], counts), atol=2e-4)


def test_two_copies_of_one_network_decode_like_the_network(lm):
    w = gru_weights(lm.model)
    a, pa = GRUBeamSearch(w).search(200, np.array([0, 1]))
    b, pb = GRUBeamSearch([w, w]).search(200, np.array([0, 1]))
    assert (a == b).all()
    np.testing.assert_allclose(pa, pb, atol=1e-5)


def test_stochastic_beam_is_seeded_and_draws_without_replacement(lm):
    bs = GRUBeamSearch(gru_weights(lm.model))
    a, _ = bs.search(150, np.array([5, 6]), temperature=1.0)
    assert (a == bs.search(150, np.array([5, 6]), temperature=1.0)[0]).all()
    assert not (a == bs.search(150, np.array([5, 7]), temperature=1.0)[0]).all()
    assert len(np.unique(a, axis=0)) == 150


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0])
def test_a_stochastic_beam_of_one_is_an_exact_sample(lm, temperature):
    """k = 1 at T draws one sequence with its probability under the model at T (Kool et al.):
    the most likely composition comes up as often as that probability says."""
    bs = GRUBeamSearch(gru_weights(lm.model))
    top, _ = bs.search(1, np.array([0, 0]))
    p_top = float(np.exp(teacher_forced_logp([lm.model], top, temperature)[0]))
    draws = 300
    hits = sum((bs.search(1, np.array([9, s]), temperature=temperature)[0][0] == top[0]).all()
               for s in range(draws))
    sigma = np.sqrt(draws * p_top * (1 - p_top))
    assert abs(hits - draws * p_top) < 4 * sigma + 1, (hits, draws * p_top)


def test_results_do_not_depend_on_the_chunk(lm, other):
    w = [gru_weights(lm.model), gru_weights(other.model)]
    a, pa = GRUBeamSearch(w).search(900, np.array([0, 1]))
    b, pb = GRUBeamSearch(w, chunk=7).search(900, np.array([0, 1]))
    assert (a == b).all()
    np.testing.assert_allclose(pa, pb, atol=1e-5)


def test_truncated_gumbel_keeps_order_and_has_the_parent_as_maximum():
    g = tf.constant([[0.3, -1.2, 2.5, 0.0]])
    out = truncated_gumbel(g, tf.reduce_max(g, axis=1, keepdims=True), tf.constant([[1.0]])).numpy()[0]
    assert out.max() == pytest.approx(1.0, abs=1e-6)
    assert (np.argsort(out) == np.argsort(g.numpy()[0])).all() and (out <= 1.0 + 1e-6).all()


def test_beam_stream_starts_with_the_beam_and_never_repeats(lm, other, tmp_path):
    beam = lm.with_options(decoding="beam", beam_width=120, temperature=0.8).with_members([other.model])
    head = beam.beam_head(0)
    ref = beam.sample_counts(400, seed=4)
    assert (ref[: len(head)] == head).all() and len(head) >= 100
    assert len(np.unique(composition_keys(ref))) == 400
    for bs in (7, 150):
        assert (np.concatenate(list(beam.iter_counts(400, seed=4, batch_size=bs))) == ref).all()
    assert (beam.sample_counts(50, seed=4) == ref[:50]).all()
    assert (beam.sample_counts(400, seed=5)[: len(head)] == head).all()  # T = 0: the seed only moves draws
    beam.save(tmp_path / "lm")
    back = CompositionLM.load(tmp_path / "lm")
    assert back.card["networks"] == ["model.keras", "member_1.keras"]
    assert (back.sample_counts(400, seed=4) == ref).all()
    lm.save(tmp_path / "single")
    versions = {CompositionLM.load(tmp_path / d).card["version"] for d in ("lm", "single")}
    assert len(versions) == 2
    lm.save(tmp_path / "lm")  # saving fewer networks over a folder removes the former extras
    assert sorted(p.name for p in (tmp_path / "lm").glob("*.keras")) == ["model.keras"]


def test_reverse_networks_reorder_the_beam_by_the_blended_log_probability(lm, tmp_path):
    rev = CompositionLM(**TINY)
    train(rev, unique_counts(FORMULAS)[:, REVERSE_COLUMNS], seed=4)
    beam = lm.with_options(decoding="beam", beam_width=150)
    plain = beam.beam_head(0)
    fwd = log_probs(lm.model, plain)
    assert (np.diff(fwd) <= 1e-4).all()  # without rescoring: the search's order
    for w in (0.0, 0.5, 1.0):
        head = beam.with_options(reverse_weight=w).with_reverse([rev.model]).beam_head(0)
        assert len(head) == len(plain) and set(composition_keys(head)) == set(composition_keys(plain))
        score = (1 - w) * log_probs(lm.model, head) + w * log_probs(rev.model, head[:, REVERSE_COLUMNS])
        assert (np.diff(score) <= 1e-4).all()
    assert not (head == plain).all()
    ship = beam.with_reverse([rev.model])
    ship.save(tmp_path / "lm")
    back = CompositionLM.load(tmp_path / "lm")
    assert back.card["reverse_networks"] == ["reverse_1.keras"]
    assert (back.sample_counts(300, seed=2) == ship.sample_counts(300, seed=2)).all()
    beam.save(tmp_path / "no_reverse")
    assert back.card["version"] != CompositionLM.load(tmp_path / "no_reverse").card["version"]


def test_a_reverse_order_network_cannot_generate_and_bad_cards_are_refused(lm, tmp_path):
    from discovery.model_files import ModelFileError

    rev = lm.with_options()
    rev.card = {**lm.card, "element_order": "reverse"}
    with pytest.raises(ConfigError, match="reverse order: it rescores another model's beam"):
        rev.sample_counts(10, seed=0)
    lm.save(tmp_path / "lm")
    card = tmp_path / "lm" / "card.json"
    import json

    for bad in ([], ["../x.keras"], ["model.h5"]):
        card.write_text(json.dumps({**json.loads(card.read_text()), "networks": bad}))
        with pytest.raises(ModelFileError, match="lists bad network files"):
            CompositionLM.load(tmp_path / "lm")


def test_bad_decoding_options_are_one_line_errors(lm):
    with pytest.raises(ConfigError, match="decoding must be one of sample, beam, got 'greedy'"):
        CompositionLM(decoding="greedy")
    with pytest.raises(ConfigError, match="beam_width must be an integer in 1..10,000,000, got 0"):
        lm.with_options(beam_width=0)
    with pytest.raises(ConfigError, match="beam_width must be an integer in 1..10,000,000, got True"):
        lm.with_options(beam_width=True)
    with pytest.raises(ConfigError, match="beam_temperature must be >= 0, got '0.5'"):
        lm.with_options(beam_temperature="0.5")
    with pytest.raises(ConfigError, match="beam_temperature must be >= 0, got -1"):
        lm.with_options(beam_temperature=-1)
    with pytest.raises(ConfigError, match="reverse_weight must be in \\[0, 1\\], got 2"):
        lm.with_options(reverse_weight=2)
    with pytest.raises(ConfigError, match="unknown CompositionLM option 'beam'"):
        lm.with_options(beam=3)


@pytest.fixture(scope="module")
def cells(lm):
    """The tiny model's cells at T = 1 in four shards, and shard 0's as the beam's roots."""
    from discovery.generation.lm_shards import Prefixes, build_shards

    shards = build_shards(gru_weights(lm.model), 1.0, 4)
    own = shards.cells[0]
    return shards, Prefixes(shards.prefixes[own], shards.allow[own])


def _cell_of(tokens: np.ndarray, roots) -> np.ndarray:
    """Per sequence (tokens BOS ... EOS): whether some cell's prefix starts it and that cell
    allows the token after the prefix."""
    ok = np.zeros(len(tokens), dtype=bool)
    for pre, allow in zip(roots.tokens, roots.allow, strict=True):
        n = int((pre >= 0).sum())
        match = (tokens[:, 1:n + 1] == pre[:n]).all(axis=1) & allow[tokens[:, n + 1]]
        ok |= match
    return ok


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_a_beam_from_cells_continues_their_prefixes_with_exact_log_probabilities(lm, cells, temperature):
    shards, roots = cells
    bs = GRUBeamSearch(gru_weights(lm.model))
    counts, phi = bs.search(120, np.array([3, 4]), temperature, roots=roots)
    assert len(counts) == 120 and len(np.unique(counts, axis=0)) == 120  # distinct sequences
    assert _cell_of(counts_to_tokens(counts), roots).all()
    # a root carries its cell's mass, its children are scored among the allowed tokens: each
    # sequence ends with its own log p under the model
    np.testing.assert_allclose(phi, teacher_forced_logp([lm.model], counts), atol=2e-4)
    best, _ = bs.search(120, np.array([3, 4]), 0.0, roots=roots)
    other = shards.cells[1]
    from discovery.generation.lm_shards import Prefixes

    theirs, _ = bs.search(120, np.array([3, 4]), 0.0,
                          roots=Prefixes(shards.prefixes[other], shards.allow[other]))
    assert not set(composition_keys(best)) & set(composition_keys(theirs))  # shards are disjoint


def test_a_beam_of_one_from_cells_is_an_exact_sample_of_the_shard(lm, cells):
    """k = 1 from a shard's cells draws one sequence with its probability under the model
    restricted to the shard: each cell comes up as often as its share of the shard's mass
    says (chi-square over the cells), and so do the shard's likeliest sequences."""
    shards, roots = cells
    bs = GRUBeamSearch(gru_weights(lm.model))
    best, phi = bs.search(400, np.array([0, 0]), roots=roots)  # exact log p (the test above)
    share = np.cumsum(np.exp(phi)) / shards.shard_mass()[0]
    m = int(np.searchsorted(share, 0.3)) + 1  # the likeliest sequences holding 30% of the shard
    top, p = {row.tobytes() for row in best[:m]}, float(share[m - 1])
    draws = 300
    drawn = np.concatenate([bs.search(1, np.array([7, s]), 1.0, roots=roots)[0] for s in range(draws)])
    hits = sum(row.tobytes() in top for row in drawn)
    sigma = np.sqrt(draws * p * (1 - p))
    assert 0.25 < p < 0.6 and abs(hits - draws * p) < 4 * sigma, (hits, draws * p)
    tokens = counts_to_tokens(drawn)
    cell = np.full(draws, -1)
    for i, (pre, allow) in enumerate(zip(roots.tokens, roots.allow, strict=True)):
        n = int((pre >= 0).sum())
        cell[(tokens[:, 1:n + 1] == pre[:n]).all(axis=1) & allow[tokens[:, n + 1]]] = i
    mass = np.exp(shards.log_mass[shards.cells[0]])
    expected = draws * mass / mass.sum()
    observed = np.bincount(cell, minlength=len(mass))
    assert (cell >= 0).all() and len(mass) >= 5
    chi2 = float(((observed - expected) ** 2 / expected).sum())
    assert chi2 < 3 * len(mass) + 10, (observed, expected.round(1))  # a uniform choice of cell: > 100


def test_excluded_compositions_and_multiples_never_finish(lm, cells):
    from discovery.encoding import reduce_counts

    _, roots = cells
    bs = GRUBeamSearch(gru_weights(lm.model))
    free, _ = bs.search(150, np.array([1, 2]), 1.0, roots=roots)
    out = np.sort(composition_keys(free[:40]))
    held, _ = bs.search(150, np.array([1, 2]), 1.0, exclude=out, roots=roots)
    keys = composition_keys(held)
    assert not np.isin(keys, out).any() and len(np.unique(keys)) == 150
    assert (reduce_counts(held) == held).all() and bs.skipped == 0  # excluded: not counted as skipped
    skipped, _ = bs.search(150, np.array([1, 2]), 1.0, skip=out, roots=roots)
    assert not np.isin(composition_keys(skipped), out).any() and bs.skipped >= 40


@pytest.mark.parametrize("from_cells", [False, True])
def test_a_narrow_stochastic_beam_is_the_start_of_a_wider_one(lm, cells, from_cells):
    """A node's Gumbel noise is a function of (seed, its prefix, the token), not of its place in
    the beam: the k best perturbed sequences of a search of width k are the first k of a wider
    search (with noise drawn by position they were not), so the cycles of one shard, which take
    successive ranks, do not repeat each other."""
    roots = cells[1] if from_cells else None
    narrow, _ = GRUBeamSearch(gru_weights(lm.model), chunk=64).search(100, np.array([2, 3]), 1.0, roots=roots)
    wide, _ = GRUBeamSearch(gru_weights(lm.model)).search(300, np.array([2, 3]), 1.0, roots=roots)
    assert len(wide) == 300 and (wide[:100] == narrow).all()  # nor on the chunks the rows are scored in


def test_node_noise_is_the_same_bits_in_tensorflow_and_numpy():
    from discovery.generation.lm_beam import _mix, _mix_np

    z = np.array([0, 1, 2**63 + 5, 2**64 - 1, 123456789], dtype=np.uint64)
    assert (_mix(tf.constant(z)).numpy() == _mix_np(z)).all()
    assert len(set(_mix_np(z).tolist())) == len(z)
