"""Composition featurizers with scikit-learn's fit/transform and matminer's featurize_dataframe.

All take formula strings, pymatgen Compositions or amount vectors [N, 85] (fractional amounts
allowed) and are vectorised over the batch.

- :class:`GanEmbedding`: equation 5, C = sum_e amount_e * T_e with the critic's atom
  embedding T. ``amounts="counts"`` (the paper) uses the raw amounts, so Fe4O6 and Fe2O3
  differ (twice the vector); ``"fractions"`` normalises each row to sum 1 first, so only the
  reduced composition matters (which is what a per-atom property depends on).
- :class:`OneHot`: the element-amount vector itself (same ``amounts`` choice).
- :class:`Magpie`: Ward et al.'s 132 element-property statistics, equal to matminer's
  ``ElementProperty.from_preset("magpie")``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from discovery.elements import ELEMENTS, N_ELEMENTS
from discovery.encoding import amounts, parse_formulas
from discovery.errors import ConfigError, ModelFileError
from discovery.model_files import SHIPPED_EMBEDDING

AmountMode = Literal["counts", "fractions"]


def as_amounts(x: object) -> np.ndarray:
    """Amount vectors [N, 85] from formulas, Compositions, a Series, or an array already so."""
    if isinstance(x, np.ndarray) and x.ndim == 2 and x.shape[1] == N_ELEMENTS and x.dtype != object:
        return x.astype(np.float64, copy=False)
    if isinstance(x, pd.Series):
        x = x.tolist()
    return amounts(x)  # raises CompositionError naming the first bad formula


def _scale(a: np.ndarray, mode: AmountMode) -> np.ndarray:
    if mode == "counts":
        return a
    if mode == "fractions":
        tot = a.sum(axis=1, keepdims=True)
        return np.divide(a, tot, out=np.zeros_like(a), where=tot > 0)
    raise ConfigError(f"unknown amounts mode {mode!r}; use 'counts' or 'fractions'")


class CompositionFeaturizer(TransformerMixin, BaseEstimator):
    """Base: subclasses implement ``_features(amounts)`` and ``feature_labels()``."""

    def fit(self, X: object = None, y: object = None) -> CompositionFeaturizer:
        return self

    def transform(self, X: object) -> np.ndarray:
        return self._features(as_amounts(X))

    def transform_amounts(self, a: np.ndarray) -> np.ndarray:
        """The hot path: amount (or count) vectors [N, 85] straight in."""
        return self._features(np.asarray(a, dtype=np.float64))

    def _features(self, a: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def feature_labels(self) -> list[str]:  # pragma: no cover - abstract
        raise NotImplementedError

    def featurize_dataframe(self, df: pd.DataFrame, col: str = "formula",
                            ignore_errors: bool = False) -> pd.DataFrame:
        """``df`` with one column per feature appended (matminer's convention).

        With ``ignore_errors`` rows whose formula does not parse get NaN features and the
        reason in a ``featurize_error`` column; otherwise the first bad formula raises.
        """
        if col not in df.columns:
            raise KeyError(f"no column {col!r} in the DataFrame (columns: {list(df.columns)})")
        batch = parse_formulas(df[col].tolist())
        if not ignore_errors:
            batch.raise_first()
        feats = np.full((len(df), len(self.feature_labels())), np.nan)
        if batch.valid.any():
            feats[batch.valid] = self._features(batch.amounts[batch.valid])
        out = pd.concat([df.reset_index(drop=True),
                         pd.DataFrame(feats, columns=self.feature_labels())], axis=1)
        if ignore_errors:
            errors = np.full(len(df), None, dtype=object)
            for f in batch.failures:
                errors[f.index] = f.detail
            out["featurize_error"] = errors
        out.index = df.index
        return out


class OneHot(CompositionFeaturizer):
    """The element-amount vector (paper's One-hot)."""

    def __init__(self, amounts: AmountMode = "counts"):
        self.amounts = amounts

    def _features(self, a: np.ndarray) -> np.ndarray:
        return _scale(a, self.amounts)

    def feature_labels(self) -> list[str]:
        return [f"amount_{el}" for el in ELEMENTS]


class GanEmbedding(CompositionFeaturizer):
    """Equation 5 with a trained atom embedding T [85, d] (default: the shipped critic's)."""

    def __init__(self, t: np.ndarray | str | Path | None = None, amounts: AmountMode = "counts"):
        self.t = t
        self.amounts = amounts

    @property
    def embedding(self) -> np.ndarray:
        if not hasattr(self, "_t"):
            self._t = load_embedding(self.t)
        return self._t

    def _features(self, a: np.ndarray) -> np.ndarray:
        return batch_invariant_matmul(_scale(a, self.amounts), self.embedding.astype(np.float64))

    def feature_labels(self) -> list[str]:
        return [f"gan_embedding_{i}" for i in range(self.embedding.shape[1])]


class Magpie(CompositionFeaturizer):
    """Magpie element-property statistics (132 features), matching matminer's preset."""

    def _features(self, a: np.ndarray) -> np.ndarray:
        from discovery.magpie import magpie_features

        return magpie_features(a)

    def feature_labels(self) -> list[str]:
        from discovery.magpie import magpie_labels

        return magpie_labels()


def batch_invariant_matmul(a: np.ndarray, t: np.ndarray) -> np.ndarray:
    """``a @ t`` for sparse rows (a composition has a few elements), each row summed over its
    nonzero columns in ascending order, so a row's result does not depend on the rows beside it.
    BLAS picks its blocking by batch size, which changed features in the last bit (and a run's
    Tc in its 4th printed decimal) between a local and a Dask run of the same partitions."""
    rows, cols = np.nonzero(a)  # row-major: each row's columns ascending
    per_row = np.bincount(rows, minlength=a.shape[0])
    slot = np.arange(len(rows)) - (np.cumsum(per_row) - per_row)[rows]
    width = int(per_row.max(initial=0))
    weights = np.zeros((a.shape[0], width), dtype=a.dtype)
    index = np.full((a.shape[0], width), t.shape[0], dtype=np.intp)  # empty slots: a zero row
    weights[rows, slot], index[rows, slot] = a[rows, cols], cols
    padded = np.concatenate([t, np.zeros((1, t.shape[1]), dtype=t.dtype)])
    out = np.zeros((a.shape[0], t.shape[1]), dtype=np.result_type(a, t))
    for j in range(width):  # a row's empty slots add 0 * 0 = 0 exactly: no change
        out += weights[:, j, None] * padded[index[:, j]]
    return out


def load_embedding(t: np.ndarray | str | Path | None = None) -> np.ndarray:
    """T [85, d] from an array, an ``.npy`` path, or (None) the shipped GAN's ``T.npy``."""
    if isinstance(t, np.ndarray):
        arr = t
    else:
        path = Path(t) if t is not None else SHIPPED_EMBEDDING
        if not path.is_file():
            raise ModelFileError(f"atom embedding {str(path)!r} not found")
        try:
            arr = np.load(path, allow_pickle=False)
        except Exception as exc:
            raise ModelFileError(f"atom embedding {str(path)!r} is corrupt ({exc})") from None
    if arr.ndim != 2 or arr.shape[0] != N_ELEMENTS:
        raise ModelFileError(f"atom embedding must have shape [85, d], got {arr.shape}")
    return np.asarray(arr, dtype=np.float32)


FEATURIZERS = {"gan_embedding": GanEmbedding, "magpie": Magpie, "onehot": OneHot}


def make_featurizer(name: str, **kwargs) -> CompositionFeaturizer:
    """A featurizer by name: gan_embedding, magpie or onehot."""
    if name not in FEATURIZERS:
        raise ConfigError(f"unknown featurizer {name!r}; use one of {', '.join(FEATURIZERS)}")
    return FEATURIZERS[name](**kwargs)

