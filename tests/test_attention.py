"""The element-attention regressor: it learns, seeds fix it, and it survives save -> load."""

import numpy as np
import pytest

from discovery.attention import AttentionRegressor
from discovery.elements import N_ELEMENTS
from discovery.properties import PropertyModel
from discovery.regressors import Ensemble


@pytest.fixture(scope="module")
def data():
    """Random 2-4 element compositions; target = fraction-weighted element values + a pair term
    (so the tokens must see each other to fit it well)."""
    rng = np.random.default_rng(0)
    n = 800
    a = np.zeros((n, N_ELEMENTS), np.float32)
    for i in range(n):
        k = rng.integers(2, 5)
        a[i, rng.choice(20, k, replace=False)] = rng.integers(1, 5, k)
    v = rng.normal(size=N_ELEMENTS)
    frac = a / a.sum(1, keepdims=True)
    y = frac @ v + 2.0 * (a[:, 0] > 0) * (a[:, 1] > 0)
    t = rng.normal(size=(N_ELEMENTS, 16)).astype(np.float32)
    return a, y.astype(np.float32), t


def _reg(t, seed, epochs=3):
    return AttentionRegressor(embedding=t, width=16, heads=2, blocks=1, ff=32, head_widths=(32,),
                              batch_size=64, max_epochs=epochs, seed=seed, learning_rate=3e-3)


def test_learns_and_seeds_fix_it(data):
    a, y, t = data
    tr, va = slice(0, 640), slice(640, None)
    r1 = _reg(t, 0, epochs=15).fit(a[tr], y[tr], a[va], y[va])
    base = np.abs(y[va] - y[tr].mean()).mean()
    assert np.abs(r1.predict(a[va]) - y[va]).mean() < 0.5 * base
    small = slice(0, 128)
    r2 = _reg(t, 0, epochs=1).fit(a[small], y[small], a[va], y[va])
    r3 = _reg(t, 0, epochs=1).fit(a[small], y[small], a[va], y[va])
    r4 = _reg(t, 1, epochs=1).fit(a[small], y[small], a[va], y[va])
    np.testing.assert_array_equal(r2.predict(a[va]), r3.predict(a[va]))
    assert not np.allclose(r2.predict(a[va]), r4.predict(a[va]))


def test_amounts_scale_free_and_save_load(data, tmp_path):
    from discovery.featurizers import OneHot

    a, y, t = data
    r = _reg(t, 0, epochs=1).fit(a[:128], y[:128], a[640:], y[640:])
    # Fe4O6 is Fe2O3: the model sees fractions
    np.testing.assert_allclose(r.predict(a[:50]), r.predict(3 * a[:50]), rtol=1e-5, atol=1e-5)
    model = PropertyModel("formation_energy", "eV/atom", OneHot(amounts="fractions"), Ensemble([r.model_]))
    model.save(tmp_path / "m", {"version": "test"})
    back = PropertyModel.load(tmp_path / "m")
    np.testing.assert_allclose(back.predict_amounts(a[:50])[0], model.predict_amounts(a[:50])[0], atol=1e-6)


def test_cosine_schedule_over_epochs(data):
    """Without a time budget the rate runs a half cosine from learning_rate to 1/64 of it over
    max_epochs; the plateau schedule is not also applied."""
    a, y, t = data
    r = _reg(t, 0, epochs=5)
    r.schedule, r.lr_patience = "cosine", 1
    r.fit(a[:128], y[:128], a[640:], y[640:])
    lr0, lr_min = 3e-3, 3e-3 / 64
    want = [lr_min + (lr0 - lr_min) * 0.5 * (1 + np.cos(np.pi * e / 4)) for e in range(5)]
    np.testing.assert_allclose(r.history_["learning_rate"], want, rtol=1e-5)


def test_cosine_schedule_over_a_budget_ignores_the_compiling_epoch(monkeypatch):
    """With a wall-clock budget the rate is judged by the last epoch's duration, not the first
    (compiling) one's: a 70 s first epoch and 3 s epochs after it in a 150 s budget anneal
    smoothly to the floor by the budget's end, never rising."""
    import keras

    import discovery.attention as att

    clock = [0.0]
    monkeypatch.setattr(att.time, "perf_counter", lambda: clock[0])
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mae")
    cb = att._CosineAnnealing(1e-3, 1e-3 / 64, epochs=300, seconds=150)
    cb.set_model(model)
    cb.on_train_begin()
    rates, epoch = [], 0
    while clock[0] <= 150:
        cb.on_epoch_begin(epoch)
        clock[0] += 70.0 if epoch == 0 else 3.0
        logs = {}
        cb.on_epoch_end(epoch, logs)
        rates.append(logs["learning_rate"])
        epoch += 1
    lr_min = 1e-3 / 64  # 70 of 150 s gone: 47% down the cosine, not at the floor
    assert rates[1] == pytest.approx(lr_min + (1e-3 - lr_min) * 0.5 * (1 + np.cos(np.pi * 70 / 150)))
    assert (np.diff(rates) <= 1e-12).all()
    assert rates[-1] == pytest.approx(lr_min, rel=0.05)
    assert len(rates) == 1 + 27  # 70 s, then 27 epochs of 3 s up to the budget (81 s)


def test_unknown_schedule_is_one_clear_error(data):
    from discovery.errors import ConfigError

    a, y, t = data
    r = _reg(t, 0)
    r.schedule = "step"
    with pytest.raises(ConfigError, match="'step'"):
        r.fit(a[:64], y[:64], a[640:], y[640:])


def test_ensemble_gives_each_row_as_many_tokens_as_elements(data):
    """Ensemble.predict runs an attention member with k tokens on the rows of k elements: the
    same predictions as with 8 tokens for all (to rounding), each row's bit-identical whatever
    rows it is batched with, one graph for every token count (traced once), and the layers left
    at 8 tokens."""
    from discovery.attention import ElementTokens
    from discovery.regressors import predict_model

    a, y, t = data
    r = _reg(t, 0, epochs=2).fit(a[:256], y[:256], a[640:], y[640:])
    ens = Ensemble([r.model_])
    x = np.concatenate([a, np.zeros((1, N_ELEMENTS), np.float32)])  # and an empty row
    mean, std = ens.predict(x)
    assert list(ens._forward) == ["tokens"]  # rows of 2-4 elements and an empty row: one graph
    np.testing.assert_allclose(mean, predict_model(r.model_, x), rtol=1e-5, atol=1e-5)
    assert (std == 0).all()
    rng = np.random.default_rng(1)
    order = rng.permutation(len(x))
    np.testing.assert_array_equal(ens.predict(x[order])[0], mean[order])
    np.testing.assert_array_equal(np.concatenate([ens.predict(c)[0] for c in np.array_split(x, 7)]), mean)
    assert all(f.experimental_get_tracing_count() == 1 for f in ens._forward.values())
    assert [layer.max_tokens for layer in r.model_.layers if isinstance(layer, ElementTokens)] == [8]


def test_a_warm_start_continues_the_trained_model(data, tmp_path):
    """``init_from``: the trained weights and target scaling are copied (a vanishing learning
    rate keeps its predictions), even when the new fit's targets have another mean; another
    shape is a one-line error."""
    from discovery.errors import ConfigError
    from discovery.model_files import save_without_optimizer

    a, y, t = data
    r = _reg(t, 0, epochs=2).fit(a[:256], y[:256], a[640:], y[640:])
    save_without_optimizer(r.model_, tmp_path / "m.keras", "float16")
    warm = AttentionRegressor(embedding=t, width=16, heads=2, blocks=1, ff=32, head_widths=(32,),
                              batch_size=64, max_epochs=1, learning_rate=1e-12,
                              init_from=tmp_path / "m.keras")
    warm.fit(a[:64], y[:64] + 5.0, a[640:], y[640:])
    np.testing.assert_allclose(warm.predict(a[640:]), r.predict(a[640:]), atol=2e-2)
    cold = _reg(t, 0, epochs=1).fit(a[:64], y[:64] + 5.0, a[640:], y[640:])
    assert np.abs(cold.predict(a[640:]) - r.predict(a[640:])).mean() > 0.5
    other = AttentionRegressor(embedding=t, width=8, heads=2, blocks=1, ff=32, head_widths=(32,),
                               max_epochs=1, init_from=tmp_path / "m.keras")
    with pytest.raises(ConfigError, match="another shape"):
        other.fit(a[:64], y[:64], a[640:], y[640:])
