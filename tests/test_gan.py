import keras
import numpy as np
import pytest
import tensorflow as tf

from discovery.elements import ELEMENTS, INDEX
from discovery.encoding import CompositionError, encode
from discovery.errors import ConfigError
from discovery.gan.models import (
    AtomEmbedding,
    atom_embedding,
    build_critic,
    build_generator,
    embedding_descriptor,
)
from discovery.gan.sampler import CompositionSampler
from discovery.gan.train import GanConfig, GanTrainer
from discovery.model_files import ModelFileError, load_keras_model

tf.config.experimental.enable_op_determinism()


def test_generator_shapes_follow_table3():
    g = build_generator("paper")
    assert g.output_shape == (None, 85, 8, 1)
    shapes = [layer.output.shape[1:] for layer in g.layers if layer.name.startswith("re_lu")]
    assert [tuple(s) for s in shapes] == [(5120,), (11, 8, 128), (22, 8, 64), (43, 8, 32)]
    assert build_generator("slim").output_shape == (None, 85, 8, 1)


def test_equation5_is_count_weighted_sum_of_embeddings():
    rng = np.random.default_rng(0)
    counts = np.zeros((50, 85), dtype=np.int64)
    for row in counts:
        row[rng.choice(85, 3, replace=False)] = rng.integers(1, 9, 3)
    from discovery.encoding import counts_to_matrix

    x = counts_to_matrix(counts).astype(np.float32)
    critic = build_critic(embedding_dim=16)
    t = atom_embedding(critic)
    layer = critic.get_layer("atom_embedding")
    c = np.asarray(layer(x))
    explicit = np.stack([sum(counts[i, e] * t[e] for e in np.flatnonzero(counts[i])) for i in range(50)])
    np.testing.assert_allclose(c, explicit, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(embedding_descriptor(counts, t), explicit, rtol=1e-5, atol=1e-5)
    assert t.shape == (85, 16) and np.abs(t).max() <= 1.0  # tanh-bounded


def _tiny_trainer(tmp_path, name="run", **kw):
    x = encode(["Fe2O3", "NaCl", "LiCoO2", "MgO", "Al2O3", "SiO2", "CaTiO3", "ZnS"] * 8).astype(np.float32)
    cfg = GanConfig(generator="slim", batch_size=16, n_critic=2, embedding_dim=8,
                    eval_every=1000, eval_samples=64, seed=3, **kw)
    return GanTrainer(cfg, tmp_path / name, x[:56], x[56:])


def test_training_moves_critic(tmp_path):
    tr = _tiny_trainer(tmp_path)
    w0 = [w.copy() for w in tr.critic.get_weights()]
    before = tr.val_critic_loss(tr.val_x)  # real vs real: zero
    assert before == pytest.approx(0.0, abs=1e-6)
    tr.train(iterations=5, progress=False)
    fake = np.stack([tr.val_x[0] * 0] * 8)  # empty compositions vs real ones
    assert tr.val_critic_loss(fake) != pytest.approx(0.0, abs=1e-4)
    assert any(not np.allclose(a, b) for a, b in zip(w0, tr.critic.get_weights(), strict=True))


def test_resume_continues_where_it_stopped(tmp_path):
    straight = _tiny_trainer(tmp_path, "a")
    straight.train(iterations=4, progress=False)
    first = _tiny_trainer(tmp_path, "b")
    first.train(iterations=2, progress=False)
    resumed = _tiny_trainer(tmp_path, "b")
    resumed.restore(tmp_path / "b" / "last")
    assert resumed.state.step == 2
    resumed.train(iterations=4, progress=False)
    assert resumed.state.step == 4
    for a, b in zip(straight.generator.get_weights(), resumed.generator.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_save_load_gives_identical_samples(tmp_path):
    tr = _tiny_trainer(tmp_path)
    tr.train(iterations=1, progress=False)
    s1 = CompositionSampler(tr.generator, "sample").sample_counts(300, seed=7, batch_size=128)
    loaded = load_keras_model(tmp_path / "run" / "last" / "generator.keras")
    s2 = CompositionSampler(loaded, "sample").sample_counts(300, seed=7, batch_size=300)
    assert np.array_equal(s1, s2)  # same seed, any batch size: the same samples
    s3 = CompositionSampler(loaded, "sample").sample_counts(300, seed=8)
    assert not np.array_equal(s1, s3)


def test_missing_and_corrupt_weights(tmp_path):
    with pytest.raises(ModelFileError, match="not found"):
        load_keras_model(tmp_path / "nope.keras")
    bad = tmp_path / "generator.keras"
    bad.write_bytes(b"garbage")
    with pytest.raises(ModelFileError, match="corrupt") as info:
        load_keras_model(bad)
    assert str(bad) in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(ModelFileError, match="card"):
        CompositionSampler.load(tmp_path)


def test_atom_embedding_serializes():
    layer = AtomEmbedding(4)
    assert AtomEmbedding.from_config(layer.get_config()).dim == 4
    assert INDEX["Fe"] == 22


def test_quality_metrics_and_baseline():
    from discovery.encoding import composition_keys, parse_formulas
    from discovery.gan.quality import GeneratorQuality
    from discovery.generation.baselines import EnhancedRandom
    from discovery.known import KnownMaterials

    known = KnownMaterials.from_formulas(["Fe2O3", "NaCl"])
    holdout = composition_keys(parse_formulas(["MgO", "ZnS"]).amounts.astype(np.int64))
    samples = parse_formulas(["Fe4O6", "MgO", "MgO", "Mg2O2", "ZnS", "Li", "CaTiO3", "NaCl"]).amounts
    q = GeneratorQuality(known, holdout)(samples.astype(np.int64))
    assert q["decodable_pct"] == pytest.approx(100 * 7 / 8)  # Li alone is not a compound
    assert q["unique_pct"] == pytest.approx(100 * 5 / 8)  # Fe2O3, MgO, ZnS, CaTiO3, NaCl
    assert q["novel_of_unique_pct"] == pytest.approx(100 * 3 / 5)
    assert q["holdout_recovered"] == 2 and q["elements_1_pct"] == pytest.approx(12.5)
    bare = GeneratorQuality(None, holdout, smact_limit=0)(samples.astype(np.int64))
    assert list(bare) == [k for k in q if k not in ("novel_of_unique_pct", "charge_neutral_pct",
                                                     "en_balanced_pct")]
    assert bare["holdout_recovered"] == 2
    base = EnhancedRandom().fit(samples.astype(np.int64)[[0, 1, 4, 6]])
    drawn = base.sample_counts(2000, seed=1)
    n_el = (drawn > 0).sum(1)
    assert set(np.unique(n_el)) <= {2, 3} and abs((n_el == 3).mean() - 0.25) < 0.05
    assert np.array_equal(drawn, base.sample_counts(2000, seed=1))


def test_pattern_site_baseline_keeps_patterns_and_site_elements():
    from discovery.encoding import count_patterns, parse_formulas
    from discovery.generation.baselines import PatternSiteRandom

    fit = ["Cu2MnAl", "Co2TiSn", "Ni2MnGa", "TiNiSn", "ZrCoSb", "CoFeMnSi"]
    base = PatternSiteRandom().fit(parse_formulas(fit).amounts.astype(np.int64))
    drawn = base.sample_counts(6000, seed=3)
    labels = count_patterns(drawn)
    for pattern, share in (("2-1-1", 0.5), ("1-1-1", 1 / 3), ("1-1-1-1", 1 / 6)):
        assert abs((labels == pattern).mean() - share) < 0.03
    x2yz = drawn[labels == "2-1-1"]
    doubled = {ELEMENTS[e] for e in np.flatnonzero((x2yz == 2).any(axis=0))}
    assert doubled == {"Cu", "Co", "Ni"}  # only elements seen on the 2 site there
    assert (x2yz == 2).sum(axis=1).tolist() == [1] * len(x2yz)
    assert np.array_equal(drawn, base.sample_counts(6000, seed=3))


@pytest.mark.parametrize("rule", ["argmax", "sample"])
def test_graph_decoding_equals_codec(rule):
    from discovery.encoding import decode_counts

    gen = build_generator("slim", logit_bias=0.0)  # elements often present, counts spread
    sampler = CompositionSampler(gen, rule)
    rng = np.random.default_rng(3)
    z = rng.standard_normal((256, 128), dtype=np.float32)
    in_graph = sampler.counts_for(z, np.random.default_rng(4).random((256, 85), dtype=np.float32))
    codec = decode_counts(sampler._probabilities(z), rule, np.random.default_rng(4))
    assert (in_graph > 0).mean() > 0.05 and len(np.unique(in_graph)) > 3
    assert (in_graph != codec).mean() < 1e-3  # float32 rounding at a class boundary at most


def test_unknown_decoding_rule():
    with pytest.raises(CompositionError, match="'mode'"):
        CompositionSampler(build_generator("slim"), "mode")


def test_minibatch_std_critic_sees_batch_spread(tmp_path):
    critic = build_critic(embedding_dim=8, minibatch_std=True)
    x = encode(["Fe2O3", "NaCl", "LiCoO2", "MgO"]).astype(np.float32)
    same = np.repeat(x[:1], 4, axis=0)
    varied, collapsed = np.asarray(critic(x)), np.asarray(critic(same))
    assert not np.isclose(varied[0, 0], collapsed[0, 0])  # Fe2O3 scored differently in each batch
    tr = _tiny_trainer(tmp_path, minibatch_std=True)
    w0 = [w.copy() for w in tr.critic.get_weights()]
    tr.train(iterations=2, progress=False)
    assert any(not np.allclose(a, b) for a, b in zip(w0, tr.critic.get_weights(), strict=True))
    tr.save(tmp_path / "ck")
    assert "MinibatchStd" in str(load_keras_model(tmp_path / "ck" / "critic.keras").layers)


@pytest.mark.parametrize("variant", ["paper", "slim"])
def test_fast_inference_equals_generator(variant):
    from discovery.gan.inference import fast_logits
    from discovery.gan.models import logits_model

    gen = build_generator(variant)
    rng = np.random.default_rng(0)
    for layer in gen.layers:  # trained-looking batch-norm statistics, so folding matters
        if "batch_normalization" in layer.name:
            shape = layer.moving_mean.shape
            layer.moving_mean.assign(rng.normal(0, 0.3, shape).astype(np.float32))
            layer.moving_variance.assign(rng.uniform(0.5, 1.5, shape).astype(np.float32))
            layer.gamma.assign(rng.uniform(0.5, 1.5, shape).astype(np.float32))
    z = rng.standard_normal((64, 128), dtype=np.float32)
    ref = logits_model(gen)(z, training=False).numpy()[..., 0]
    np.testing.assert_allclose(fast_logits(gen)(z).numpy(), ref, atol=1e-4 * np.abs(ref).max())


def test_matrix_path_sees_soft_outputs(tmp_path):
    """C is linear in X: a half-and-half mix of Fe1O and Fe3O has the C of Fe2O. Only the
    matrix path can tell the soft mix from the real one-hot composition."""
    x = encode(["FeO", "Fe3O", "Fe2O"]).astype(np.float32)
    soft = 0.5 * (x[:1] + x[1:2])
    plain = build_critic(embedding_dim=8, count_features=False)
    np.testing.assert_allclose(np.asarray(plain(soft)), np.asarray(plain(x[2:])), rtol=1e-5, atol=1e-6)
    keras.utils.set_random_seed(1)
    seen = build_critic(embedding_dim=8, count_features=False, matrix_width=32)
    assert not np.isclose(np.asarray(seen(soft))[0, 0], np.asarray(seen(x[2:]))[0, 0])
    with pytest.raises(ConfigError, match="matrix_width"):
        GanConfig(matrix_width=-1)
    tr = _tiny_trainer(tmp_path, matrix_width=16)
    tr.train(iterations=1, progress=False)
    assert tr.critic.get_layer("matrix_path").output.shape[-1] == 16
