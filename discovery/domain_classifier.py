"""Where a property means something at all: a classifier of compositions like its training set.

The Tc model was trained on superconductors only (SuperCon has no Tc = 0 rows), so it predicts a
Tc for anything. :class:`DomainClassifier` separates the model's training compositions (positives)
from compositions where the property does not apply (for Tc: Materials Project compositions with a
DFT band gap, insulators), on the same features as the model; the threshold keeps a chosen share
of the positives of the validation split. Below it the property is left empty, with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
from keras import layers

from discovery.errors import ConfigError
from discovery.featurizers import CompositionFeaturizer

CLASSIFIER_FILE = "reported_where.keras"


def build_classifier(n_features: int, x_mean: np.ndarray, x_var: np.ndarray,
                     hidden: tuple[int, ...] = (128, 64)) -> keras.Model:
    """Features -> standardise -> ReLU stack -> probability of 'like the training set'."""
    x = keras.Input((n_features,), name="features")
    h = layers.Normalization(mean=x_mean, variance=np.maximum(x_var, 1e-12), name="standardise")(x)
    for units in hidden:
        h = layers.Dense(units, activation="relu")(h)
    y = layers.Dense(1, activation="sigmoid", name="probability")(h)
    return keras.Model(x, y, name="domain_classifier")


@dataclass
class DomainClassifier:
    """scikit-learn-style ``fit`` / ``predict_proba`` / ``predict`` over amount vectors [N, 85]."""

    featurizer: CompositionFeaturizer
    keep: float = 0.975  # share of validation positives above the threshold
    epochs: int = 200
    patience: int = 15
    seed: int = 0
    threshold: float = 0.5
    model: keras.Model | None = None
    info: dict = field(default_factory=dict)

    def fit(self, pos: np.ndarray, neg: np.ndarray, pos_val: np.ndarray,
            neg_val: np.ndarray) -> DomainClassifier:
        """Train on positives and negatives (class-balanced), stop on the validation loss, and set
        the threshold that keeps ``keep`` of the validation positives."""
        if min(len(pos), len(neg), len(pos_val), len(neg_val)) == 0:
            raise ConfigError("a domain classifier needs positive and negative rows in both splits")
        keras.utils.set_random_seed(self.seed)
        f = self.featurizer.transform_amounts
        x = np.concatenate([f(pos), f(neg)]).astype(np.float32)
        y = np.concatenate([np.ones(len(pos)), np.zeros(len(neg))]).astype(np.float32)
        xv = np.concatenate([f(pos_val), f(neg_val)]).astype(np.float32)
        yv = np.concatenate([np.ones(len(pos_val)), np.zeros(len(neg_val))]).astype(np.float32)
        w = {1: len(y) / (2 * len(pos)), 0: len(y) / (2 * len(neg))}
        sw = np.where(y == 1, w[1], w[0]).astype(np.float32)
        swv = np.where(yv == 1, w[1], w[0]).astype(np.float32)
        self.model = build_classifier(x.shape[1], x.mean(0), x.var(0))
        self.model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy")
        stop = keras.callbacks.EarlyStopping(patience=self.patience, restore_best_weights=True)
        hist = self.model.fit(x, y, sample_weight=sw, validation_data=(xv, yv, swv), epochs=self.epochs,
                              batch_size=256, callbacks=[stop], verbose=0, shuffle=True)
        p_pos, p_neg = self.predict_proba(pos_val), self.predict_proba(neg_val)
        self.threshold = float(np.quantile(p_pos, 1 - self.keep))
        self.info = {"train": {"positives": len(pos), "negatives": len(neg)},
                     "val": {"positives": len(pos_val), "negatives": len(neg_val),
                             "positives_kept": float((p_pos >= self.threshold).mean()),
                             "negatives_kept": float((p_neg >= self.threshold).mean())},
                     "epochs": len(hist.history["loss"]), "keep": self.keep, "seed": self.seed}
        return self

    def predict_proba(self, amounts: np.ndarray) -> np.ndarray:
        if self.model is None:
            raise ConfigError("the domain classifier is not fitted")
        x = self.featurizer.transform_amounts(np.asarray(amounts)).astype(np.float32)
        if len(x) == 0:
            return np.zeros(0, np.float32)
        return np.asarray(self.model(x, training=False)).reshape(-1)

    def predict(self, amounts: np.ndarray) -> np.ndarray:
        """True where the composition is like the training set (the property is reported)."""
        return self.predict_proba(amounts) >= self.threshold

    def save(self, directory: Path) -> dict:
        """The network as ``reported_where.keras``; returns the card entry."""
        from discovery.model_files import save_without_optimizer

        save_without_optimizer(self.model, Path(directory) / CLASSIFIER_FILE)
        return {"file": CLASSIFIER_FILE, "threshold": self.threshold, **self.info}

    @classmethod
    def load(cls, directory: Path, entry: dict, featurizer: CompositionFeaturizer) -> DomainClassifier:
        from discovery.model_files import ModelFileError, load_keras_model

        try:
            model = load_keras_model(Path(directory) / str(entry["file"]))
            return cls(featurizer, threshold=float(entry["threshold"]), model=model,
                       info={k: v for k, v in entry.items() if k not in ("file", "threshold")})
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(f"domain classifier entry in {str(Path(directory) / 'card.json')!r} "
                                 f"is malformed ({exc})") from None

