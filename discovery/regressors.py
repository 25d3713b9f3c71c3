"""Property regressors: the paper's MLP (256-128-64-32-1) and seeded ensembles of it.

Input standardisation and target scaling live inside the saved Keras model, so a loaded
model maps raw features to target units with nothing else to restore. Early stopping watches
a validation split; the test split is never seen here.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
from keras import layers

from discovery.errors import ConfigError
from discovery.model_files import load_keras_model, save_without_optimizer

HIDDEN = (256, 128, 64, 32)


def build_mlp(n_features: int, x_mean: np.ndarray, x_var: np.ndarray, y_mean: float, y_std: float,
              hidden: tuple[int, ...] = HIDDEN, dropout: float = 0.0,
              embedding: np.ndarray | None = None) -> keras.Model:
    """Raw features -> standardise -> Dense ReLU stack -> 1 -> rescale to target units.

    With ``embedding`` (T [85, d]) the inputs are element amounts and a trainable linear layer
    initialised to T computes equation 5 first: T is fine-tuned end to end. ``x_mean`` and
    ``x_var`` then describe the embedded features at initialisation.
    """
    x = keras.Input((n_features,), name="features")
    h = x
    if embedding is not None:
        h = layers.Dense(embedding.shape[1], use_bias=False, name="atom_embedding_finetuned",
                         kernel_initializer=keras.initializers.Constant(np.asarray(embedding)))(h)
    h = layers.Normalization(mean=x_mean, variance=np.maximum(x_var, 1e-12), name="standardise")(h)
    for units in hidden:
        h = layers.Dense(units, activation="relu")(h)
        if dropout:
            h = layers.Dropout(dropout)(h)
    h = layers.Dense(1)(h)
    y = layers.Rescaling(scale=float(y_std), offset=float(y_mean), name="to_target_units")(h)
    return keras.Model(x, y, name="mlp")


@dataclass
class MLPRegressor:
    """scikit-learn-style fit/predict around :func:`build_mlp`."""

    hidden: tuple[int, ...] = HIDDEN
    learning_rate: float = 1e-3
    batch_size: int = 256
    max_epochs: int = 300
    patience: int = 20
    lr_patience: int = 0  # >0: halve the learning rate after this many epochs without val gain
    dropout: float = 0.0
    loss: str = "mae"
    seed: int = 0
    embedding: np.ndarray | None = field(default=None, repr=False)  # fine-tune T from here
    verbose: int = 0
    history_: dict = field(default_factory=dict, repr=False)

    def fit(self, x: np.ndarray, y: np.ndarray, x_val: np.ndarray, y_val: np.ndarray) -> MLPRegressor:
        """Train with early stopping on (x_val, y_val); keeps the best validation weights."""
        x, y = _check_xy(x, y)
        x_val, y_val = _check_xy(x_val, y_val)
        keras.utils.set_random_seed(self.seed)
        feats = x if self.embedding is None else x @ np.asarray(self.embedding, dtype=np.float32)
        self.model_ = build_mlp(x.shape[1], feats.mean(0), feats.var(0), float(y.mean()),
                                float(y.std() or 1.0), tuple(self.hidden), self.dropout, self.embedding)
        return fit_keras(self, self.model_, x, y, x_val, y_val, min_lr=self.learning_rate / 256)

    def predict(self, x: np.ndarray, batch_size: int = 65536) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        return predict_model(self.model_, x, batch_size)


def fit_keras(reg, model: keras.Model, x: np.ndarray, y: np.ndarray, x_val: np.ndarray, y_val: np.ndarray,
              min_lr: float, callbacks: list | tuple = (), lr_patience: int | None = None):
    """Compile and fit ``model`` for a regressor ``reg`` (its learning_rate, loss, patience,
    lr_patience unless given, max_epochs, batch_size, verbose): Adam, early stopping on the
    validation loss with the best weights kept, the learning rate halved on a plateau when
    ``lr_patience``.
    Sets ``reg.model_``, ``history_``, ``fit_seconds_`` and ``best_epoch_``; returns ``reg``."""
    model.compile(optimizer=keras.optimizers.Adam(reg.learning_rate), loss=reg.loss)
    cbs = [keras.callbacks.EarlyStopping(patience=reg.patience, restore_best_weights=True), *callbacks]
    lr_patience = reg.lr_patience if lr_patience is None else lr_patience
    if lr_patience:
        cbs.append(keras.callbacks.ReduceLROnPlateau(factor=0.5, patience=lr_patience, min_lr=min_lr))
    t0 = time.perf_counter()
    hist = model.fit(x, y, validation_data=(x_val, y_val), epochs=reg.max_epochs, batch_size=reg.batch_size,
                     callbacks=cbs, verbose=reg.verbose, shuffle=True)
    reg.model_ = model
    reg.history_ = {k: [float(v) for v in vals] for k, vals in hist.history.items()}
    reg.fit_seconds_ = time.perf_counter() - t0
    reg.best_epoch_ = int(np.argmin(reg.history_["val_loss"])) + 1 if reg.history_.get("val_loss") else 0
    return reg


# Attention batches are padded to a multiple of this many rows: a multiple of 8 keeps a row's
# result independent of its batch (below), and 64 keeps the number of distinct shapes (each
# costs TensorFlow/oneDNN cached kernels) small: peak RSS 1,358 MB at 8 and 1,190 MB at 64 over
# 150 batches of 300-1,500 rows (1,303 MB with 8 tokens for all, unpadded;
# research/probe_token_batches.py rss).
_PAD_ROWS = 64
_TRACING = threading.Lock()  # the token graph is traced with the layers' count set to its input


def predict_model(model: keras.Model, x: np.ndarray, batch_size: int = 65536) -> np.ndarray:
    """Batched inference without Keras' predict overhead."""
    out = [np.asarray(model(x[i : i + batch_size], training=False)).reshape(-1)
           for i in range(0, len(x), batch_size)]
    return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)


def _check_xy(x, y):
    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y, dtype=np.float32).ravel()
    if x.ndim != 2 or len(x) != len(y):
        raise ConfigError(f"features must be [N, F] with one target per row; got {x.shape} and {y.shape}")
    if len(x) == 0:
        raise ConfigError("no training rows")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ConfigError("features or targets contain NaN or infinity")
    return x, y


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """MAE, RMSE and R² (equations 7-9)."""
    y_true = np.asarray(y_true, dtype=np.float64)
    err = np.asarray(y_pred, dtype=np.float64) - y_true
    ss_tot = float(((y_true - y_true.mean()) ** 2).sum())
    return {"mae": float(np.abs(err).mean()), "rmse": float(np.sqrt((err**2).mean())),
            "r2": float(1 - (err**2).sum() / ss_tot) if ss_tot > 0 else float("nan")}


class Ensemble:
    """K MLPs with seeds seed..seed+K-1; predicts the mean and the standard deviation."""

    def __init__(self, members: list[keras.Model], weights_dtype: str = "float32"):
        if not members:
            raise ConfigError("an ensemble needs at least one member")
        self.members = members
        self.weights_dtype = weights_dtype  # how save() stores the weights (float16: half the bytes)
        self._forward: dict = {}  # None (as built) or "tokens" (count as input) -> graph, traced once
        # element-token layers (the attention model) and their built token counts, read once:
        # tracing sets the counts for a moment (under _TRACING), so they are never read later
        self._token_layers = [layer for m in members for layer in m.layers
                              if getattr(layer, "element_tokens", False)]
        self._token_counts = [layer.max_tokens for layer in self._token_layers]

    @classmethod
    def fit(cls, x, y, x_val, y_val, k: int = 5, seed: int = 0, **mlp_kwargs) -> Ensemble:
        regs = [MLPRegressor(seed=seed + i, **mlp_kwargs).fit(x, y, x_val, y_val) for i in range(k)]
        ens = cls([r.model_ for r in regs])
        ens.fit_info = {"best_epochs": [r.best_epoch_ for r in regs],
                        "fit_seconds": sum(r.fit_seconds_ for r in regs)}
        return ens

    def predict(self, x: np.ndarray, batch_size: int = 65536) -> tuple[np.ndarray, np.ndarray]:
        """(mean, std) over the members. Members over element tokens (the attention model) see
        each row with as many tokens as it has elements, rows grouped by that count: the
        formation-energy stack ran 2.2x faster than with 8 tokens for all on OQMD's mostly
        ternary rows in 50,000-row batches (1.3x in 1,000-row ones; research/
        probe_token_batches.py speed), the same predictions to ~1e-7, and a row's prediction
        still does not depend on the rows beside it."""
        x = np.asarray(x, dtype=np.float32)
        if len(x) == 0:
            return np.zeros(0, np.float32), np.zeros(0, np.float32)
        if not self._token_layers:
            preds = self._predict_with(None, x, batch_size)
        else:
            need = np.clip((x > 0).sum(axis=1), 1, max(self._token_counts))
            preds = np.empty((len(self.members), len(x)), dtype=np.float32)
            for k in np.unique(need):
                rows = np.flatnonzero(need == k)
                preds[:, rows] = self._predict_with(int(k), x[rows], batch_size)
        return preds.mean(0), preds.std(0)

    def _predict_with(self, tokens: int | None, x: np.ndarray, batch_size: int) -> np.ndarray:
        """Member predictions [K, N] with ``tokens`` element tokens per row (None: as built)."""
        key = None if tokens is None else "tokens"
        if key not in self._forward:
            self._forward[key] = self._trace(x.shape[1], tokens is not None)
        fn = self._forward[key]
        extra = () if tokens is None else (np.int32(tokens),)
        out = []
        for i in range(0, len(x), batch_size):
            chunk = x[i:i + batch_size]
            # With fewer than 8 tokens a row's result changed in the last bit with the number of
            # rows beside it (54 of 15,239 ternary rows over 41 batchings: probe ... batching); padding
            # each batch to a multiple of 8 rows, as 8 tokens always gives, removed that.
            # _PAD_ROWS (64) is such a multiple.
            pad = (-len(chunk)) % _PAD_ROWS if tokens else 0
            if pad:
                chunk = np.concatenate([chunk, np.repeat(chunk[:1], pad, axis=0)])
            out.append(np.asarray(fn(chunk, *extra))[:, : len(chunk) - pad])
        return np.concatenate(out, axis=1)

    def _trace(self, n_features: int, token_count: bool):
        """One graph for all members: ~1.5x faster than calling them eagerly (measured on the
        band-gap ensemble, 1,500-row chunks), which matters on the run's hot path. A None batch
        dimension: one trace serves every chunk size. With ``token_count`` the element-token
        layers read the number of tokens from the graph's second input, so one graph serves
        every count: it gave bit-identical predictions to a graph per count (20,000 rows of
        the width-256 formation-energy part) and costs one trace instead of up to eight (0.45 s
        each; 31 traces were 14 s of a run's ranking). The layers hold the count only while
        the graph is traced (under _TRACING), and are reset."""
        import tensorflow as tf

        def forward(t, k=None):
            if k is not None:
                for layer in self._token_layers:
                    layer.max_tokens = k
            return tf.stack([tf.reshape(m(t, training=False), [-1]) for m in self.members])

        spec = [tf.TensorSpec([None, n_features], tf.float32)]
        if token_count:
            spec.append(tf.TensorSpec([], tf.int32))
        fn = tf.function(forward, input_signature=spec)
        with _TRACING:
            try:
                fn.get_concrete_function()
            finally:
                for layer, built in zip(self._token_layers, self._token_counts, strict=True):
                    layer.max_tokens = built
        return fn

    def save(self, directory: Path) -> None:
        """Members as ``.keras`` without optimizer state (a third of the size; inference only),
        weights stored as ``weights_dtype``."""
        directory.mkdir(parents=True, exist_ok=True)
        for i, m in enumerate(self.members):
            save_without_optimizer(m, directory / f"member_{i}.keras", self.weights_dtype)

    @classmethod
    def load(cls, directory: Path, k: int, weights_dtype: str = "float32") -> Ensemble:
        return cls([load_keras_model(directory / f"member_{i}.keras") for i in range(k)], weights_dtype)


@dataclass
class GBTRegressor:
    """scikit-learn's histogram gradient-boosted trees with the number of trees chosen on the
    given validation split (scikit-learn's own early stopping would hold out training rows):
    grown 100 trees at a time, stopped 300 trees after the best validation MAE, then refit at
    the best count. The Magpie + trees baseline of the model comparisons."""

    learning_rate: float = 0.1
    max_trees: int = 30000  # a cap only: trees stop 300 after the best validation MAE
    loss: str = "absolute_error"
    seed: int = 0
    threads: int | None = 1  # OpenMP threads; spin-waiting threads on a busy machine run ~40x slower

    def fit(self, x: np.ndarray, y: np.ndarray, x_val: np.ndarray, y_val: np.ndarray) -> GBTRegressor:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=self.threads, user_api="openmp"):
            return self._fit(x, y, x_val, y_val)

    def _fit(self, x: np.ndarray, y: np.ndarray, x_val: np.ndarray, y_val: np.ndarray) -> GBTRegressor:
        from sklearn.ensemble import HistGradientBoostingRegressor

        x, y = _check_xy(x, y)
        x_val, y_val = _check_xy(x_val, y_val)
        gbt = HistGradientBoostingRegressor(max_iter=0, learning_rate=self.learning_rate,
                                            early_stopping=False, warm_start=True, loss=self.loss,
                                            random_state=self.seed)
        best, best_mae = 0, np.inf
        while gbt.max_iter < self.max_trees and gbt.max_iter - best < 300:
            gbt.set_params(max_iter=gbt.max_iter + 100).fit(x, y)
            mae = float(np.abs(gbt.predict(x_val) - y_val).mean())
            if mae < best_mae - 1e-6:
                best, best_mae = gbt.max_iter, mae
        self.model_ = gbt.set_params(warm_start=False, max_iter=best).fit(x, y)
        self.best_trees_, self.val_mae_ = best, best_mae
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=self.threads, user_api="openmp"):
            return self.model_.predict(np.asarray(x, dtype=np.float32))
