"""PatternWGAN: the paper's WGAN, conditioned on the count pattern (registry name ``wgan-pattern``).

A composition is the paper's 85x8 matrix. The generator takes noise z and a count pattern
('2-1-1', drawn with its training share) and emits one row of element logits per site of the
pattern; sites are filled in turn, each element drawn by Gumbel-max with the elements already
placed masked, so every sample has exactly the pattern's stoichiometry and distinct elements.
In training the draw is a straight-through Gumbel-softmax, so the critic's gradient reaches
the logits. The critic reads the matrix through an atom embedding T [85, d] (one Dense layer
named ``atom_embedding`` applied to every count column, the paper's C column by column) and a
LeakyReLU MLP; it is trained with the gradient penalty (WGAN-GP, n_critic steps per generator
step, Adam beta 0.5/0.9).

Why conditioned: the unconditioned WGAN never learned the set's count patterns (its
pattern distance stayed ~70 points, pipelines/reports/gan_variants/); given the pattern, the
network only has to learn which elements fill which site, and with whom.

Selection and resume: every ``eval_every`` iterations ``eval_samples`` draws are scored on a
validation split carved (seeded) from the training compositions, as the share of novel distinct
draws that are validation compositions (precision); the best generator weights are kept. With a
``run_dir``, ``last/`` (networks, optimizer state, iteration, log) is written after each
evaluation and ``resume=True`` continues there. All noise comes from numpy generators seeded by
(seed, iteration), so a resumed run equals an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from discovery.atomic import recover_dir, replace_dir, staging_dir
from discovery.elements import MAX_COUNT, N_ELEMENTS
from discovery.encoding import composition_keys, count_patterns, counts_to_matrix
from discovery.errors import ConfigError
from discovery.generation.base import BlockGenerator, read_card, read_state, state_version
from discovery.generation.training import training_set

DEFAULTS = {"z_dim": 32, "pattern_dim": 16, "hidden": 256, "embed_dim": 32, "critic_hidden": 256,
            "batch_size": 256, "n_critic": 5, "learning_rate": 1e-4, "beta_1": 0.5, "beta_2": 0.9,
            "gp_weight": 10.0, "iterations": 3000, "eval_every": 500, "eval_samples": 20000,
            "val_fraction": 0.1}
STATE = ("patterns", "pattern_p", "site_count")


def pattern_tables(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(pattern labels [P], their shares [P], site counts [P, S] (0: no site), each row's
    pattern index [N]) of count vectors [N, 85]; sites are the pattern's counts, high to low."""
    labels, inverse, n = np.unique(count_patterns(counts).astype(str), return_inverse=True,
                                   return_counts=True)
    sites = [[int(v) for v in p.split("-")] for p in labels]
    table = np.zeros((len(labels), max(len(s) for s in sites)), np.int32)
    for i, s in enumerate(sites):
        table[i, : len(s)] = s
    return labels, n / n.sum(), table, inverse.astype(np.int32)


def build_networks(n_patterns: int, n_sites: int, hp: dict, seed: int):
    """(generator, critic) Keras functional models, seeded initialisation."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    z = keras.Input((hp["z_dim"],), name="z")
    pat = keras.Input((), dtype="int32", name="pattern")
    emb = layers.Embedding(n_patterns, hp["pattern_dim"], name="pattern_embedding")(pat)
    h = layers.Concatenate()([z, emb])
    for i in range(2):
        h = layers.Dense(hp["hidden"], activation="relu", name=f"g_dense_{i}")(h)
    logits = layers.Reshape((n_sites, N_ELEMENTS))(layers.Dense(n_sites * N_ELEMENTS, name="site_logits")(h))
    generator = keras.Model([z, pat], logits, name="pattern_generator")
    x = keras.Input((N_ELEMENTS, MAX_COUNT), name="matrix")
    h = layers.Permute((2, 1))(x)  # [8 count columns, 85]
    h = layers.Flatten()(layers.Dense(hp["embed_dim"], use_bias=False, name="atom_embedding")(h))
    for i in range(2):
        h = layers.LeakyReLU(0.2)(layers.Dense(hp["critic_hidden"], name=f"c_dense_{i}")(h))
    critic = keras.Model(x, layers.Dense(1, name="score")(h), name="pattern_critic")
    return generator, critic


class PatternWGAN(BlockGenerator):
    """Count-pattern-conditioned WGAN-GP over the paper's composition matrices."""

    name = "wgan-pattern"
    BLOCK = 8192

    def __init__(self, card: dict | None = None, **hparams):
        super().__init__(card)
        unknown = set(hparams) - set(DEFAULTS)
        if unknown:
            raise ConfigError(f"unknown PatternWGAN option {sorted(unknown)[0]!r}")
        self.hparams = hp = {**DEFAULTS, **self.card.get("hyperparameters", {}), **hparams}
        for key in ("z_dim", "pattern_dim", "hidden", "embed_dim", "critic_hidden", "batch_size", "n_critic",
                    "iterations", "eval_every", "eval_samples"):
            if isinstance(hp[key], bool) or not isinstance(hp[key], int | np.integer) or hp[key] < 1:
                raise ConfigError(f"{key} must be an integer >= 1, got {hp[key]!r}")
        checks = (("val_fraction", lambda v: 0 < v < 1, "in (0, 1)"),
                  ("learning_rate", lambda v: v > 0, "> 0"), ("gp_weight", lambda v: v >= 0, ">= 0"),
                  ("beta_1", lambda v: 0 <= v < 1, "in [0, 1)"),
                  ("beta_2", lambda v: 0 <= v < 1, "in [0, 1)"))
        for key, ok, what in checks:
            if isinstance(hp[key], bool) or not isinstance(hp[key], int | float) or not ok(hp[key]):
                raise ConfigError(f"{key} must be a number {what}, got {hp[key]!r}")
        self.generator = self.critic = None
        self._fn = None

    # -- the generator's forward pass ------------------------------------------------------
    def _matrices(self, z, pat, gumbel, hard_only: bool):
        """Composition matrices [B, 85, 8] (straight-through in training) from noise."""
        import tensorflow as tf

        logits = self.generator([z, pat])
        sites = tf.gather(self._site_count, pat)  # [B, S]
        used = tf.zeros_like(logits[:, 0])
        x = tf.zeros((tf.shape(z)[0], N_ELEMENTS, MAX_COUNT))
        columns = tf.constant(np.eye(MAX_COUNT + 1, dtype=np.float32)[:, 1:])  # count 0 -> no column
        for s in range(self._site_count.shape[1]):
            lg = logits[:, s] + gumbel[:, s] - 1e9 * used
            hard = tf.one_hot(tf.argmax(lg, -1), N_ELEMENTS)
            if not hard_only:
                soft = tf.nn.softmax(lg)
                hard = hard + soft - tf.stop_gradient(soft)
            hard = hard * tf.cast(sites[:, s] > 0, tf.float32)[:, None]
            used = used + tf.stop_gradient(hard)
            x = x + hard[:, :, None] * tf.gather(columns, sites[:, s])[:, None, :]
        return x

    def _noise(self, rng: np.random.Generator, size: int, patterns: np.ndarray | None = None):
        pat = rng.choice(len(self.pattern_p), size=size, p=self.pattern_p) if patterns is None else patterns
        z = rng.standard_normal((size, self.hparams["z_dim"]), dtype=np.float32)
        g = rng.gumbel(size=(size, self.site_count.shape[1], N_ELEMENTS)).astype(np.float32)
        return z, pat.astype(np.int32), g

    def _block(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """A full block is always drawn (and cut to ``size``), so ``sample(m)`` starts with
        ``sample(n)`` for m > n."""
        import tensorflow as tf

        if self._fn is None:
            self._site_count = tf.constant(self.site_count, tf.int32)
            self._fn = tf.function(lambda z, p, g: self._matrices(z, p, g, True), reduce_retracing=True,
                                   autograph=False)
        x = self._fn(*self._noise(rng, self.BLOCK)).numpy()[:size]
        return (x @ np.arange(1, MAX_COUNT + 1, dtype=np.float32)).round().astype(np.int8)

    def _require_fit(self) -> None:
        if self.generator is None:
            raise ConfigError(f"generator {self.name!r} is not fitted: call fit() or load() first")

    # -- training ----------------------------------------------------------------------------
    def fit(self, formulas: Sequence[str] | np.ndarray, seed: int = 0, run_dir: Path | str | None = None,
            resume: bool = False, log: Callable[[str], None] | None = None) -> PatternWGAN:
        """Train on formulas or count vectors (skipped rows are counted in the card). The
        validation split is ``discovery.gan.config.split_indices``' (at least one row)."""
        ts = training_set(formulas)
        n = len(ts.counts)
        if n < 2:
            raise ConfigError(f"generator {self.name!r}: need at least 2 training compositions "
                              f"({ts.summary()})")
        perm = np.random.default_rng(seed).permutation(n)
        n_val = min(max(1, int(round(n * self.hparams["val_fraction"]))), n - 1)
        tr, va = np.sort(perm[n_val:]), np.sort(perm[:n_val])
        counts, val = ts.counts[tr].astype(np.int64), ts.counts[va].astype(np.int64)
        self.patterns, self.pattern_p, self.site_count, pat_of_row = pattern_tables(counts)
        self.card.update({"name": self.name, "kind": self.name, "training_compositions": len(ts.counts),
                          "train_rows": len(tr), "validation_rows": len(va)})
        if ts.skipped:
            self.card["skipped_rows"] = ts.skipped
        self._train(counts, pat_of_row, val, seed, Path(run_dir) if run_dir else None, resume, log)
        return self

    def _train(self, counts, pat_of_row, val, seed, run: Path | None, resume: bool, log) -> None:
        import keras
        import tensorflow as tf

        hp = self.hparams
        self.generator, self.critic = build_networks(len(self.patterns), self.site_count.shape[1], hp, seed)
        self._site_count, self._fn = tf.constant(self.site_count, tf.int32), None
        opts = [keras.optimizers.Adam(hp["learning_rate"], beta_1=hp["beta_1"], beta_2=hp["beta_2"])
                for _ in range(2)]
        opt_c, opt_g = opts
        opt_c.build(self.critic.trainable_variables)
        opt_g.build(self.generator.trainable_variables)
        gen, critic, b = self.generator, self.critic, hp["batch_size"]

        @tf.function(autograph=False)
        def critic_step(real, z, pat, g, eps):
            with tf.GradientTape() as tape:
                fake = self._matrices(z, pat, g, False)
                mix = eps[:, None, None] * real + (1 - eps[:, None, None]) * fake
                with tf.GradientTape() as inner:
                    inner.watch(mix)
                    score = critic(mix)
                grad = inner.gradient(score, mix)
                gp = tf.reduce_mean((tf.sqrt(tf.reduce_sum(grad**2, [1, 2]) + 1e-12) - 1.0) ** 2)
                loss = tf.reduce_mean(critic(fake)) - tf.reduce_mean(critic(real)) + hp["gp_weight"] * gp
            grads = tape.gradient(loss, critic.trainable_variables)
            opt_c.apply_gradients(zip(grads, critic.trainable_variables, strict=True))
            return loss

        @tf.function(autograph=False)
        def gen_step(z, pat, g):
            with tf.GradientTape() as tape:
                loss = -tf.reduce_mean(critic(self._matrices(z, pat, g, False)))
            grads = tape.gradient(loss, gen.trainable_variables)
            opt_g.apply_gradients(zip(grads, gen.trainable_variables, strict=True))
            return loss

        known, held = composition_keys(counts), composition_keys(val)
        settings = {"seed": seed, "patterns": self.patterns.tolist(),
                    "hyperparameters": {k: v for k, v in hp.items() if k not in ("iterations", "eval_every")}}
        fingerprint = hashlib.sha256(json.dumps(settings, sort_keys=True, default=float).encode()
                                     + np.ascontiguousarray(counts).tobytes()
                                     + np.ascontiguousarray(val).tobytes()).hexdigest()
        state = {"iteration": 0, "best_precision": -1.0, "best_iteration": 0, "seconds": 0.0, "log": [],
                 "fingerprint": fingerprint}
        best = (gen.get_weights(), critic.get_weights())
        if run is not None and resume:
            for part in ("last", "best"):
                recover_dir(run / part, "state.json")  # a run killed while writing a checkpoint
            if (run / "last" / "state.json").is_file():
                saved = json.loads((run / "last" / "state.json").read_text())
                if saved.get("fingerprint") != fingerprint:
                    raise ConfigError(f"run directory {str(run)!r} holds another training (other data, seed "
                                      "or settings); use another run directory or delete it")
                state = self._restore(run / "last", opts)
                best = self._load_weights(run / "best")
        t0 = time.perf_counter() - state["seconds"]
        while state["iteration"] < hp["iterations"]:
            it = state["iteration"] + 1
            rng = np.random.default_rng([seed, it])
            for _ in range(hp["n_critic"]):
                idx = rng.integers(0, len(counts), b)
                z, pat, g = self._noise(rng, b, pat_of_row[idx])
                real = counts_to_matrix(counts[idx]).astype(np.float32)
                lc = critic_step(real, z, pat, g, rng.random(b, dtype=np.float32))
            lg = gen_step(*self._noise(rng, b))
            state["iteration"] = it
            if it % hp["eval_every"] == 0 or it == hp["iterations"]:
                row = {"iteration": it, "critic_loss": round(float(lc), 5),
                       "generator_loss": round(float(lg), 5), **self._validate(known, held),
                       "seconds": round(time.perf_counter() - t0, 1)}
                state["log"].append(row)
                state["seconds"] = time.perf_counter() - t0
                if row["precision_pct"] >= state["best_precision"]:  # ties: the later, trained longer
                    state["best_precision"], state["best_iteration"] = row["precision_pct"], it
                    best = (gen.get_weights(), critic.get_weights())
                    if run is not None:
                        self._checkpoint(run / "best", state={"iteration": it})
                if run is not None:
                    self._checkpoint(run / "last", opts, state)
                if log is not None:
                    log(", ".join(f"{k}={v}" for k, v in row.items()))
        gen.set_weights(best[0])
        critic.set_weights(best[1])  # the critic of the chosen iteration: its T goes with the generator
        self.card["training"] = {"seed": seed, "iterations": state["iteration"],
                                 "best_iteration": state["best_iteration"],
                                 "best_validation_precision_pct": state["best_precision"],
                                 "seconds": round(state["seconds"], 1), "log": state["log"],
                                 "selection": "highest validation precision (held-out share of novel "
                                              f"distinct draws, {hp['eval_samples']:,} draws, seed 1)"}

    def _validate(self, known: np.ndarray, held: np.ndarray) -> dict:
        """Distinct, novel and validation hits of ``eval_samples`` draws (seed 1), and precision
        (hits among novel; ``metrics.recovery_metrics``). The sampling graph reads the current
        weights: no retrace needed."""
        from discovery.generation.metrics import recovery_metrics

        m = recovery_metrics(self.sample_counts(self.hparams["eval_samples"], seed=1), known, held)
        return {"unique": m["distinct"], "novel": m["novel"], "hits": m["holdout_hits"],
                "precision_pct": round(m["precision_pct"], 3)}

    # -- persistence ---------------------------------------------------------------------------
    def _checkpoint(self, path: Path, opts=None, state: dict | None = None) -> None:
        """Write a checkpoint folder whole: staged, ``state.json`` last, then swapped in."""
        tmp = staging_dir(path)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        self.generator.save(tmp / "generator.keras")
        self.critic.save(tmp / "critic.keras")
        if opts is not None:
            for name, opt in zip(("critic", "generator"), opts, strict=True):
                np.savez(tmp / f"optimizer_{name}.npz", *[v.numpy() for v in opt.variables])
        (tmp / "state.json").write_text(json.dumps(state or {}, indent=1))
        replace_dir(path, "state.json")

    def _load_weights(self, path: Path) -> tuple[list, list]:
        """(generator, critic) weights of a checkpoint folder."""
        import keras

        return tuple(keras.models.load_model(path / f"{n}.keras", compile=False).get_weights()
                     for n in ("generator", "critic"))

    def _restore(self, path: Path, opts) -> dict:
        gen_w, critic_w = self._load_weights(path)
        self.generator.set_weights(gen_w)
        self.critic.set_weights(critic_w)
        for name, opt in zip(("critic", "generator"), opts, strict=True):
            with np.load(path / f"optimizer_{name}.npz") as z:
                for v, i in zip(opt.variables, range(len(z.files)), strict=True):
                    v.assign(z[f"arr_{i}"])
        return json.loads((path / "state.json").read_text())

    def save(self, directory: Path | str) -> None:
        """``generator.keras``, ``critic.keras`` (its ``atom_embedding`` is T), the pattern
        tables and, last, ``card.json``, each written to a temporary name and renamed; ``load``
        checks the files against the card's version, so a killed save is refused there."""
        from discovery.atomic import atomic_write

        self._require_fit()
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        for name, model in (("generator", self.generator), ("critic", self.critic)):
            tmp = d / f"{name}.tmp.keras"
            try:
                model.save(tmp)
                os.replace(tmp, d / f"{name}.keras")
            finally:
                tmp.unlink(missing_ok=True)
        arrays = {k: getattr(self, k) for k in STATE}

        def write_arrays(p: Path) -> None:
            with p.open("wb") as f:  # a file object: np.savez would append .npz to a temp name
                np.savez(f, **arrays)

        atomic_write(d / "patterns.npz", write_arrays)
        card = {**self.card, "name": self.name, "generator": self.name, "hyperparameters": self.hparams,
                "version": self._version()}
        text = json.dumps(card, indent=2, default=float) + "\n"
        atomic_write(d / "card.json", lambda p: p.write_text(text))
        self.card = card

    def _version(self) -> str:
        """A hash of both networks' weights and the pattern tables."""
        arrays = {k: getattr(self, k) for k in STATE}
        arrays.update({f"g{i}": w for i, w in enumerate(self.generator.get_weights())})
        arrays.update({f"c{i}": w for i, w in enumerate(self.critic.get_weights())})
        return state_version(self.name, arrays)

    @classmethod
    def load(cls, directory: Path | str) -> PatternWGAN:
        """A saved generator; its files must agree with the card's version (a save that was
        killed half-way is refused, not sampled)."""
        from discovery.model_files import ModelFileError, load_keras_model

        d = Path(directory)
        gen = cls(read_card(d))
        z = read_state(d, "patterns.npz")
        for k in STATE:
            setattr(gen, k, z[k])
        gen.generator = load_keras_model(d / "generator.keras")
        gen.critic = load_keras_model(d / "critic.keras")
        if gen.card.get("version") != gen._version():
            raise ModelFileError(f"{str(d)!r}: the networks and pattern tables do not match the card's "
                                 f"version {gen.card.get('version')!r} (an interrupted save?); save or "
                                 "train it again")
        return gen

    def atom_embedding(self) -> np.ndarray:
        """The critic's T [85, d]: featurizes compositions like the paper's (C = counts @ T)."""
        self._require_fit()
        return np.asarray(self.critic.get_layer("atom_embedding").get_weights()[0])
