"""Stacks of property models: a weighted average of component models chosen on validation data.

A stack directory holds ``card.json`` with a ``stack`` entry (component names and weights) and
one sub-directory per component, each a complete property model directory with its own card
(its training, data and validation metrics), so every part stays inspectable and reloadable.

The weights are non-negative, sum to 1 and minimise the validation MAE on a grid
(:func:`stack_weights`); the test split never enters. The standard deviation is that of the
mixture: each component's own spread plus the spread of the component means around the stack's
mean, so disagreement between families counts as uncertainty.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np

from discovery.errors import ConfigError, ModelFileError
from discovery.model_files import write_card


def stack_weights(preds: list[np.ndarray], y: np.ndarray, step: float = 0.05) -> tuple[np.ndarray, float]:
    """Non-negative weights summing to 1 (a grid of ``step``) of the average of ``preds`` with the
    lowest MAE on y: the stack is chosen on the validation split, never on test."""
    n = round(1 / step)
    if not preds or not np.isclose(n * step, 1.0):
        raise ConfigError(f"stack_weights needs predictions and a step dividing 1; "
                          f"got {len(preds)} and {step}")
    if not all(np.isfinite(p).all() for p in preds):
        raise ConfigError("stack_weights: a component predicts NaN or infinity on the validation rows")
    best, best_mae = None, np.inf
    for combo in itertools.product(range(n + 1), repeat=len(preds) - 1):
        if sum(combo) > n:
            continue
        w = np.array([*combo, n - sum(combo)]) / n
        mae = float(np.abs(sum(wi * p for wi, p in zip(w, preds, strict=True)) - y).mean())
        if mae < best_mae:
            best, best_mae = w, mae
    return best, best_mae


_WRITTEN_BY_SAVE = ("property", "unit", "featurizer", "members", "weights_dtype")


class StackedPropertyModel:
    """Component property models (``name -> PropertyModel``) averaged with fixed weights; the
    same interface as ``PropertyModel`` (``predict_amounts``, ``outside_domain``, ``card``)."""

    def __init__(self, name: str, unit: str, components: dict, weights: dict[str, float],
                 card: dict | None = None):
        if set(components) != set(weights):
            raise ConfigError(f"stack weights name {sorted(weights)}, components {sorted(components)}")
        w = np.array([weights[c] for c in components], dtype=np.float64)
        if (w < 0).any() or not np.isclose(w.sum(), 1.0):
            raise ConfigError(f"stack weights must be non-negative and sum to 1, got {weights}")
        self.name, self.unit, self.components = name, unit, components
        self.weights = {c: float(weights[c]) for c in components}
        self.card = card or {}
        self.applicability = self.reported_where = None  # set from the card by load()

    def predict_amounts(self, amounts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(mean, std) for amount or count vectors [N, 85]; zero-weight components are skipped."""
        parts = [(w, *self.components[c].predict_amounts(amounts)) for c, w in self.weights.items() if w > 0]
        mean = sum(w * m.astype(np.float64) for w, m, _ in parts)
        var = sum(w * (s.astype(np.float64) ** 2 + (m - mean) ** 2) for w, m, s in parts)
        return mean.astype(np.float32), np.sqrt(var).astype(np.float32)

    def outside_domain(self, amounts: np.ndarray) -> np.ndarray:
        """Rows beyond the training data of any weighted component."""
        masks = [self.components[c].outside_domain(amounts) for c, w in self.weights.items() if w > 0]
        return np.logical_or.reduce(masks)

    def save(self, directory: Path, card: dict) -> None:
        """Each component under ``directory/<name>/`` with its own card, then the stack's card."""
        directory = Path(directory)
        for c, model in self.components.items():
            own = {k: v for k, v in model.card.items() if k not in _WRITTEN_BY_SAVE}
            model.save(directory / c, own)
        write_card(directory, {"property": self.name, "unit": self.unit,
                               "stack": {"components": list(self.components),
                                         "weights": [self.weights[c] for c in self.components]},
                               **card})

    @classmethod
    def load(cls, directory: Path | str, load_part: Callable[[Path], object]) -> StackedPropertyModel:
        """The stack saved in ``directory``, each part read by ``load_part`` (a part is a whole
        model directory: ``PropertyModel.load``, which calls this for a stack's card and then
        attaches the stack's applicability domain)."""
        d = Path(directory)
        try:
            card = json.loads((d / "card.json").read_text())
            names, weights = card["stack"]["components"], card["stack"]["weights"]
            prop, unit = card["property"], card["unit"]
            if len(names) != len(weights):
                raise ValueError("components and weights differ in length")
            bad = [c for c in names if not isinstance(c, str) or not re.fullmatch(r"[A-Za-z0-9_-]+", c)]
            if bad:
                raise ValueError(f"component name {bad[0]!r} is not a plain directory name")
        except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(f"stack card {str(d / 'card.json')!r} is malformed ({exc})") from None
        components = {c: load_part(d / c) for c in names}
        other = [(c, m) for c, m in components.items() if (m.name, m.unit) != (prop, unit)]
        if other:
            c, m = other[0]
            raise ModelFileError(f"stack {str(d)!r}: part {c!r} predicts {m.name!r} in {m.unit!r}, "
                                 f"not {prop!r} in {unit!r}")
        return cls(prop, unit, components, dict(zip(names, weights, strict=True)), card)
