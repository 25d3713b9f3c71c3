"""An attention regressor over element tokens (the CrabNet / Roost family), in Keras.

Each element present is a token: its row of the atom embedding T (the GAN critic's, trainable,
so the seed paper's representation is the starting point) projected to the model width, plus an
encoding of its fraction (linear, logarithmic and sinusoidal, as CrabNet's fractional encoding).
A few pre-norm self-attention blocks let elements see each other; a fraction-weighted mean pools
the tokens; a residual MLP head predicts the target. Inputs are element amounts [B, 85] (the
``OneHot(amounts='fractions')`` featurizer), so a trained model drops into ``PropertyModel`` and
``Ensemble`` like the MLP, and saves as one ``.keras`` file. Only backend-neutral ``keras.ops``
are used, so the same model trains on Keras' JAX backend on a GPU.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
from keras import layers, ops

from discovery.elements import N_ELEMENTS
from discovery.errors import ConfigError
from discovery.regressors import _check_xy, fit_keras, predict_model

MAX_TOKENS = 8
SCHEDULES = ("plateau", "cosine")


@keras.saving.register_keras_serializable(package="discovery")
class ElementTokens(layers.Layer):
    """Amounts [B, 85] -> (element indices [B, k], fractions [B, k]), largest first; absent
    slots have fraction 0. ``Ensemble.predict`` traces graphs with fewer tokens (marker below)."""

    element_tokens = True

    def __init__(self, max_tokens: int = MAX_TOKENS, **kw):
        super().__init__(**kw)
        self.max_tokens = max_tokens

    def call(self, x):
        x = ops.maximum(x, 0.0)
        frac = x / ops.maximum(ops.sum(x, axis=-1, keepdims=True), 1e-12)
        values, idx = ops.top_k(frac, self.max_tokens)
        return idx, values

    def get_config(self):
        return {**super().get_config(), "max_tokens": self.max_tokens}


@keras.saving.register_keras_serializable(package="discovery")
class FractionEncoding(layers.Layer):
    """Fractions [B, k] -> features [B, k, 2 + 2·n_freq]: x, log x, sin/cos(2π f x)."""

    def __init__(self, n_freq: int = 8, **kw):
        super().__init__(**kw)
        self.n_freq = n_freq

    def call(self, frac):
        f = ops.expand_dims(frac, -1)
        freqs = ops.reshape(ops.arange(1, self.n_freq + 1, dtype="float32"), (1, 1, -1)) * (2 * np.pi)
        logf = ops.log(ops.maximum(f, 1e-4)) / 4.0
        return ops.concatenate([f, logf, ops.sin(f * freqs), ops.cos(f * freqs)], axis=-1)

    def get_config(self):
        return {**super().get_config(), "n_freq": self.n_freq}


@keras.saving.register_keras_serializable(package="discovery")
class PresentMask(layers.Layer):
    """Fractions [B, k] -> attention mask [B, k, k] (token pairs both present) and the pooling
    weights [B, k, 1] (the fractions)."""

    def call(self, frac):
        present = ops.cast(frac > 0, "float32")
        mask = ops.expand_dims(present, -1) * ops.expand_dims(present, -2)
        return ops.cast(mask, "bool"), ops.expand_dims(frac, -1)


def build_attention_model(embedding: np.ndarray, y_mean: float, y_std: float, width: int = 128,
                          heads: int = 4, blocks: int = 3, ff: int = 256, head_widths=(256, 128, 64),
                          dropout: float = 0.0) -> keras.Model:
    """Amounts [B, 85] -> target [B, 1] (target units); ``embedding`` is T [85, d], trainable."""
    t = np.asarray(embedding, dtype=np.float32)
    if t.shape[0] != N_ELEMENTS:
        raise ValueError(f"embedding must have {N_ELEMENTS} rows, got {t.shape}")
    x = keras.Input((N_ELEMENTS,), name="amounts")
    idx, frac = ElementTokens(name="tokens")(x)
    mask, weights = PresentMask(name="mask")(frac)
    emb = layers.Embedding(N_ELEMENTS, t.shape[1], embeddings_initializer=keras.initializers.Constant(t),
                           name="atom_embedding")(idx)
    h = layers.Dense(width, name="embed_projection")(emb)
    h = h + layers.Dense(width, name="fraction_projection")(FractionEncoding(name="fraction_encoding")(frac))
    for b in range(blocks):
        a = layers.LayerNormalization(name=f"ln_attn_{b}")(h)
        a = layers.MultiHeadAttention(heads, width // heads, dropout=dropout, name=f"attention_{b}")(
            a, a, attention_mask=mask)
        h = h + a
        f = layers.LayerNormalization(name=f"ln_ff_{b}")(h)
        f = layers.Dense(ff, activation="gelu", name=f"ff_in_{b}")(f)
        f = layers.Dense(width, name=f"ff_out_{b}")(f)
        h = h + f
    h = layers.LayerNormalization(name="ln_out")(h)
    pooled = ops.sum(h * weights, axis=1)  # fraction-weighted mean (fractions sum to 1)
    z = pooled
    for i, w in enumerate(head_widths):  # residual head (Roost's ResidualNetwork)
        skip = layers.Dense(w, use_bias=False, name=f"head_skip_{i}")(z)
        z = layers.Dense(w, activation="relu", name=f"head_{i}")(z) + skip
    out = layers.Dense(1, name="head_out")(z)
    y = layers.Rescaling(scale=float(y_std), offset=float(y_mean), name="to_target_units")(out)
    return keras.Model(x, y, name="element_attention")


@dataclass
class AttentionRegressor:
    """scikit-learn-style fit/predict; early stopping on a validation split, best weights kept.

    With ``checkpoint_dir`` the fit saves its state every epoch and resumes from it when run
    again (Keras' BackupAndRestore): a killed training loses at most one epoch.

    ``schedule``: ``"plateau"`` halves the learning rate after ``lr_patience`` epochs without
    validation gain; ``"cosine"`` anneals it from ``learning_rate`` to 1/64 of it along a half
    cosine over ``max_epochs`` or, when ``max_minutes`` ends first, over that wall-clock budget,
    so a run cut short by its budget (a lent GPU's minutes) still ends annealed. Either schedule
    keeps each epoch's rate in ``history_["learning_rate"]`` (the plateau one when
    ``lr_patience`` > 0).
    """

    embedding: np.ndarray = field(repr=False, default=None)
    width: int = 128
    heads: int = 4
    blocks: int = 3
    ff: int = 256
    head_widths: tuple[int, ...] = (256, 128, 64)
    learning_rate: float = 5e-4
    batch_size: int = 256
    max_epochs: int = 200
    patience: int = 20
    lr_patience: int = 8
    loss: str = "mae"
    schedule: str = "plateau"
    seed: int = 0
    max_minutes: float = 0.0  # > 0: stop after this much wall time (best weights kept)
    init_from: Path | None = None  # a trained .keras of the same shape: a warm restart from its weights
    checkpoint_dir: Path | None = None
    verbose: int = 0
    history_: dict = field(default_factory=dict, repr=False)

    def fit(self, x: np.ndarray, y: np.ndarray, x_val: np.ndarray, y_val: np.ndarray) -> AttentionRegressor:
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        x, y = _check_xy(x, y)
        x_val, y_val = _check_xy(x_val, y_val)
        keras.utils.set_random_seed(self.seed)
        if isinstance(self.embedding, np.ndarray):  # no featurizer import: the GPU machine lacks pandas
            t = self.embedding
        else:
            from discovery.featurizers import load_embedding

            t = load_embedding(self.embedding)
        self.model_ = build_attention_model(t, float(y.mean()), float(y.std() or 1.0), self.width,
                                            self.heads, self.blocks, self.ff, tuple(self.head_widths))
        if self.init_from is not None:
            self._warm_start(Path(self.init_from))
        callbacks: list = []
        if self.max_minutes:
            callbacks.append(_WallClock(self.max_minutes * 60))
        if self.checkpoint_dir is not None:
            callbacks.append(keras.callbacks.BackupAndRestore(str(self.checkpoint_dir),
                                                              delete_checkpoint=False))
        if self.schedule == "cosine":
            callbacks.append(_CosineAnnealing(self.learning_rate, self.learning_rate / 64, self.max_epochs,
                                              self.max_minutes * 60))
        return fit_keras(self, self.model_, x, y, x_val, y_val, self.learning_rate / 64, callbacks,
                         lr_patience=self.lr_patience if self.schedule == "plateau" else 0)

    def predict(self, x: np.ndarray, batch_size: int = 8192) -> np.ndarray:
        return predict_model(self.model_, np.asarray(x, dtype=np.float32), batch_size)

    def _warm_start(self, path: Path) -> None:
        """Copy the weights of a trained model of this shape (float16-stored ones as float32):
        with a cosine schedule from a fresh rate, a snapshot-ensemble member (Huang et al. 2017)
        that leaves the trained minimum and anneals into a nearby one, at a tenth of the cost of
        training from scratch."""
        if not path.is_file():
            raise ConfigError(f"init_from {str(path)!r} is not a file")
        src = keras.models.load_model(path)
        shapes = [tuple(w.shape) for w in src.weights], [tuple(w.shape) for w in self.model_.weights]
        if shapes[0] != shapes[1]:
            raise ConfigError(f"init_from {str(path)!r} has another shape than width {self.width}, "
                              f"blocks {self.blocks}, ff {self.ff}, head {tuple(self.head_widths)}")
        self.model_.set_weights([np.asarray(w, dtype=np.float32) for w in src.get_weights()])
        units, src_units = self.model_.get_layer("to_target_units"), src.get_layer("to_target_units")
        units.scale, units.offset = src_units.scale, src_units.offset  # the source's target scaling


class _CosineAnnealing(keras.callbacks.Callback):
    """Half-cosine learning rate from ``lr0`` to ``lr_min`` over ``epochs`` or ``seconds`` of wall
    time (> 0), whichever is nearer its end at the start of each epoch. The time left is judged
    by the last epoch's duration, never the first's (it holds the compilation: on a GPU 70 s
    against 3 s, which once sent the rate to its floor in the second epoch); the rate never rises."""

    def __init__(self, lr0: float, lr_min: float, epochs: int, seconds: float = 0.0):
        super().__init__()
        self.lr0, self.lr_min, self.epochs, self.seconds = lr0, lr_min, epochs, seconds

    def on_train_begin(self, logs=None):
        self.t0 = time.perf_counter()
        self.done, self.last_epoch_seconds, self.epochs_run = 0.0, 0.0, 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_t0 = time.perf_counter()
        done = epoch / max(self.epochs - 1, 1)
        if self.seconds > 0:
            done = max(done, (self.epoch_t0 - self.t0 + self.last_epoch_seconds) / self.seconds)
        self.done = max(self.done, min(done, 1.0))
        lr = self.lr_min + (self.lr0 - self.lr_min) * 0.5 * (1 + math.cos(math.pi * self.done))
        self.model.optimizer.learning_rate.assign(lr)

    def on_epoch_end(self, epoch, logs=None):
        self.epochs_run += 1
        if self.epochs_run > 1:  # the first epoch of a fit compiles
            self.last_epoch_seconds = time.perf_counter() - self.epoch_t0
        if logs is not None:
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))


class _WallClock(keras.callbacks.Callback):
    """Stop training after a wall-clock budget (EarlyStopping still restores the best weights)."""

    def __init__(self, seconds: float):
        super().__init__()
        self.seconds = seconds

    def on_train_begin(self, logs=None):
        self.t0 = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if time.perf_counter() - self.t0 > self.seconds:
            self.model.stop_training = True
