"""pipelines/train/train_attention_jax.py: the export is the CPU trainer's input, seeds fix the
JAX-trained members, and the members predict the same under TensorFlow once imported as a
benchmark model.

Keras picks its backend once per process, so training (JAX) runs in a subprocess.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("jax")

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "pipelines" / "train" / "train_attention_jax.py"


def _script():
    spec = importlib.util.spec_from_file_location("train_attention_jax", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _frames(seed: int) -> dict[str, pd.DataFrame]:
    """Random binary/ternary oxides and their made-up energies, in bench_stability's layout."""
    rng = np.random.default_rng(seed)
    metals = ["Li", "Na", "Mg", "Al", "Ti", "Fe", "Ni", "Cu", "Zn", "Zr"]
    vals = dict(zip(metals, rng.normal(-1.5, 0.5, len(metals)), strict=True))
    rows = []
    for _ in range(600):
        a, b = rng.choice(metals, 2, replace=False)
        na, nb, no = rng.integers(1, 4, 3)
        y = (na * vals[a] + nb * vals[b]) / (na + nb + no) - 0.3 * no / (na + nb + no)
        rows.append({"formula": f"{a}{na}{b}{nb}O{no}", "y": y})
    df = pd.DataFrame(rows)
    return {"train": df.iloc[:400].reset_index(drop=True), "val": df.iloc[400:500].reset_index(drop=True),
            "test": df.iloc[500:].reset_index(drop=True)}


def test_jax_members_are_seeded_and_predict_the_same_under_tensorflow(tmp_path, monkeypatch):
    mod = _script()
    from discovery.benchmarks import stability as bench_stability

    frames = _frames(0)
    monkeypatch.setattr(bench_stability, "oqmd_data", lambda: frames)
    npz = tmp_path / "fe.npz"
    mod.export("oqmd", npz)
    run = tmp_path / "run"
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(ROOT)}
    tiny = ["--width", "16", "--heads", "2", "--blocks", "1", "--ff", "32", "--head-widths", "16",
            "--batch-size", "64", "--max-epochs", "3", "--seeds", "0,0,1"]
    subprocess.run([sys.executable, str(SCRIPT), "train", "--data", str(npz), "--out", str(run), *tiny],
                   check=True, env=env, capture_output=True)
    card = json.loads((run / "train.json").read_text())
    assert card["backend"] == "jax" and [m["seed"] for m in card["members"]] == [0, 0, 1]

    import keras

    import discovery.attention  # noqa: F401  (registers the attention layers)
    from discovery.properties import PropertyModel
    from discovery.regressors import predict_model

    assert keras.backend.backend() == "tensorflow"
    d = np.load(npz)
    from discovery.featurizers import OneHot

    x_val = d["val_x"]  # exactly what the CPU trainer fits on (its features, as float32)
    expected = OneHot(amounts="fractions").transform(frames["val"]["formula"]).astype(np.float32)
    np.testing.assert_array_equal(x_val, expected)
    preds = []
    for i, member in enumerate(card["members"]):
        m = keras.models.load_model(run / f"member_{i}.keras")
        assert getattr(m, "optimizer", None) is None  # saved lean: no optimizer state to ship back
        preds.append(predict_model(m, x_val))
        # the validation MAE the JAX process measured, recomputed under TensorFlow
        assert abs(np.abs(preds[-1] - d["val_y"]).mean() - member["val_mae"]) < 1e-5
    np.testing.assert_array_equal(preds[0], preds[1])  # same seed, same member
    assert np.abs(preds[0] - preds[2]).max() > 1e-3  # another seed, another member

    dest = mod.import_members("oqmd", run, "attention-tiny", tmp_path / "runs")
    model = PropertyModel.load(dest)
    from discovery.encoding import parse_formulas

    amounts = parse_formulas(frames["val"]["formula"].tolist()).amounts  # as bench_stability predicts
    np.testing.assert_allclose(model.predict_amounts(amounts)[0], np.mean(preds, axis=0), atol=1e-5)
    saved = json.loads((dest / "card.json").read_text())
    assert saved["training"]["backend"] == "jax" and saved["members"] == 3

    dest16 = mod.import_members("oqmd", run, "attention-tiny16", tmp_path / "runs", "float16")
    half = PropertyModel.load(dest16)  # float16 weights: the card says what the rounding did
    rounding = json.loads((dest16 / "card.json").read_text())["training"]["weights_rounding"]
    change = np.abs(half.predict_amounts(amounts)[0] - np.mean(preds, axis=0))
    assert half.card["weights_dtype"] == "float16" and 0 < change.max() == pytest.approx(
        rounding["max_abs_change"], rel=1e-3)

    other = _frames(1)  # members trained on other data are refused, by the data hash
    monkeypatch.setattr(bench_stability, "oqmd_data", lambda: other)
    with pytest.raises(SystemExit, match="other data"):
        mod.import_members("oqmd", run, "attention-tiny2", tmp_path / "runs")
    with pytest.raises(SystemExit, match="attention-<tag>"):
        mod.import_members("oqmd", run, "attention-s3", tmp_path / "runs")
    with pytest.raises(SystemExit, match="protocol 'oqmd', not 'bartel'"):
        mod.import_members("bartel", run, "attention-tiny", tmp_path / "runs")
