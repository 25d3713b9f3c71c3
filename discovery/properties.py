"""Shipped property models by name (bandgap, formation_energy, tc) and ``discovery.predict``.

A property model directory holds ``card.json`` (property, unit, featurizer, data, splits,
metrics), the atom embedding ``T.npy`` its features were computed with (so retraining the
GAN never silently changes a regressor's inputs) and the ensemble members ``member_i.keras``.
When T is fine-tuned end to end, the featurizer is the element-amount vector and each member
holds its own tuned copy of T as its first layer; there is no ``T.npy`` then, and the card's
``embedding`` entry names the starting T and its sha256.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from discovery.errors import ConfigError
from discovery.featurizers import (
    FEATURIZERS,
    CompositionFeaturizer,
    GanEmbedding,
    as_amounts,
    make_featurizer,
)
from discovery.gan.io import ModelFileError
from discovery.regressors import Ensemble, write_card
from discovery.targets import MODEL_PROPERTIES

MODELS_DIR = Path(__file__).resolve().parent / "models"
PROPERTY_UNITS = MODEL_PROPERTIES  # name -> unit, one source of truth with the target language


class PropertyModel:
    """A featurizer plus an ensemble, predicting one property in its unit."""

    def __init__(self, name: str, unit: str, featurizer: CompositionFeaturizer, ensemble: Ensemble,
                 card: dict | None = None):
        self.name, self.unit = name, unit
        self.featurizer, self.ensemble = featurizer, ensemble
        self.card = card or {}

    def predict_amounts(self, amounts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(mean, std) for amount or count vectors [N, 85]."""
        return self.ensemble.predict(self.featurizer.transform_amounts(amounts))

    def save(self, directory: Path, card: dict) -> None:
        self.ensemble.save(directory)
        name = next(k for k, cls in FEATURIZERS.items() if isinstance(self.featurizer, cls))
        feat = {"name": name}
        if hasattr(self.featurizer, "amounts"):
            feat["amounts"] = self.featurizer.amounts
        if isinstance(self.featurizer, GanEmbedding):
            np.save(directory / "T.npy", self.featurizer.embedding)
        write_card(directory, {"property": self.name, "unit": self.unit, "featurizer": feat,
                               "members": len(self.ensemble.members), **card})

    @classmethod
    def load(cls, directory: Path | str) -> PropertyModel:
        import discovery.attention  # noqa: F401  (registers the attention model's Keras layers)

        d = Path(directory)
        card_file = d / "card.json"
        if not card_file.is_file():
            raise ModelFileError(f"model card {str(card_file)!r} not found")
        try:
            card = json.loads(card_file.read_text())
            feat = dict(card["featurizer"])
            name = feat.pop("name")
            k = int(card["members"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(f"model card {str(card_file)!r} is malformed ({exc})") from None
        if name == "gan_embedding":
            featurizer: CompositionFeaturizer = GanEmbedding(d / "T.npy", **feat)
        else:
            featurizer = make_featurizer(name, **feat)
        return cls(card["property"], card["unit"], featurizer, Ensemble.load(d, k), card)


_CACHE: dict[str, PropertyModel] = {}


def load_property_model(name: str) -> PropertyModel:
    """A shipped model by property name (cached)."""
    if name not in PROPERTY_UNITS:
        raise ConfigError(f"unknown property {name!r}; shipped: {', '.join(PROPERTY_UNITS)}")
    if name not in _CACHE:
        _CACHE[name] = PropertyModel.load(MODELS_DIR / name)
    return _CACHE[name]


def predict_amounts(amounts: np.ndarray, properties: Sequence[str]) -> pd.DataFrame:
    """Mean and ``<property>_std`` columns for amount vectors [N, 85]."""
    cols: dict[str, np.ndarray] = {}
    for p in properties:
        mean, std = load_property_model(p).predict_amounts(amounts)
        cols[p], cols[f"{p}_std"] = mean, std
    return pd.DataFrame(cols)


def predict(formulas: Iterable[object],
            properties: Sequence[str] = ("bandgap", "formation_energy", "tc")) -> pd.DataFrame:
    """Predicted properties (ensemble mean) and ``<property>_std`` for formulas or Compositions.

    Raises CompositionError naming the first formula that does not parse.
    """
    items = list(formulas) if not isinstance(formulas, str) else [formulas]
    a = as_amounts(items)
    df = predict_amounts(a, properties)
    df.insert(0, "formula", [str(x) for x in items])
    return df
