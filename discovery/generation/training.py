"""Training compositions from any list or CSV: parsed, integer counts checked, skips counted.

Every trainable generator learns from unique reduced integer count vectors [N, 85]. Rows
that do not parse or do not fit the codec (fractional amounts, counts above 8) are skipped,
and how many and why is kept, so the caller can report it; nothing is dropped silently.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from discovery.elements import N_ELEMENTS
from discovery.encoding import (
    REASON_BAD_AMOUNT,
    ParseFailure,
    _integer_count_failures,
    composition_keys,
    first_occurrences,
    parse_formulas,
    reduce_counts,
)
from discovery.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass
class TrainingSet:
    """Unique reduced count vectors and what was skipped on the way (reason -> rows)."""

    counts: np.ndarray  # int8 [N, 85]
    rows: int  # input rows
    skipped: dict[str, int] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)  # a few skipped rows, with reasons
    duplicates: int = 0

    def summary(self) -> str:
        """One line: rows in, compositions kept, skipped rows by reason."""
        line = f"{self.rows:,} rows -> {len(self.counts):,} unique compositions"
        if self.duplicates:
            line += f" ({self.duplicates:,} duplicate rows merged)"
        if self.skipped:
            line += f"; skipped {sum(self.skipped.values()):,} rows (" + ", ".join(
                f"{k}: {v:,}" for k, v in sorted(self.skipped.items())) + ")"
        return line


def training_set(data: object) -> TrainingSet:
    """A TrainingSet from formulas (strings or Compositions) or integer count vectors [N, 85]."""
    if isinstance(data, TrainingSet):
        return data
    if isinstance(data, np.ndarray) and data.ndim == 2:
        if data.shape[1] != N_ELEMENTS:
            raise ConfigError(f"count vectors must have shape [N, {N_ELEMENTS}], got {data.shape}")
        amts = data.astype(np.float64)
        valid = ~(amts < 0).any(axis=1)
        failures = [ParseFailure(int(i), f"row {i}", REASON_BAD_AMOUNT, "negative count")
                    for i in np.flatnonzero(~valid)]
    else:
        batch = parse_formulas(data)
        amts, valid, failures = batch.amounts, batch.valid.copy(), list(batch.failures)
    labels = None if isinstance(data, np.ndarray) else [str(x) for x in data]
    # fractional amounts fail; integer ones are reduced (Ca12O12 -> CaO) before the 1..8 check
    amts = np.where(valid[:, None], amts, 0.0)
    rounded = np.rint(amts)
    nonint = np.any(np.abs(amts - rounded) > 1e-6, axis=1)
    reduced = reduce_counts(np.where(nonint[:, None], 0, rounded).astype(np.int64)).astype(np.float64)
    checked = np.where(nonint[:, None], amts, reduced)
    bad = [f for f in _integer_count_failures(checked, labels) if valid[f.index]]
    for f in bad:
        valid[f.index] = False
    failures = sorted(failures + bad, key=lambda f: f.index)
    counts = reduced[valid].astype(np.int64)
    nonempty = (counts > 0).any(axis=1)
    empty = int((~nonempty).sum())
    counts = counts[nonempty]
    unique = counts[first_occurrences(composition_keys(counts))].astype(np.int8)
    skipped: dict[str, int] = {}
    for f in failures:
        skipped[f.reason] = skipped.get(f.reason, 0) + 1
    if empty:
        skipped["no element"] = empty
    out = TrainingSet(unique, len(amts), skipped, [f.message() for f in failures[:5]],
                      len(counts) - len(unique))
    if skipped:
        log.warning("training data: %s", out.summary())
    return out


def training_counts(data: object) -> np.ndarray:
    """Just the unique count vectors of :func:`training_set`."""
    return training_set(data).counts


def counts_sha256(counts: np.ndarray) -> str:
    """SHA-256 of int8 count vectors [N, 85] (row order matters): the training-data hash."""
    return hashlib.sha256(np.ascontiguousarray(counts, dtype=np.int8).tobytes()).hexdigest()


def read_training_csv(path: Path | str, column: str = "formula") -> TrainingSet:
    """A CSV with a formula column as a TrainingSet ('NaN' is sodium nitride, not missing)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"training file {str(p)!r} not found")
    try:
        df = pd.read_csv(p, keep_default_na=False, dtype=str)
    except Exception as exc:
        raise ConfigError(f"training file {str(p)!r} is not a readable CSV ({type(exc).__name__}: {exc})") \
            from None
    if column not in df.columns:
        raise ConfigError(f"training file {str(p)!r} has no {column!r} column (columns: "
                          f"{', '.join(map(str, df.columns))})")
    ts = training_set(df[column].tolist())
    if len(ts.counts) == 0:
        raise ConfigError(f"training file {str(p)!r}: no usable composition ({ts.summary()})")
    return ts
