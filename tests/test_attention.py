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
