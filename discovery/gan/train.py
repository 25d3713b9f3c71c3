"""WGAN training with checkpoints, resume and a per-interval quality log.

Losses are equations (3)/(4): L_G = -E[f(G(z))], L_D = E[f(G(z))] - E[f(x)], with either a
gradient penalty (``loss="gp"``, the authors' code: lambda 10, Adam 1e-4, betas 0.5/0.9) or
weight clipping (``loss="clip"``, the paper's text: +-0.01, RMSProp 1e-2).

Every random draw (batch rows, z, Gumbel noise, penalty mixing) is a stateless function of
(seed, step), so a run resumed from a checkpoint continues exactly as if never stopped.
"""

from __future__ import annotations

import json
import logging
import shutil
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from discovery.elements import MAX_COUNT, N_ELEMENTS
from discovery.gan.config import GanConfig
from discovery.gan.models import LATENT_DIM, build_critic, build_generator, logits_model
from discovery.gan.runlog import append_log, truncate_log

log = logging.getLogger(__name__)


@dataclass
class TrainState:
    step: int = 0
    wall_seconds: float = 0.0
    best_val_critic_loss: float = float("inf")
    best_step: int = -1
    history: list[dict] = field(default_factory=list)


class GanTrainer:
    """Trains a generator/critic pair on one-hot matrices [N, 85, 8]."""

    def __init__(self, config: GanConfig, run_dir: Path, train_x: np.ndarray, val_x: np.ndarray,
                 evaluator=None):
        self.cfg = config
        self.run_dir = Path(run_dir)
        self.train_x = train_x.astype(np.float32, copy=False)
        self.val_x = val_x.astype(np.float32, copy=False)
        self.evaluator = evaluator
        keras.utils.set_random_seed(config.seed)
        self.generator = build_generator(config.generator, config.logit_bias)
        self.logits = logits_model(self.generator)
        self.critic = build_critic(config.embedding_dim, config.count_features, config.minibatch_std,
                                   config.matrix_width)
        if config.loss == "gp":
            self.g_opt = keras.optimizers.Adam(config.lr_generator, config.beta_1, config.beta_2)
            self.c_opt = keras.optimizers.Adam(config.lr_critic, config.beta_1, config.beta_2)
        elif config.loss == "clip":
            self.g_opt = keras.optimizers.RMSprop(config.lr_generator)
            self.c_opt = keras.optimizers.RMSprop(config.lr_critic)
        else:
            raise ValueError(f"unknown loss {config.loss!r}; use 'gp' or 'clip'")
        self.g_opt.build(self.generator.trainable_variables)
        self.c_opt.build(self.critic.trainable_variables)
        self.state = TrainState()
        self._step_fn = tf.function(self._train_step)

    # ------------------------------------------------------------------ one iteration
    def _fake(self, z, seed, training: bool):
        logits = tf.squeeze(self.logits(z, training=training), -1)  # [B, 85, 8]
        if self.cfg.output == "sigmoid":
            return tf.sigmoid(logits)
        full = tf.concat([tf.zeros_like(logits[..., :1]), logits], axis=-1)  # absent logit 0
        if self.cfg.output == "gumbel":  # sample the categorical; else its mode (z alone varies)
            u = tf.random.stateless_uniform(tf.shape(full), seed, minval=1e-6, maxval=1.0 - 1e-6)
            full = full - tf.math.log(-tf.math.log(u))
        y_soft = tf.nn.softmax(full / self.cfg.tau, axis=-1)
        y_hard = tf.one_hot(tf.argmax(y_soft, axis=-1), MAX_COUNT + 1, dtype=y_soft.dtype)
        y = y_hard + y_soft - tf.stop_gradient(y_soft)
        return y[..., 1:]

    def _train_step(self, real, seeds):
        """real: [n_critic, B, 85, 8]; seeds: [n_critic + 1, 4, 2] int32 stateless seeds."""
        cfg = self.cfg
        b = tf.shape(real)[1]
        c_losses = []
        for i in range(cfg.n_critic):
            z = tf.random.stateless_normal([b, LATENT_DIM], seeds[i, 0])
            fake = self._fake(z, seeds[i, 1], training=True)
            eps = tf.random.stateless_uniform([b, 1, 1], seeds[i, 2])
            with tf.GradientTape() as tape:
                loss = critic_loss(self.critic, real[i], fake, eps,
                                   cfg.gp_weight if cfg.loss == "gp" else 0.0)
            grads = tape.gradient(loss, self.critic.trainable_variables)
            self.c_opt.apply_gradients(zip(grads, self.critic.trainable_variables, strict=True))
            if cfg.loss == "clip":
                for v in self.critic.trainable_variables:
                    v.assign(tf.clip_by_value(v, -cfg.clip, cfg.clip))
            c_losses.append(loss)
        z = tf.random.stateless_normal([b, LATENT_DIM], seeds[cfg.n_critic, 0])
        with tf.GradientTape() as tape:
            fake = self._fake(z, seeds[cfg.n_critic, 1], training=True)
            g_loss = -tf.reduce_mean(self.critic(fake, training=True))
        grads = tape.gradient(g_loss, self.generator.trainable_variables)
        self.g_opt.apply_gradients(zip(grads, self.generator.trainable_variables, strict=True))
        return tf.reduce_mean(tf.stack(c_losses)), g_loss

    def _step_inputs(self, step: int):
        cfg = self.cfg
        rng = np.random.default_rng([cfg.seed, step])
        rows = rng.integers(0, len(self.train_x), size=(cfg.n_critic, cfg.batch_size))
        seeds = rng.integers(0, 2**31 - 1, size=(cfg.n_critic + 1, 4, 2), dtype=np.int64)
        return self.train_x[rows], seeds.astype(np.int32)

    # ------------------------------------------------------------------ evaluation
    @property
    def decode_rule(self) -> str:
        """How samples are read: drawn from the categorical a Gumbel generator models."""
        return "sample" if self.cfg.output == "gumbel" else "argmax"  # st_argmax, sigmoid: the mode

    def val_critic_loss(self, fake_x: np.ndarray) -> float:
        """Equation (4) on the validation split: E[f(fake)] - E[f(real_val)]."""
        n = min(len(self.val_x), len(fake_x))
        f_fake = self.critic.predict(fake_x[:n], batch_size=4096, verbose=0).mean()
        f_real = self.critic.predict(self.val_x[:n], batch_size=4096, verbose=0).mean()
        return float(f_fake - f_real)

    def sample_probabilities(self, n: int, seed: int) -> np.ndarray:
        z = np.random.default_rng(seed).standard_normal((n, LATENT_DIM)).astype(np.float32)
        return self.generator.predict(z, batch_size=2048, verbose=0)[..., 0]

    # ------------------------------------------------------------------ checkpoints
    def save(self, path: Path) -> None:
        """Atomically write generator, critic, optimizer state and progress to ``path``."""
        tmp = path.with_name(path.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        self.generator.save(tmp / "generator.keras")
        self.critic.save(tmp / "critic.keras")
        np.savez(tmp / "optimizers.npz",
                 **{f"g{i}": v.numpy() for i, v in enumerate(self.g_opt.variables)},
                 **{f"c{i}": v.numpy() for i, v in enumerate(self.c_opt.variables)})
        state = asdict(self.state)
        state.pop("history")
        (tmp / "state.json").write_text(json.dumps({"config": asdict(self.cfg), **state}, indent=2))
        old = path.with_name(path.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        if path.exists():
            path.rename(old)
        tmp.rename(path)
        shutil.rmtree(old, ignore_errors=True)

    def restore(self, path: Path) -> None:
        """Continue from a checkpoint written by :meth:`save` (same step, same optimizer)."""
        from discovery.model_files import load_keras_model

        meta = json.loads((path / "state.json").read_text())
        gen = load_keras_model(path / "generator.keras")
        crit = load_keras_model(path / "critic.keras")
        self.generator.set_weights(gen.get_weights())
        self.critic.set_weights(crit.get_weights())
        opt = np.load(path / "optimizers.npz")
        for i, v in enumerate(self.g_opt.variables):
            v.assign(opt[f"g{i}"])
        for i, v in enumerate(self.c_opt.variables):
            v.assign(opt[f"c{i}"])
        for k in ("step", "wall_seconds", "best_val_critic_loss", "best_step"):
            setattr(self.state, k, meta[k])

    # ------------------------------------------------------------------ the loop
    def train(self, iterations: int | None = None, progress: bool = True) -> TrainState:
        """Run up to ``iterations`` total iterations, checkpointing to ``run_dir/last``."""
        cfg = self.cfg
        total = iterations if iterations is not None else cfg.iterations
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
        log_file = self.run_dir / "log.csv"
        truncate_log(log_file, self.state.step)
        stop = {"flag": False}

        def _on_term(signum, frame):  # finish the iteration, checkpoint, exit
            stop["flag"] = True

        old_handler = signal.signal(signal.SIGTERM, _on_term)
        from tqdm.auto import tqdm

        bar = tqdm(total=total, initial=self.state.step, disable=not progress, desc="wgan")
        last_ckpt = time.monotonic()
        c_acc, g_acc, n_acc = 0.0, 0.0, 0
        try:
            while self.state.step < total and not stop["flag"]:
                t0 = time.monotonic()
                real, seeds = self._step_inputs(self.state.step)
                c_loss, g_loss = self._step_fn(tf.constant(real), tf.constant(seeds))
                c_acc += float(c_loss)
                g_acc += float(g_loss)
                n_acc += 1
                self.state.step += 1
                self.state.wall_seconds += time.monotonic() - t0
                bar.update(1)
                if self.state.step % cfg.eval_every == 0 or self.state.step == total:
                    row = {"step": self.state.step, "wall_seconds": round(self.state.wall_seconds, 1),
                           "train_critic_loss": c_acc / n_acc, "generator_loss": g_acc / n_acc}
                    row.update(self.evaluate())
                    append_log(log_file, row)
                    self.state.history.append(row)
                    bar.set_postfix(val_critic=f"{row['val_critic_loss']:.3f}")
                    c_acc, g_acc, n_acc = 0.0, 0.0, 0
                    if row["val_critic_loss"] < self.state.best_val_critic_loss:
                        self.state.best_val_critic_loss = row["val_critic_loss"]
                        self.state.best_step = self.state.step
                        self.save(self.run_dir / "best")
                    self.save(self.run_dir / "last")
                    last_ckpt = time.monotonic()
                elif time.monotonic() - last_ckpt > cfg.checkpoint_minutes * 60:
                    self.save(self.run_dir / "last")
                    last_ckpt = time.monotonic()
        except KeyboardInterrupt:
            log.warning("interrupted at step %d; checkpointing", self.state.step)
        finally:
            bar.close()
            signal.signal(signal.SIGTERM, old_handler)
            self.save(self.run_dir / "last")
        return self.state

    def evaluate(self) -> dict:
        """Validation critic loss and generator quality on ``eval_samples`` samples."""
        from discovery.encoding import counts_to_matrix, decode_counts

        probs = self.sample_probabilities(self.cfg.eval_samples, seed=12345)
        counts = decode_counts(probs, self.decode_rule, np.random.default_rng(54321))
        row = {"val_critic_loss": self.val_critic_loss(counts_to_matrix(counts).astype(np.float32))}
        if self.evaluator is not None:
            row.update(self.evaluator(counts))
        return row


def critic_loss(critic: keras.Model, real, fake, eps, gp_weight: float):
    """Equation (4), E[f(fake)] - E[f(real)], plus the gradient penalty on the mixes
    eps * real + (1 - eps) * fake when ``gp_weight`` > 0."""
    loss = tf.reduce_mean(critic(fake, training=True)) - tf.reduce_mean(critic(real, training=True))
    if gp_weight:
        mix = eps * real + (1.0 - eps) * fake
        with tf.GradientTape() as gp_tape:
            gp_tape.watch(mix)
            d_mix = critic(mix, training=True)
        norm = tf.sqrt(tf.reduce_sum(tf.square(gp_tape.gradient(d_mix, mix)), axis=[1, 2]) + 1e-12)
        loss += gp_weight * tf.reduce_mean(tf.square(norm - 1.0))
    return loss


def one_hot_dataset(formulas: list[str]) -> np.ndarray:
    """Training matrices [N, 85, 8] float32 from formulas (raises on any that do not fit)."""
    from discovery.encoding import encode

    x = encode(formulas).astype(np.float32)
    assert x.shape[1:] == (N_ELEMENTS, MAX_COUNT)
    return x
