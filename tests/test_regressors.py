import numpy as np
import pytest

from discovery.errors import ConfigError
from discovery.featurizers import GanEmbedding
from discovery.properties import PropertyModel
from discovery.regressors import Ensemble, MLPRegressor, regression_metrics


def _data(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5)).astype(np.float32)
    y = 3 * x[:, 0] - 2 * x[:, 1] ** 2 + 50.0  # offset and scale exercise the stored scaling
    return x, y


def test_training_lowers_loss_and_beats_mean():
    x, y = _data(600, 0)
    xv, yv = _data(200, 1)
    reg = MLPRegressor(hidden=(32, 16), max_epochs=40, patience=5, batch_size=64, seed=1).fit(x, y, xv, yv)
    assert reg.history_["loss"][-1] < reg.history_["loss"][0]
    m = regression_metrics(yv, reg.predict(xv))
    assert m["r2"] > 0.8 and m["mae"] < np.abs(yv - yv.mean()).mean() / 2


def test_seed_reproducible_and_save_load_identical(tmp_path):
    x, y = _data(300, 0)
    xv, yv = _data(100, 1)
    kw = dict(hidden=(16,), max_epochs=5, patience=5, batch_size=64)
    ens = Ensemble.fit(x, y, xv, yv, k=2, seed=3, **kw)
    again = Ensemble.fit(x, y, xv, yv, k=2, seed=3, **kw)
    np.testing.assert_allclose(ens.predict(xv)[0], again.predict(xv)[0], rtol=1e-5)
    t = np.random.default_rng(0).normal(size=(85, 5)).astype(np.float32)
    pm = PropertyModel("tc", "K", GanEmbedding(t), ens)
    pm.save(tmp_path / "tc", {"metrics": {}})
    loaded = PropertyModel.load(tmp_path / "tc")
    a = np.zeros((3, 85))
    a[:, 10] = [1, 2, 3]
    m1, s1 = pm.predict_amounts(a)
    m2, s2 = loaded.predict_amounts(a)
    assert np.array_equal(m1, m2) and np.array_equal(s1, s2) and (s1 > 0).all()
    assert loaded.unit == "K" and loaded.card["members"] == 2
    import zipfile

    with zipfile.ZipFile(tmp_path / "tc" / "member_0.keras") as z:  # inference only: no optimizer state
        assert b"optimizer" not in z.read("model.weights.h5")


def test_bad_training_input():
    with pytest.raises(ConfigError, match="NaN"):
        MLPRegressor().fit(np.array([[np.nan]]), np.array([1.0]), np.ones((1, 1)), np.ones(1))
    with pytest.raises(ConfigError, match="no training rows"):
        MLPRegressor().fit(np.zeros((0, 2)), np.zeros(0), np.ones((1, 2)), np.ones(1))


def test_finetuned_embedding_starts_at_t_and_moves():
    rng = np.random.default_rng(0)
    t = rng.normal(size=(85, 4)).astype(np.float32)
    a = np.zeros((400, 85), dtype=np.float32)
    a[np.arange(400), rng.integers(0, 85, 400)] = 1.0
    a[np.arange(400), rng.integers(0, 85, 400)] += 2.0
    y = a @ rng.normal(size=85)
    reg = MLPRegressor(hidden=(16,), max_epochs=3, patience=3, batch_size=32, embedding=t)
    model = reg.fit(a[:300], y[:300], a[300:], y[300:]).model_
    w = model.get_layer("atom_embedding_finetuned").get_weights()[0]
    assert w.shape == (85, 4) and not np.allclose(w, t) and np.abs(w - t).max() < 1.0


def test_finetuned_property_model_round_trip(tmp_path):
    from discovery.featurizers import OneHot

    rng = np.random.default_rng(1)
    t = rng.normal(size=(85, 4)).astype(np.float32)
    a = np.zeros((200, 85), dtype=np.float32)
    a[np.arange(200), rng.integers(0, 85, 200)] = rng.integers(1, 4, 200)
    a[np.arange(200), rng.integers(0, 85, 200)] += 1.0
    y = a @ rng.normal(size=85)
    ens = Ensemble.fit(a[:150], y[:150], a[150:], y[150:], k=2, hidden=(8,), max_epochs=2, batch_size=32,
                       embedding=t, lr_patience=1)
    pm = PropertyModel("bandgap", "eV", OneHot(amounts="fractions"), ens)
    pm.save(tmp_path / "bg", {"metrics": {}})
    loaded = PropertyModel.load(tmp_path / "bg")
    assert loaded.card["featurizer"] == {"name": "onehot", "amounts": "fractions"}
    doubled = 2 * a[:5]  # fractions: the same composition twice over predicts the same
    np.testing.assert_allclose(loaded.predict_amounts(doubled)[0], pm.predict_amounts(a[:5])[0], rtol=1e-5)


def test_ensemble_predict_traces_once_for_every_batch_size():
    """Issue 16 item 15: chunks of varying size retraced the forward graph (and TensorFlow
    warned about retracing once a run's ensembles had traced five times)."""
    from discovery.regressors import build_mlp

    rng = np.random.default_rng(0)
    members = [build_mlp(4, np.zeros(4), np.ones(4), 0.0, 1.0, hidden=(3,)) for _ in range(2)]
    ens = Ensemble(members)
    for n in (5, 7, 9, 11, 13, 64, 1):
        x = rng.normal(size=(n, 4)).astype(np.float32)
        mean, std = ens.predict(x)
        want = np.stack([np.asarray(m(x)).ravel() for m in members])
        np.testing.assert_allclose(mean, want.mean(0), rtol=1e-5, atol=1e-6)
    assert ens._forward[None].experimental_get_tracing_count() == 1


def test_gbt_chooses_trees_on_validation_only():
    from discovery.regressors import GBTRegressor

    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 5)).astype(np.float32)
    y = x[:, 0] * 2 + np.sin(x[:, 1])
    noisy_val = y[400:] + rng.normal(scale=5.0, size=200)  # a validation set that punishes many trees
    a = GBTRegressor(seed=0, max_trees=1500).fit(x[:400], y[:400], x[400:], y[400:])
    b = GBTRegressor(seed=0, max_trees=1500).fit(x[:400], y[:400], x[400:], noisy_val)
    assert a.best_trees_ >= b.best_trees_ and a.best_trees_ % 100 == 0
    assert np.abs(a.predict(x[400:]) - y[400:]).mean() < 0.5 * np.abs(y[400:] - y[:400].mean()).mean()


def test_float16_weights_half_the_bytes_same_model(tmp_path):
    """weights_dtype='float16' stores every weight as float16 (about half the file), loads back
    into float32 layers holding exactly the rounded weights, and a re-save keeps the storage."""
    import zipfile

    import h5py

    x, y = _data(300, 0)
    xv, yv = _data(100, 1)
    ens = Ensemble.fit(x, y, xv, yv, k=1, seed=0, hidden=(256, 128), max_epochs=2, batch_size=64)
    t = np.random.default_rng(0).normal(size=(85, 5)).astype(np.float32)
    a = np.zeros((50, 85))
    a[np.arange(50), np.arange(50)] = 1.0
    PropertyModel("tc", "K", GanEmbedding(t), ens).save(tmp_path / "f32", {})
    ens.weights_dtype = "float16"
    pm = PropertyModel("tc", "K", GanEmbedding(t), ens)
    pm.save(tmp_path / "f16", {})
    size = {d: (tmp_path / d / "member_0.keras").stat().st_size for d in ("f32", "f16")}
    assert size["f16"] < 0.6 * size["f32"]
    with zipfile.ZipFile(tmp_path / "f16" / "member_0.keras") as z, \
            h5py.File(__import__("io").BytesIO(z.read("model.weights.h5"))) as h:
        dtypes = set()
        h.visititems(lambda _, v: dtypes.add(v.dtype) if isinstance(v, h5py.Dataset) else None)
    assert dtypes == {np.dtype(np.float16)}
    loaded = PropertyModel.load(tmp_path / "f16")
    assert loaded.card["weights_dtype"] == "float16"
    for w16, w in zip(loaded.ensemble.members[0].get_weights(), ens.members[0].get_weights(), strict=True):
        assert w16.dtype == np.float32
        np.testing.assert_array_equal(w16, w.astype(np.float16).astype(np.float32))
    m32, m16 = pm.predict_amounts(a)[0], loaded.predict_amounts(a)[0]
    assert not np.array_equal(m32, m16)
    np.testing.assert_allclose(m16, m32, rtol=2e-3, atol=2e-3 * np.abs(m32).max())
    loaded.save(tmp_path / "again", {})  # a stack re-saving its part keeps it float16
    assert (tmp_path / "again" / "member_0.keras").stat().st_size == size["f16"]
    card = (tmp_path / "f16" / "card.json")
    card.write_text(card.read_text().replace('"float16"', '"int4"'))
    with pytest.raises(Exception, match="weights_dtype 'int4'"):
        PropertyModel.load(tmp_path / "f16")
    with pytest.raises(ConfigError, match="'bfloat8'"):
        Ensemble(ens.members, "bfloat8").save(tmp_path / "bad")


def test_float16_refuses_a_weight_it_cannot_hold(tmp_path):
    from discovery.regressors import build_mlp, save_without_optimizer

    m = build_mlp(4, np.zeros(4), np.ones(4), 0.0, 1.0, hidden=(3,))
    w = m.get_weights()
    w[0][0, 0] = 1e6
    m.set_weights(w)
    with pytest.raises(ConfigError, match="overflows float16"):
        save_without_optimizer(m, tmp_path / "m.keras", "float16")
    assert list(tmp_path.iterdir()) == []  # nothing half-written left behind
