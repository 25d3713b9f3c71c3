"""Shipped property models by name (bandgap, formation_energy, tc) and ``discovery.predict``.

A property model directory holds ``card.json`` (property, unit, featurizer, data, splits,
metrics), the atom embedding ``T.npy`` its features were computed with (so retraining the
GAN never silently changes a regressor's inputs) and the ensemble members ``member_i.keras``.
When T is fine-tuned end to end, the featurizer is the element-amount vector and each member
holds its own tuned copy of T as its first layer; there is no ``T.npy`` then, and the card's
``embedding`` entry names the starting T and its sha256. A card with a ``stack`` entry is a
:class:`discovery.stacking.StackedPropertyModel` of such directories.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from discovery.encoding import parse_formulas
from discovery.errors import ConfigError, ModelFileError
from discovery.featurizers import (
    FEATURIZERS,
    CompositionFeaturizer,
    GanEmbedding,
    make_featurizer,
)
from discovery.model_files import MODELS_DIR, WEIGHTS_DTYPES, write_card
from discovery.regressors import Ensemble
from discovery.targets import MODEL_PROPERTIES

PROPERTY_UNITS = MODEL_PROPERTIES  # name -> unit, one source of truth with the target language


class PropertyModel:
    """A featurizer plus an ensemble, predicting one property in its unit."""

    def __init__(self, name: str, unit: str, featurizer: CompositionFeaturizer, ensemble: Ensemble,
                 card: dict | None = None):
        self.name, self.unit = name, unit
        self.featurizer, self.ensemble = featurizer, ensemble
        self.card = card or {}
        self.applicability = self.reported_where = None  # set from the card by load()

    def outside_domain(self, amounts: np.ndarray) -> np.ndarray:
        """Rows beyond the training formulas (an element amount, the atom count or the
        number of elements larger than any there); all False when the card records none."""
        dom = self.card.get("domain")
        a = np.asarray(amounts, dtype=np.float64)
        if not dom:
            return np.zeros(len(a), dtype=bool)
        return ((a.max(axis=1, initial=0) > dom["max_amount"]) | (a.sum(axis=1) > dom["max_atoms"])
                | ((a > 0).sum(axis=1) > dom["max_elements"]))

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
        dtype = self.ensemble.weights_dtype
        stored = {"weights_dtype": dtype} if dtype != "float32" else {}
        write_card(directory, {"property": self.name, "unit": self.unit, "featurizer": feat,
                               "members": len(self.ensemble.members), **stored, **card})

    @classmethod
    def load(cls, directory: Path | str):
        """The model saved in ``directory``: a PropertyModel, or a StackedPropertyModel when the
        card describes a stack."""
        import discovery.attention  # noqa: F401  (registers the attention model's Keras layers)

        d = Path(directory)
        card_file = d / "card.json"
        if not card_file.is_file():
            raise ModelFileError(f"model card {str(card_file)!r} not found")
        try:
            card = json.loads(card_file.read_text())
            stacked = isinstance(card, dict) and "stack" in card
        except json.JSONDecodeError as exc:
            raise ModelFileError(f"model card {str(card_file)!r} is malformed ({exc})") from None
        if stacked:  # outside the card's try: a part's own error names the part
            from discovery.stacking import StackedPropertyModel

            stack = StackedPropertyModel.load(d, load_part=cls.load)
            attach_domain(stack, d)
            return stack
        try:
            feat = dict(card["featurizer"])
            name = feat.pop("name")
            k = int(card["members"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(f"model card {str(card_file)!r} is malformed ({exc})") from None
        if name == "gan_embedding":
            featurizer: CompositionFeaturizer = GanEmbedding(d / "T.npy", **feat)
        else:
            featurizer = make_featurizer(name, **feat)
        stored = card.get("weights_dtype", "float32")  # a re-save stores the weights alike
        if stored not in WEIGHTS_DTYPES:
            raise ModelFileError(f"model card {str(card_file)!r}: weights_dtype {stored!r} "
                                 f"is not one of {', '.join(WEIGHTS_DTYPES)}")
        model = cls(card["property"], card["unit"], featurizer, Ensemble.load(d, k, stored), card)
        attach_domain(model, d)
        return model


@dataclass
class DomainPrediction:
    """One property for N compositions: the mean (NaN where the property is not reported), the
    calibrated σ, the ensemble's raw spread, whether each row is in the model's applicability
    domain, and why not (or why the value is empty)."""

    mean: np.ndarray
    sigma: np.ndarray
    raw_std: np.ndarray
    in_domain: np.ndarray
    note: np.ndarray
    seconds: float = 0.0  # spent on the domain and the report rule (not the model), for run summaries


def attach_domain(model, directory: Path) -> None:
    """Load the card's applicability domain and report rule (if any) onto ``model``."""
    from discovery.domain import ApplicabilityDomain
    from discovery.domain_classifier import DomainClassifier

    card = model.card
    model.applicability = (ApplicabilityDomain.load(directory, card["applicability"])
                           if "applicability" in card else None)
    model.reported_where = None
    if "reported_where" in card:
        entry = card["reported_where"]
        try:
            feat = dict(entry["featurizer"])
            if feat.pop("name", "gan_embedding") != "gan_embedding":
                raise ValueError("only a gan_embedding featurizer is supported")
            featurizer = GanEmbedding(Path(directory) / feat.pop("T"), **feat)
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(f"reported_where in {str(Path(directory) / 'card.json')!r} is malformed "
                                 f"({exc})") from None
        model.reported_where = DomainClassifier.load(directory, entry, featurizer)


def beyond_training(model, amounts: np.ndarray) -> np.ndarray:
    """Rows outside the model's training compositions (the composition rule of its domain)."""
    dom = getattr(model, "applicability", None)
    return dom.composition_note(amounts) != "" if dom is not None else model.outside_domain(amounts)


def predict_with_domain(model, amounts: np.ndarray) -> DomainPrediction:
    """Mean, calibrated σ and domain flags of a loaded property model for amount vectors [N, 85].

    Without a fitted applicability domain in the card, σ is the raw spread and only the training
    formulas' extent (``outside_domain``) flags rows. With a report rule (``reported_where``:
    Tc), the model runs only on the rows the rule reports: elsewhere nothing of it is used (mean,
    σ and spread are NaN, the note says why), and in a run's candidates that is most rows (Tc:
    146 of the demo's 38,712 reported)."""
    a = np.asarray(amounts)
    t0 = time.perf_counter()
    rule = getattr(model, "reported_where", None)
    reported = rule.predict(a) if rule is not None and len(a) else None
    seconds = time.perf_counter() - t0
    rows = np.flatnonzero(reported) if reported is not None else None
    sub = a if rows is None else a[rows]
    mean, std, in_domain, sigma, note, domain_seconds = _predict_rows(model, sub)
    t0 = time.perf_counter()
    if rows is not None:  # the rest: not reported, the model not run
        why = f"not reported: unlike the {model.name} training compositions"
        mean, std, sigma = (_spread(v, rows, len(a), np.nan) for v in (mean, std, sigma))
        in_domain = _spread(in_domain, rows, len(a), False)
        note = _spread(note, rows, len(a), why)
    return DomainPrediction(mean, sigma, std, in_domain, note,
                            seconds + domain_seconds + time.perf_counter() - t0)


def _predict_rows(model, a: np.ndarray) -> tuple[np.ndarray, ...]:
    """(mean, raw spread, in-domain flags, calibrated σ, notes, seconds judging the domain) of
    ``model`` on every row of ``a``."""
    if len(a) == 0:  # e.g. no row reported: a stack's featurizers need not see an empty batch
        empty = np.zeros(0, np.float32)
        return empty, empty, np.zeros(0, bool), empty, np.zeros(0, object), 0.0
    mean, std = model.predict_amounts(a)
    mean, std = mean.astype(np.float32), std.astype(np.float32)
    t0 = time.perf_counter()
    dom = getattr(model, "applicability", None)
    if dom is not None:
        res = dom.assess(a, std)
        return mean, std, res.in_domain, res.sigma, res.note, time.perf_counter() - t0
    in_domain = ~model.outside_domain(a)
    why = "larger amounts, more atoms or more elements than any training formula"
    note = np.where(in_domain, "", why).astype(object)
    return mean, std, in_domain, std.copy(), note, time.perf_counter() - t0


def _spread(values: np.ndarray, rows: np.ndarray, n: int, fill) -> np.ndarray:
    """An array of n ``fill`` (``values``' dtype) with ``values`` at ``rows``."""
    out = np.full(n, fill, dtype=values.dtype)
    out[rows] = values
    return out


_CACHE: dict[str, object] = {}


def load_property_model(name: str):
    """A shipped model by property name (cached): a PropertyModel or a StackedPropertyModel."""
    if name not in PROPERTY_UNITS:
        raise ConfigError(f"unknown property {name!r}; shipped: {', '.join(PROPERTY_UNITS)}")
    if name not in _CACHE:
        _CACHE[name] = PropertyModel.load(MODELS_DIR / name)
    return _CACHE[name]


def predict_amounts(amounts: np.ndarray, properties: Sequence[str]) -> pd.DataFrame:
    """For amount vectors [N, 85], per property: the mean (empty where the model does not report
    it), ``<property>_std`` (σ calibrated on validation data) and ``<property>_in_domain``; and
    ``domain_note``: why a row is outside a model's domain or a value is empty."""
    cols: dict[str, np.ndarray] = {}
    notes = []
    for p in properties:
        pred = predict_with_domain(load_property_model(p), amounts)
        cols[p], cols[f"{p}_std"], cols[f"{p}_in_domain"] = pred.mean, pred.sigma, pred.in_domain
        notes.append((p, pred.note))
    cols["domain_note"] = np.array(["; ".join(f"{p}: {n[i]}" for p, n in notes if n[i])
                                    for i in range(len(amounts))], dtype=object)
    return pd.DataFrame(cols)


class PredictionWarning(UserWarning):
    """Rows ``predict`` skipped, or predicted outside the models' training data."""


def training_domain(amounts: np.ndarray) -> dict:
    """What training formulas span, for the model card: the largest amount of one element,
    the most atoms and the most elements in a formula (as written, not reduced)."""
    a = np.asarray(amounts, dtype=np.float64)
    return {"max_amount": float(a.max()), "max_atoms": float(a.sum(axis=1).max()),
            "max_elements": int((a > 0).sum(axis=1).max()), "rows": len(a)}


def predict(formulas: Iterable[object],
            properties: Sequence[str] = ("bandgap", "formation_energy", "tc"),
            errors: str = "raise") -> pd.DataFrame:
    """Predicted properties (ensemble mean) and ``<property>_std`` for formulas or Compositions.

    ``errors="raise"`` raises CompositionError naming the first formula that does not parse;
    ``errors="skip"`` predicts the others, keeps their input positions as the index and
    reports the skipped rows in a PredictionWarning and in ``df.attrs["skipped"]`` (count by
    reason, as the data loaders do) and ``df.attrs["skipped_rows"]`` ((index, formula, reason)).
    Each property has ``<property>_in_domain`` (inside the model's applicability domain,
    :mod:`discovery.domain`) and a σ calibrated on validation data; ``domain_note`` says why a
    row is out of domain or a value empty (Tc is reported for superconductor-like compositions
    only). ``df.attrs["outside_domain"]`` maps property -> formulas out of domain. Formulas
    beyond a model's training compositions (an unseen element or element pair, e.g. ``NaCl100``'s
    amounts) are predicted with one PredictionWarning naming them (``df.attrs["outside_training"]``).
    """
    if errors not in ("raise", "skip"):
        raise ConfigError(f"errors must be 'raise' or 'skip', got {errors!r}")
    items = list(formulas) if not isinstance(formulas, str) else [formulas]
    batch = parse_formulas(items)
    if errors == "raise":
        batch.raise_first()
    rows = np.flatnonzero(batch.valid)
    amounts = batch.amounts[rows]
    df = predict_amounts(amounts, properties)
    df.index = rows
    df.insert(0, "formula", [str(items[i]) for i in rows])
    df.attrs["skipped"] = batch.failure_counts()
    df.attrs["skipped_rows"] = [(f.index, f.formula, f.detail) for f in batch.failures]
    if batch.failures:
        shown = "; ".join(f.message() for f in batch.failures[:5])
        more = f"; and {len(batch.failures) - 5} more" if len(batch.failures) > 5 else ""
        warnings.warn(f"predict skipped {len(batch.failures)} of {len(items)} formulas: {shown}{more}",
                      PredictionWarning, stacklevel=2)
    formulas_ = df["formula"].to_numpy()
    df.attrs["outside_domain"] = {p: formulas_[~df[f"{p}_in_domain"].to_numpy()].tolist() for p in properties}
    # beyond the training compositions (an unseen element or pair, larger amounts) where a value
    # is reported: worth a warning
    outside = {}
    for p in properties:
        rows = beyond_training(load_property_model(p), amounts) & df[p].notna().to_numpy()
        if rows.any():
            outside[p] = formulas_[rows].tolist()
    df.attrs["outside_training"] = outside
    if outside:
        names = sorted({f for fs in outside.values() for f in fs})
        shown = ", ".join(repr(f) for f in names[:5])
        shown += f" and {len(names) - 5} more" if len(names) > 5 else ""
        warnings.warn(f"{shown} lie beyond the training compositions of the {', '.join(outside)} model(s) "
                      "(an element or element pair no training formula holds, or larger amounts; see "
                      "domain_note): out of domain, their numbers are extrapolations",
                      PredictionWarning, stacklevel=2)
    return df
