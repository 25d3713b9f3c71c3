"""pipelines/ship/store_float16.py: a shipped model rewritten with float16 weights predicts what
the rounded weights predict, its card says what the rounding did, and a stack is refused."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from discovery.encoding import parse_formulas
from discovery.errors import ConfigError
from discovery.featurizers import OneHot
from discovery.properties import PropertyModel
from discovery.regressors import Ensemble
from discovery.stacking import StackedPropertyModel

SCRIPT = Path(__file__).resolve().parents[1] / "pipelines" / "ship" / "store_float16.py"
ELEMENTS = ["Li", "Na", "K", "Mg", "Ca", "Al", "Ti", "Fe", "Ni", "Cu", "Zn", "O", "S", "F", "Cl", "N"]


def _script():
    spec = importlib.util.spec_from_file_location("store_float16", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    pairs = rng.choice(len(ELEMENTS), size=(n, 2))
    counts = rng.integers(1, 4, size=(n, 2))
    formulas = [f"{ELEMENTS[a]}{x}{ELEMENTS[b]}{y}" if a != b else f"{ELEMENTS[a]}{x}"
                for (a, b), (x, y) in zip(pairs, counts, strict=True)]
    y = pairs[:, 0] * 0.3 - counts[:, 1] * 0.5 + rng.normal(scale=0.1, size=n)
    return pd.DataFrame({"formula": formulas, "y": y})


def _task():
    return SimpleNamespace(train=_frame(400, 0), val=_frame(120, 1), test=_frame(120, 2))


def _fit(task) -> PropertyModel:
    feat = OneHot(amounts="fractions")
    x = {s: feat.transform(getattr(task, s)["formula"]) for s in ("train", "val")}
    ens = Ensemble.fit(x["train"], task.train["y"].to_numpy(), x["val"], task.val["y"].to_numpy(),
                       k=2, seed=0, hidden=(128, 64), max_epochs=3, batch_size=64)
    return PropertyModel("bandgap", "eV", feat, ens)


def test_float16_store_rounds_the_weights_and_records_it(tmp_path):
    task = _task()
    model = _fit(task)
    target = tmp_path / "bandgap"
    model.save(target, {"version": "tiny", "training": {"seed": 0}, "data": {"source": "made up"}})
    (target / "domain.npz").write_bytes(b"kept")  # files beside the members travel unchanged
    sizes = [(target / f"member_{i}.keras").stat().st_size for i in range(2)]
    amounts = parse_formulas(task.val["formula"].tolist()).amounts
    rounded = [[w.astype(np.float16).astype(np.float32) for w in m.get_weights()]
               for m in model.ensemble.members]
    for m, w in zip(model.ensemble.members, rounded, strict=True):
        m.set_weights(w)
    expected = model.predict_amounts(amounts)[0]

    model = PropertyModel.load(target)
    before = model.predict_amounts(amounts)[0]
    rounding = _script().store_float16(target, task)

    assert not (tmp_path / "bandgap.tmp").exists() and not (tmp_path / "bandgap.old").exists()
    assert (target / "domain.npz").read_bytes() == b"kept"
    for i in range(2):
        assert (target / f"member_{i}.keras").stat().st_size < 0.7 * sizes[i]
    half = PropertyModel.load(target)
    assert half.ensemble.weights_dtype == "float16"
    after = half.predict_amounts(amounts)[0]
    np.testing.assert_allclose(after, expected, atol=1e-6)
    card = json.loads((target / "card.json").read_text())
    assert card["version"] == "tiny-float16" and card["training"]["seed"] == 0
    assert card["data"]["source"] == "made up"
    assert rounding == card["training"]["weights_rounding"]
    assert rounding["max_abs_change"] == pytest.approx(np.abs(after - before).max(), rel=1e-4)
    assert rounding["max_abs_change"] > 0
    y = task.val["y"].to_numpy()
    assert rounding["val_mae_float16"] == pytest.approx(np.abs(after - y).mean(), rel=1e-6)
    assert card["metrics"]["val"]["mae"] == pytest.approx(rounding["val_mae_float16"], rel=1e-9)

    with pytest.raises(ConfigError, match="already stores float16"):
        _script().store_float16(target, task)


def test_float16_store_refuses_a_stack(tmp_path):
    task = _task()
    stack = StackedPropertyModel("bandgap", "eV", {"a": _fit(task)}, {"a": 1.0})
    stack.save(tmp_path / "bandgap", {"version": "stack"})
    with pytest.raises(ConfigError, match="is a stack"):
        _script().store_float16(tmp_path / "bandgap", task)
