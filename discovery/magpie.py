"""Vectorised Magpie features, equal to matminer's ``ElementProperty.from_preset("magpie")``.

132 features: six statistics (minimum, maximum, range, mean, avg_dev, mode) of each of 22
Magpie elemental properties, weighted by each element's fraction of the formula. The
elemental table (``resources/magpie_elements.csv``) is matminer's own data, written by
``pipelines/resources/build_magpie_table.py``; matminer itself is not needed here.

Semantics follow matminer's ``PropertyStats`` with weights = element amounts:

* minimum / maximum / range: over the elements present (weights ignored); NaN if any present
  element has no value.
* mean: ``np.average(values, weights=amounts)``; avg_dev: the weighted mean of
  ``|value - mean|``. Both propagate NaN.
* mode: the smallest value among the elements whose amount ``np.isclose`` (default
  tolerances) the largest amount of the row, on the amounts as given (as matminer does on
  the composition's amounts); NaN if any of those tied elements has no value.

A row with no elements (all zero) gives NaN for every feature.
"""

from __future__ import annotations

import csv
from functools import cache
from importlib import resources

import numpy as np

from discovery.elements import ELEMENTS, N_ELEMENTS

MAGPIE_PROPERTIES: tuple[str, ...] = (
    "Number", "MendeleevNumber", "AtomicWeight", "MeltingT", "Column", "Row", "CovalentRadius",
    "Electronegativity", "NsValence", "NpValence", "NdValence", "NfValence", "NValence",
    "NsUnfilled", "NpUnfilled", "NdUnfilled", "NfUnfilled", "NUnfilled", "GSvolume_pa",
    "GSbandgap", "GSmagmom", "SpaceGroupNumber",
)  # fmt: skip
MAGPIE_STATS: tuple[str, ...] = ("minimum", "maximum", "range", "mean", "avg_dev", "mode")
N_MAGPIE_FEATURES: int = len(MAGPIE_PROPERTIES) * len(MAGPIE_STATS)

_TABLE = "magpie_elements.csv"
# pymatgen's Composition.amount_tolerance: smaller amounts are dropped before matminer sees them.
_AMOUNT_TOL = 1e-8


def magpie_labels() -> list[str]:
    """Feature names in output column order, as matminer's ``feature_labels()``."""
    return [f"MagpieData {stat} {prop}" for prop in MAGPIE_PROPERTIES for stat in MAGPIE_STATS]


@cache
def magpie_table() -> np.ndarray:
    """The elemental table [85, 22] (ELEMENTS x MAGPIE_PROPERTIES), read once; read-only."""
    with resources.files("discovery.resources").joinpath(_TABLE).open("r", newline="") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    if tuple(header[1:]) != MAGPIE_PROPERTIES or tuple(r[0] for r in body) != ELEMENTS:
        raise ValueError(f"{_TABLE}: header or element order does not match MAGPIE_PROPERTIES/ELEMENTS")
    table = np.array([[float(v) for v in r[1:]] for r in body], dtype=np.float64)
    table.setflags(write=False)
    return table


def _compact(amounts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Present elements per row, left-packed: column index, amount, mask — each [N, K]."""
    present = amounts >= _AMOUNT_TOL
    k = max(1, int(present.sum(axis=1).max(initial=0)))
    # Stable sort puts present columns first, in matrix order.
    idx = np.argsort(~present, axis=1, kind="stable")[:, :k]
    mask = np.take_along_axis(present, idx, axis=1)
    w = np.where(mask, np.take_along_axis(amounts, idx, axis=1), 0.0)
    return idx, w, mask


def magpie_features(amounts: np.ndarray) -> np.ndarray:
    """Magpie features [N, 132] (columns as ``magpie_labels()``) from element amounts [N, 85].

    Amounts need not sum to one (any scale; fractional allowed) but must be finite and
    non-negative; amounts below 1e-8 count as absent, as in pymatgen. All-zero rows give NaN.
    """
    a = np.asarray(amounts, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] != N_ELEMENTS:
        raise ValueError(f"amounts must be [N, {N_ELEMENTS}], got {a.shape}")
    if not np.isfinite(a).all() or (a < 0).any():
        raise ValueError("amounts must be finite and non-negative")
    table = magpie_table()
    n = a.shape[0]
    out = np.full((n, N_MAGPIE_FEATURES), np.nan)
    if n == 0:
        return out

    idx, w, mask = _compact(a)
    total = w.sum(axis=1, keepdims=True)
    ok = total[:, 0] > 0
    wmax = w.max(axis=1, keepdims=True)
    # PropertyStats.mode: weights np.isclose to the max weight (default rtol/atol), on the amounts.
    top = mask & np.isclose(w, wmax)

    with np.errstate(invalid="ignore", divide="ignore"):
        for p in range(len(MAGPIE_PROPERTIES)):
            v = table[idx, p]  # [N, K]; NaN stays NaN where an element present has no value
            lo = np.where(mask, v, np.inf).min(axis=1)
            hi = np.where(mask, v, -np.inf).max(axis=1)
            vm = np.where(mask, v, 0.0)
            # np.average(values, weights=amounts): sum(w * v) / sum(w).
            mean = (w * vm).sum(axis=1) / total[:, 0]
            avg_dev = (w * np.where(mask, np.abs(v - mean[:, None]), 0.0)).sum(axis=1) / total[:, 0]
            mode = np.where(top, v, np.inf).min(axis=1)
            stats = np.stack([lo, hi, hi - lo, mean, avg_dev, mode], axis=1)
            out[:, p * len(MAGPIE_STATS):(p + 1) * len(MAGPIE_STATS)] = np.where(ok[:, None], stats, np.nan)
    return out
