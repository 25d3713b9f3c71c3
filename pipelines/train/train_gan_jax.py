"""Train the composition WGAN on Keras' JAX backend: for a machine with a GPU.

The lent GPU machines carry JAX, not TensorFlow. This trainer uses the same networks
(``discovery.gan.models``), the same losses (equations 3/4 with the gradient penalty), output
heads, configuration (``GanConfig``) and seeded 90/10 split as ``pipelines/train/train_gan.py``, and
compiles whole chunks of iterations into one XLA program. It runs for a wall-clock budget,
evaluates every ``--eval-seconds`` on the validation split, and writes a run directory in the
CPU trainer's format (``config.json``, ``log.csv``, ``best/`` and ``last/`` with
``generator.keras``, ``critic.keras``, ``state.json``) that ``ship_gan.py`` and
``gan_report.py`` read under TensorFlow (``.keras`` files are backend-independent).
``best`` is the step with the most validation compositions recovered among the evaluation
samples (validation split only; the test data is never looked at).

    # here: the split as count vectors (the GPU machine has no pandas/pymatgen data path)
    python pipelines/train/train_gan_jax.py export --out .gpudata/gan_split.npz
    # on the GPU machine (KERAS_BACKEND=jax is set by this script):
    python pipelines/train/train_gan_jax.py train --data .gpudata/gan_split.npz \\
        --run-dir /tmp/runs/paper_st --minutes 8 --generator paper --output st_argmax \\
        --logit-bias -3 --matrix-width 256 --pack-to "$OUT"

Random draws are stateless functions of (seed, step), as in the CPU trainer, but JAX's
generators differ from TensorFlow's, so the two trainers do not produce identical runs.
Optimizer state is not exported (it would double the files the machine can send back), so a
GPU run continues elsewhere only as a warm start.
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tarfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the package, uninstalled

from discovery.elements import MAX_COUNT  # noqa: E402
from discovery.encoding import composition_keys, count_patterns, decode_counts  # noqa: E402
from discovery.gan.config import GanConfig, split_indices  # noqa: E402
from discovery.gan.quality import GeneratorQuality  # noqa: E402
from discovery.gan.runlog import append_log  # noqa: E402

EVAL_Z_SEED, DECODE_SEED = 12345, 54321  # the CPU trainer's evaluation draws


def export_split(out: Path, seed: int, val_fraction: float) -> None:
    """Write the GAN set's train/validation count vectors [N, 85] (uint8) to ``out``."""
    from discovery.data import load_gan_formulas
    from discovery.encoding import encode

    counts = decode_counts(encode(load_gan_formulas()["formula"].tolist()))  # as train_gan.py
    tr, va = split_indices(len(counts), val_fraction, seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, train=counts[tr].astype(np.uint8), val=counts[va].astype(np.uint8),
                        seed=seed, val_fraction=val_fraction)
    print(f"{out}: {len(tr)} train, {len(va)} validation compositions")


class JaxGanTrainer:
    """WGAN-GP on Keras' JAX backend: state as arrays, iterations as one compiled loop."""

    def __init__(self, cfg: GanConfig, train_counts: np.ndarray, val_counts: np.ndarray):
        import jax
        import keras

        from discovery.gan.models import LATENT_DIM, build_critic, build_generator, logits_model

        if cfg.loss != "gp":
            raise SystemExit(f"train_gan_jax.py trains the gradient-penalty loss only, not {cfg.loss!r}")
        self.cfg, self.jax, self.latent = cfg, jax, LATENT_DIM
        keras.utils.set_random_seed(cfg.seed)
        self.generator = build_generator(cfg.generator, cfg.logit_bias)
        self.logits = logits_model(self.generator)
        self.critic = build_critic(cfg.embedding_dim, cfg.count_features, cfg.minibatch_std,
                                   cfg.matrix_width)
        self.g_opt = keras.optimizers.Adam(cfg.lr_generator, cfg.beta_1, cfg.beta_2)
        self.c_opt = keras.optimizers.Adam(cfg.lr_critic, cfg.beta_1, cfg.beta_2)
        self.g_opt.build(self.logits.trainable_variables)
        self.c_opt.build(self.critic.trainable_variables)
        self.train_counts = jax.numpy.asarray(train_counts, dtype=jax.numpy.int32)
        n_val = min(cfg.eval_samples, len(val_counts))  # the validation rows the critic scores
        self.val_x = self._one_hot(jax.numpy.asarray(val_counts[:n_val], dtype=jax.numpy.int32))
        # no OQMD index or smact on a GPU machine: novelty, CN and EN are measured later
        self.quality = GeneratorQuality(None, composition_keys(val_counts), smact_limit=0)
        self.eval_z = np.random.default_rng(EVAL_Z_SEED).standard_normal(
            (cfg.eval_samples, LATENT_DIM)).astype(np.float32)
        self.base_key = jax.random.key(cfg.seed)
        self.state = tuple([v.value for v in vs] for vs in (
            self.logits.trainable_variables, self.logits.non_trainable_variables,
            self.g_opt.variables, self.critic.trainable_variables,
            self.critic.non_trainable_variables, self.c_opt.variables))
        self._chunk = jax.jit(self._run_chunk, static_argnums=3)
        self._logits_fn = jax.jit(
            lambda tv, ntv, z: self.logits.stateless_call(tv, ntv, z, training=False)[0])
        self._score_fn = jax.jit(
            lambda tv, ntv, x: self.critic.stateless_call(tv, ntv, x, training=False)[0])
        self.step, self.wall = 0, 0.0

    # ------------------------------------------------------------------ one iteration
    def _one_hot(self, counts):
        return self.jax.nn.one_hot(counts - 1, MAX_COUNT)  # count 0 -> all-zero row

    def _fake(self, g_tv, g_ntv, z, key):
        jnp = self.jax.numpy
        logits, g_ntv = self.logits.stateless_call(g_tv, g_ntv, z, training=True)
        logits = logits[..., 0]
        if self.cfg.output == "sigmoid":
            return self.jax.nn.sigmoid(logits), g_ntv
        full = jnp.concatenate([jnp.zeros_like(logits[..., :1]), logits], axis=-1)  # absent: 0
        if self.cfg.output == "gumbel":
            u = self.jax.random.uniform(key, full.shape, minval=1e-6, maxval=1.0 - 1e-6)
            full = full - jnp.log(-jnp.log(u))
        y_soft = self.jax.nn.softmax(full / self.cfg.tau, axis=-1)
        y_hard = self.jax.nn.one_hot(jnp.argmax(y_soft, axis=-1), MAX_COUNT + 1, dtype=y_soft.dtype)
        y = y_hard + y_soft - self.jax.lax.stop_gradient(y_soft)
        return y[..., 1:], g_ntv

    def _critic_loss(self, c_tv, c_ntv, real, fake, eps):
        """Equation (4) plus the gradient penalty (as ``gan.train.critic_loss``)."""
        jnp = self.jax.numpy

        def score(x):
            return self.critic.stateless_call(c_tv, c_ntv, x, training=True)[0]

        loss = jnp.mean(score(fake)) - jnp.mean(score(real))
        mix = eps * real + (1.0 - eps) * fake
        grad = self.jax.grad(lambda m: jnp.sum(score(m)))(mix)
        norm = jnp.sqrt(jnp.sum(jnp.square(grad), axis=(1, 2)) + 1e-12)
        return loss + self.cfg.gp_weight * jnp.mean(jnp.square(norm - 1.0))

    def _iteration(self, state, data, step):
        jax, jnp, cfg = self.jax, self.jax.numpy, self.cfg
        g_tv, g_ntv, g_ov, c_tv, c_ntv, c_ov = state
        keys = jax.random.split(jax.random.fold_in(self.base_key, step), cfg.n_critic + 1)
        c_losses = []
        for i in range(cfg.n_critic):
            k_rows, k_z, k_noise, k_eps = jax.random.split(keys[i], 4)
            rows = jax.random.randint(k_rows, (cfg.batch_size,), 0, data.shape[0])
            real = self._one_hot(data[rows])
            z = jax.random.normal(k_z, (cfg.batch_size, self.latent))
            fake, g_ntv = self._fake(g_tv, g_ntv, z, k_noise)
            eps = jax.random.uniform(k_eps, (cfg.batch_size, 1, 1))
            loss, grads = jax.value_and_grad(self._critic_loss)(
                c_tv, c_ntv, real, jax.lax.stop_gradient(fake), eps)
            c_tv, c_ov = self.c_opt.stateless_apply(c_ov, grads, c_tv)
            c_losses.append(loss)
        k_z, k_noise = jax.random.split(keys[cfg.n_critic])
        z = jax.random.normal(k_z, (cfg.batch_size, self.latent))

        def g_loss(tv, ntv):
            fake, ntv = self._fake(tv, ntv, z, k_noise)
            return -jnp.mean(self.critic.stateless_call(c_tv, c_ntv, fake, training=True)[0]), ntv

        (gl, g_ntv), grads = jax.value_and_grad(g_loss, has_aux=True)(g_tv, g_ntv)
        g_tv, g_ov = self.g_opt.stateless_apply(g_ov, grads, g_tv)
        return (g_tv, g_ntv, g_ov, c_tv, c_ntv, c_ov), jnp.mean(jnp.stack(c_losses)), gl

    def _run_chunk(self, state, data, start, n_steps: int):
        def body(i, carry):
            st, c_sum, g_sum = carry
            st, c, g = self._iteration(st, data, start + i)
            return st, c_sum + c, g_sum + g

        zero = self.jax.numpy.float32(0.0)
        return self.jax.lax.fori_loop(0, n_steps, body, (state, zero, zero))

    def run_chunk(self, n_steps: int) -> tuple[float, float]:
        """``n_steps`` iterations; mean critic and generator losses."""
        t0 = time.monotonic()
        start = self.jax.numpy.int32(self.step)
        self.state, c_sum, g_sum = self._chunk(self.state, self.train_counts, start, n_steps)
        c, g = float(c_sum) / n_steps, float(g_sum) / n_steps  # waits for the device
        self.step += n_steps
        self.wall += time.monotonic() - t0
        return c, g

    # ------------------------------------------------------------------ evaluation
    def sample_counts(self) -> np.ndarray:
        g_tv, g_ntv = self.state[0], self.state[1]
        logits = np.asarray(self._logits_fn(g_tv, g_ntv, self.eval_z))
        probs = 1.0 / (1.0 + np.exp(-logits[..., 0].astype(np.float64)))
        rule = "sample" if self.cfg.output == "gumbel" else "argmax"
        return decode_counts(probs, rule, np.random.default_rng(DECODE_SEED))

    def evaluate(self) -> dict:
        """The CPU trainer's log columns that need no OQMD index or smact, plus count patterns."""
        jnp = self.jax.numpy
        counts = self.sample_counts()
        c_tv, c_ntv = self.state[3], self.state[4]
        fake_x = self._one_hot(jnp.asarray(counts[: len(self.val_x)], jnp.int32))
        f_fake = np.asarray(self._score_fn(c_tv, c_ntv, fake_x))
        f_real = np.asarray(self._score_fn(c_tv, c_ntv, self.val_x))
        row = {"val_critic_loss": float(f_fake.mean() - f_real.mean()), **self.quality(counts)}
        patterns = count_patterns(counts)
        for p in ("2-1-1", "1-1-1", "1-1-1-1"):
            row[f"pattern_{p.replace('-', '')}_pct"] = 100 * (patterns == p).mean()
        return row

    # ------------------------------------------------------------------ checkpoints
    def save(self, path: Path, extra: dict) -> None:
        """Write the current weights as ``.keras`` files and ``state.json`` to ``path``."""
        g_tv, g_ntv, _, c_tv, c_ntv, _ = self.state
        for variables, values in ((self.logits.trainable_variables, g_tv),
                                  (self.logits.non_trainable_variables, g_ntv),
                                  (self.critic.trainable_variables, c_tv),
                                  (self.critic.non_trainable_variables, c_ntv)):
            for v, value in zip(variables, values, strict=True):
                v.assign(value)
        tmp = path.with_name(path.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        self.generator.save(tmp / "generator.keras")
        self.critic.save(tmp / "critic.keras")
        state = {"config": dataclasses.asdict(self.cfg), "step": self.step,
                 "wall_seconds": round(self.wall, 1), "backend": "jax",
                 "device": str(self.jax.devices()[0]), **extra}
        (tmp / "state.json").write_text(json.dumps(state, indent=2))
        shutil.rmtree(path, ignore_errors=True)
        tmp.rename(path)


def _pack(run_dir: Path, out_dir: Path, which: str) -> None:
    """``out_dir/<run>_<which>.tar`` holding config.json, log.csv and ``which``/ (atomic)."""
    tmp = Path("/tmp") / f"{run_dir.name}_{which}.tar"
    with tarfile.open(tmp, "w") as tar:
        for name in ("config.json", "log.csv", which):
            if (run_dir / name).exists():
                tar.add(run_dir / name, arcname=f"{run_dir.name}/{name}")
    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.move(tmp, out_dir / tmp.name)


def train(args, cfg: GanConfig) -> None:
    import jax

    t_start = time.monotonic()
    try:
        with np.load(args.data) as f:
            split = {k: f[k] for k in ("train", "val", "seed", "val_fraction")}
    except (OSError, ValueError, KeyError) as exc:
        raise SystemExit(f"cannot read the split {str(args.data)!r} ({exc}); write it with "
                         "`python pipelines/train/train_gan_jax.py export --out FILE`") from None
    if int(split["seed"]) != cfg.seed or float(split["val_fraction"]) != cfg.val_fraction:
        raise SystemExit(f"{args.data} holds the split for seed {int(split['seed'])}, "
                         f"val_fraction {float(split['val_fraction'])}; export it for this config")
    trainer = JaxGanTrainer(cfg, split["train"], split["val"])
    run_dir = args.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=2))
    (run_dir / "log.csv").unlink(missing_ok=True)
    print(f"[{run_dir.name}] device {jax.devices()[0]}, {len(split['train'])} train rows", flush=True)
    deadline = t_start + args.minutes * 60
    best, best_step, last_eval = -1.0, -1, time.monotonic()
    c_acc = g_acc = 0.0
    n_acc = 0
    while time.monotonic() < deadline and trainer.step < cfg.iterations:
        c, g = trainer.run_chunk(args.chunk)
        c_acc, g_acc, n_acc = c_acc + c, g_acc + g, n_acc + 1
        due = time.monotonic() - last_eval >= args.eval_seconds
        final = time.monotonic() >= deadline or trainer.step >= cfg.iterations
        if not (due or final):
            continue
        row = {"step": trainer.step, "wall_seconds": round(trainer.wall, 1),
               "train_critic_loss": c_acc / n_acc, "generator_loss": g_acc / n_acc,
               **trainer.evaluate()}
        c_acc = g_acc = 0.0
        n_acc = 0
        append_log(run_dir / "log.csv", row)
        if row["holdout_recovered_pct"] >= best:
            best, best_step = row["holdout_recovered_pct"], trainer.step
            trainer.save(run_dir / "best", {"best_step": best_step, "best_recovery_pct": best,
                                            "best_val_critic_loss": row["val_critic_loss"]})
            if args.pack_to:
                _pack(run_dir, args.pack_to, "best")
        if final or time.monotonic() - t_start > args.minutes * 30:  # last: from half-time on
            trainer.save(run_dir / "last", {"best_step": best_step, "best_recovery_pct": best,
                                            "best_val_critic_loss": row["val_critic_loss"]})
            if args.pack_to:
                _pack(run_dir, args.pack_to, "last")
        print(f"[{run_dir.name}] step {trainer.step} ({trainer.wall:.0f} s): critic "
              f"{row['train_critic_loss']:.3f} val {row['val_critic_loss']:.3f} | recovered "
              f"{row['holdout_recovered_pct']:.2f}% unique {row['unique_pct']:.1f}% 3-el "
              f"{row['elements_3_pct']:.1f}% 2-1-1 {row['pattern_211_pct']:.1f}%", flush=True)
        last_eval = time.monotonic()


def _bool(s: str) -> bool:
    return s.lower() in ("1", "true", "yes")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    ex = sub.add_parser("export", help="write the split as count vectors")
    ex.add_argument("--out", type=Path, required=True)
    tr = sub.add_parser("train", help="train for a wall-clock budget")
    for f in dataclasses.fields(GanConfig):
        kind = _bool if isinstance(f.default, bool) else type(f.default)
        for p in (ex, tr) if f.name in ("seed", "val_fraction") else (tr,):
            p.add_argument(f"--{f.name.replace('_', '-')}", type=kind, default=None)
    tr.add_argument("--data", type=Path, required=True)
    tr.add_argument("--run-dir", type=Path, required=True)
    tr.add_argument("--minutes", type=float, required=True, help="wall-clock budget, compilation included")
    tr.add_argument("--chunk", type=int, default=100, help="iterations per compiled call")
    tr.add_argument("--eval-seconds", type=float, default=30.0)
    tr.add_argument("--pack-to", type=Path, default=None, help="also write <run>_best/last.tar here")
    args = ap.parse_args(argv)
    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(GanConfig)
                 if getattr(args, f.name, None) is not None}
    if args.command == "export":
        defaults = GanConfig()
        export_split(args.out, overrides.get("seed", defaults.seed),
                     overrides.get("val_fraction", defaults.val_fraction))
    else:
        overrides.setdefault("iterations", 10**9)  # the wall-clock budget decides
        train(args, GanConfig(**overrides))


if __name__ == "__main__":
    main()
