"""Stacks of property models: weights chosen on validation data, the mixture, save and load."""

import numpy as np

from discovery.stacking import stack_weights


def test_stack_weights_find_the_mix_that_cancels_errors():
    rng = np.random.default_rng(0)
    y = rng.normal(size=500)
    noise = rng.normal(size=500)
    a, b, c = y + noise, y - noise / 3, y + rng.normal(size=500)  # 0.25 a + 0.75 b == y exactly
    w, mae = stack_weights([a, b, c], y)
    np.testing.assert_allclose(w, [0.25, 0.75, 0.0])
    assert mae < 1e-12 and w.sum() == 1.0
    w1, _ = stack_weights([c, y], y)
    np.testing.assert_allclose(w1, [0.0, 1.0])


def _amounts(n, seed):
    rng = np.random.default_rng(seed)
    a = np.zeros((n, 85), dtype=np.float32)
    a[np.arange(n), rng.integers(0, 85, n)] = rng.integers(1, 4, n)
    a[np.arange(n), rng.integers(0, 85, n)] += 1.0
    return a, a @ rng.normal(size=85) + 10.0


def _components():
    from discovery.featurizers import Magpie, OneHot
    from discovery.properties import PropertyModel, training_domain
    from discovery.regressors import Ensemble

    a, y = _amounts(240, 0)
    kw = dict(k=2, hidden=(8,), max_epochs=2, batch_size=32)
    ens = Ensemble.fit(a[:180], y[:180], a[180:], y[180:], **kw)
    mlp = PropertyModel("tc", "K", OneHot(amounts="fractions"), ens,
                        {"version": "mlp-test", "domain": training_domain(a[:180])})
    feat = Magpie()
    mag = Ensemble.fit(feat.transform_amounts(a[:180]), y[:180], feat.transform_amounts(a[180:]), y[180:],
                       seed=5, **kw)
    return {"tmlp": mlp, "magpie_mlp": PropertyModel("tc", "K", feat, mag, {"version": "magpie-test"})}


def test_stack_predicts_the_weighted_mixture_and_round_trips(tmp_path):
    from discovery.properties import PropertyModel
    from discovery.stacking import StackedPropertyModel

    parts = _components()
    stack = StackedPropertyModel("tc", "K", parts, {"tmlp": 0.3, "magpie_mlp": 0.7})
    a, _ = _amounts(50, 1)
    (m1, s1), (m2, s2) = ((p.astype(np.float64) for p in m.predict_amounts(a)) for m in parts.values())
    mean, std = stack.predict_amounts(a)
    want = 0.3 * m1 + 0.7 * m2
    np.testing.assert_allclose(mean, want, rtol=1e-5)
    # mixture spread: each family's own spread plus the disagreement of the two families
    want_std = np.sqrt(0.3 * (s1**2 + (m1 - want) ** 2) + 0.7 * (s2**2 + (m2 - want) ** 2))
    np.testing.assert_allclose(std, want_std, rtol=1e-4)
    assert (std >= np.minimum(s1, s2) - 1e-6).all()

    stack.save(tmp_path / "tc", {"version": "stack-test"})
    back = PropertyModel.load(tmp_path / "tc")
    assert isinstance(back, StackedPropertyModel) and back.weights == {"tmlp": 0.3, "magpie_mlp": 0.7}
    assert back.card["version"] == "stack-test" and back.components["tmlp"].card["version"] == "mlp-test"
    assert back.components["magpie_mlp"].card["featurizer"] == {"name": "magpie"}
    np.testing.assert_array_equal(back.predict_amounts(a)[0], mean)
    np.testing.assert_array_equal(back.predict_amounts(a)[1], std)
    # a row beyond the MLP's training domain is outside the stack's
    big = a[:2].copy()
    big[0, 3] = 10_000
    assert back.outside_domain(big).tolist() == [True, False]


def test_stack_rejects_bad_weights_and_cards(tmp_path):
    import json

    import pytest

    from discovery.errors import ConfigError
    from discovery.model_files import ModelFileError
    from discovery.properties import PropertyModel
    from discovery.stacking import StackedPropertyModel

    parts = _components()
    with pytest.raises(ConfigError, match="sum to 1"):
        StackedPropertyModel("tc", "K", parts, {"tmlp": 0.5, "magpie_mlp": 0.6})
    with pytest.raises(ConfigError, match="components"):
        StackedPropertyModel("tc", "K", parts, {"tmlp": 1.0})
    (tmp_path / "card.json").write_text(json.dumps({"property": "tc", "unit": "K",
                                                     "stack": {"components": ["a", "b"], "weights": [1.0]}}))
    with pytest.raises(ModelFileError, match="malformed"):
        PropertyModel.load(tmp_path)
    (tmp_path / "card.json").write_text(json.dumps({"property": "tc", "unit": "K",
                                                     "stack": {"components": ["../x"], "weights": [1.0]}}))
    with pytest.raises(ModelFileError, match="not a plain directory name"):
        PropertyModel.load(tmp_path)
    with pytest.raises(ConfigError, match="NaN"):
        stack_weights([np.array([1.0, np.nan]), np.array([1.0, 2.0])], np.array([1.0, 2.0]))
