"""pipelines/train/train_gan_jax.py: the JAX-backend trainer matches the TensorFlow one's loss and
writes reproducible run directories that load under TensorFlow.

Keras picks its backend once per process, so the JAX side runs in subprocesses.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("jax")

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "pipelines" / "train" / "train_gan_jax.py"


def _jax_env() -> dict:
    return {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(ROOT)}


def _random_counts(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    counts = np.zeros((n, 85), dtype=np.uint8)
    for row in counts:
        els = rng.choice(85, size=rng.integers(2, 5), replace=False)
        row[els] = rng.integers(1, 4, size=len(els))
    return counts


def test_critic_loss_and_gradient_match_tensorflow(tmp_path):
    import tensorflow as tf

    from discovery.gan.models import build_critic
    from discovery.gan.train import critic_loss

    critic = build_critic(matrix_width=32)
    critic.save(tmp_path / "critic.keras")
    rng = np.random.default_rng(0)
    real = np.eye(8, dtype=np.float32)[rng.integers(0, 8, (16, 85))] * (rng.random((16, 85, 1)) < 0.05)
    fake = rng.random((16, 85, 8)).astype(np.float32) * (rng.random((16, 85, 1)) < 0.1)
    eps = rng.random((16, 1, 1)).astype(np.float32)
    np.savez(tmp_path / "inputs.npz", real=real, fake=fake, eps=eps)
    with tf.GradientTape() as tape:
        expected = critic_loss(critic, tf.constant(real), tf.constant(fake), tf.constant(eps), 10.0)
    expected_grads = tape.gradient(expected, critic.trainable_variables)

    code = f"""
import sys, types, numpy as np, jax, keras
sys.path.insert(0, {str(SCRIPT.parent)!r})
import discovery.gan.models
from discovery.gan.config import GanConfig
from train_gan_jax import JaxGanTrainer
c = keras.models.load_model({str(tmp_path / "critic.keras")!r})
d = np.load({str(tmp_path / "inputs.npz")!r})
me = types.SimpleNamespace(critic=c, jax=jax, cfg=GanConfig(gp_weight=10.0))
tv = [v.value for v in c.trainable_variables]
ntv = [v.value for v in c.non_trainable_variables]
loss, grads = jax.value_and_grad(
    lambda t: JaxGanTrainer._critic_loss(me, t, ntv, d["real"], d["fake"], d["eps"]))(tv)
np.savez({str(tmp_path / "jax.npz")!r}, loss=float(loss), *[np.asarray(g) for g in grads])
"""
    subprocess.run([sys.executable, "-c", code], check=True, env=_jax_env(), capture_output=True)
    got = np.load(tmp_path / "jax.npz")
    assert float(got["loss"]) == pytest.approx(float(expected), rel=1e-4)
    for i, g in enumerate(expected_grads):
        np.testing.assert_allclose(got[f"arr_{i}"], g.numpy(), rtol=1e-3, atol=1e-5)


def _train(tmp_path: Path, name: str) -> Path:
    run_dir = tmp_path / name
    subprocess.run(
        [sys.executable, str(SCRIPT), "train", "--data", str(tmp_path / "split.npz"), "--run-dir",
         str(run_dir), "--minutes", "10", "--iterations", "4", "--chunk", "2", "--eval-seconds", "0",
         "--eval-samples", "64", "--batch-size", "8", "--generator", "slim", "--output", "st_argmax",
         "--matrix-width", "16"],
        check=True, env=_jax_env(), capture_output=True)
    return run_dir


def test_runs_are_reproducible_and_load_under_tensorflow(tmp_path):
    from discovery.gan.models import LATENT_DIM
    from discovery.model_files import load_keras_model

    np.savez(tmp_path / "split.npz", train=_random_counts(200, 1), val=_random_counts(40, 2),
             seed=0, val_fraction=0.1)
    a, b = _train(tmp_path, "a"), _train(tmp_path, "b")
    state = json.loads((a / "last" / "state.json").read_text())
    assert state["step"] == 4 and state["config"]["generator"] == "slim"
    log = (a / "log.csv").read_text().splitlines()
    assert len(log) == 3 and log[0].startswith("step,")  # evaluations at steps 2 and 4
    gen_a = load_keras_model(a / "last" / "generator.keras")
    gen_b = load_keras_model(b / "last" / "generator.keras")
    for wa, wb in zip(gen_a.get_weights(), gen_b.get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wb)  # same seed, same run
    out_conv = [layer for layer in gen_a.layers if type(layer).__name__ == "Conv2DTranspose"][-1]
    bias = out_conv.bias.numpy()
    assert np.all(np.abs(bias + 3.0) > 1e-6)  # trained away from its initial -3 (Adam steps)
    z = np.random.default_rng(0).standard_normal((4, LATENT_DIM)).astype(np.float32)
    assert np.isfinite(gen_a(z, training=False)).all()
    assert load_keras_model(a / "best" / "critic.keras").get_layer("atom_embedding") is not None


def test_unreadable_split_is_a_one_line_error(tmp_path):
    bad = tmp_path / "split.npz"
    bad.write_bytes(b"not an npz")
    proc = subprocess.run([sys.executable, str(SCRIPT), "train", "--data", str(bad), "--run-dir",
                           str(tmp_path / "run"), "--minutes", "1"],
                          env=_jax_env(), capture_output=True, text=True)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert f"cannot read the split '{bad}'" in proc.stderr.strip().splitlines()[-1]
