"""The composition codec: formulas <-> amount vectors <-> the GAN's 85x8 one-hot matrices.

Layout: a matrix ``X[n, e, k]`` is 1 when element ``ELEMENTS[e]`` occurs ``k + 1`` times
in composition ``n``; absent elements are all-zero columns. Only integer counts 1..8 fit.

Decoding generator output (probabilities in [0, 1]) to integer counts follows one of two
documented rules (see :func:`decode_counts`); formulas are written with elements ordered
by electronegativity as pymatgen does (``Fe2O3``), amounts of 1 omitted.

Batch functions never drop rows silently: :func:`parse_formulas` returns a mask of the rows
that parsed and a list of failures with the offending formula and the reason.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from discovery.elements import ELEMENTS, FORMULA_ORDER, INDEX, MAX_COUNT, N_ELEMENTS
from discovery.errors import CompositionError

__all__ = [
    "CompositionError",
    "ParseFailure",
    "ParsedBatch",
    "parse_formulas",
    "amounts",
    "counts_to_matrix",
    "encode",
    "decode_counts",
    "decode",
    "counts_to_formulas",
    "reduce_counts",
    "composition_keys",
    "reduced_formulas",
    "count_patterns",
]

DecodeRule = Literal["argmax", "sample", "expected"]
DEFAULT_DECODE_RULE: DecodeRule = "argmax"


@dataclass(frozen=True)
class ParseFailure:
    index: int
    formula: str
    reason: str  # one of the REASON_* categories, see `detail` for specifics
    detail: str

    def message(self) -> str:
        return f"row {self.index}: {self.formula!r}: {self.detail}"


REASON_EMPTY = "empty formula"
REASON_MALFORMED = "malformed formula"
REASON_UNKNOWN_ELEMENT = "unknown element"
REASON_OUTSIDE_VOCAB = "element outside the 85-element vocabulary"
REASON_BAD_AMOUNT = "negative amount"
REASON_NOT_FINITE = "non-finite amount"
REASON_NOT_INTEGER = "non-integer amount"
REASON_TOO_MANY = "amount above 8"


@dataclass
class ParsedBatch:
    """Amounts for a batch of formulas; rows that failed are all-zero and `valid` False."""

    amounts: np.ndarray  # [N, 85] float64
    valid: np.ndarray  # [N] bool
    failures: list[ParseFailure] = field(default_factory=list)

    def failure_counts(self) -> dict[str, int]:
        """How many rows failed, by reason."""
        return dict(Counter(f.reason for f in self.failures))

    def raise_first(self) -> None:
        """Raise CompositionError for the first failed row, if any."""
        if self.failures:
            f = self.failures[0]
            more = f" (and {len(self.failures) - 1} more)" if len(self.failures) > 1 else ""
            raise CompositionError(f"{f.formula!r}: {f.detail}{more}")


_AMOUNT = r"(?:\d+(?:\.\d*)?|\.\d+)"
_SIMPLE_FORMULA = re.compile(rf"^(?:[A-Z][a-z]?{_AMOUNT}?)+$")
_TOKEN = re.compile(rf"([A-Z][a-z]?)({_AMOUNT})?")


def _all_symbols() -> frozenset[str]:
    from pymatgen.core.periodic_table import Element

    return frozenset(e.symbol for e in Element)


_KNOWN_SYMBOLS: frozenset[str] | None = None


def _is_real_element(symbol: str) -> bool:
    global _KNOWN_SYMBOLS
    if _KNOWN_SYMBOLS is None:
        _KNOWN_SYMBOLS = _all_symbols()
    return symbol in _KNOWN_SYMBOLS


def _element_amounts(formula: str) -> dict[str, float]:
    """Element -> amount for one formula string; raises CompositionError with a reason."""
    text = formula.strip()
    if not text:
        raise _Fail(REASON_EMPTY, "empty formula")
    if _SIMPLE_FORMULA.match(text):
        out: dict[str, float] = {}
        for sym, amt in _TOKEN.findall(text):
            out[sym] = out.get(sym, 0.0) + (float(amt) if amt else 1.0)
        return out
    # Parentheses, hydrates, spaces: defer to pymatgen's parser.
    from pymatgen.core import Composition

    try:
        comp = Composition(text)
    except Exception as exc:  # pymatgen raises ValueError/KeyError/CompositionError variants
        bad = re.findall(r"[A-Z][a-z]?", text)
        unknown = [s for s in bad if not _is_real_element(s)]
        if unknown:
            raise _Fail(REASON_UNKNOWN_ELEMENT, f"unknown element {unknown[0]!r}") from exc
        raise _Fail(REASON_MALFORMED, "malformed formula") from exc
    return {str(el): float(a) for el, a in comp.get_el_amt_dict().items()}


class _Fail(Exception):
    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def _fill_row(row: np.ndarray, amts: dict[str, float]) -> None:
    # An explicit zero amount (SuperCon writes ``Bi0``) means the element is absent.
    amts = {sym: amt for sym, amt in amts.items() if amt != 0}
    if not amts:
        raise _Fail(REASON_EMPTY, "empty formula")
    for sym, amt in amts.items():
        j = INDEX.get(sym)
        if j is None:
            if _is_real_element(sym):
                raise _Fail(REASON_OUTSIDE_VOCAB, f"element {sym!r} is outside the 85-element vocabulary")
            raise _Fail(REASON_UNKNOWN_ELEMENT, f"unknown element {sym!r}")
        if not np.isfinite(amt):  # pymatgen reads 'Cl1e400' as an infinite amount
            raise _Fail(REASON_NOT_FINITE, f"amount {amt:g} of {sym} is not a finite number")
        if not amt > 0:
            raise _Fail(REASON_BAD_AMOUNT, f"negative amount {amt:g} of {sym}")
        row[j] = amt
    with np.errstate(over="ignore"):
        total = row.sum()
    if not np.isfinite(total):  # each finite, the total not ('Na1e308Cl1e308')
        raise _Fail(REASON_NOT_FINITE, "amounts too large: their total is not a finite number")


def _as_list(formulas: object) -> list:
    if isinstance(formulas, str):
        return [formulas]
    try:
        from pymatgen.core import Composition

        if isinstance(formulas, Composition):
            return [formulas]
    except ImportError:  # pragma: no cover
        pass
    return list(formulas)  # type: ignore[arg-type]


def parse_formulas(formulas: Iterable[object]) -> ParsedBatch:
    """Parse formula strings or pymatgen Compositions into element amounts [N, 85].

    Fractional amounts are kept. Rows that fail are zero, flagged in ``valid`` and listed in
    ``failures`` with the reason; nothing is dropped.
    """
    items = _as_list(formulas)
    out = np.zeros((len(items), N_ELEMENTS), dtype=np.float64)
    valid = np.ones(len(items), dtype=bool)
    failures: list[ParseFailure] = []
    for i, item in enumerate(items):
        try:
            if isinstance(item, str):
                amts = _element_amounts(item)
            elif hasattr(item, "get_el_amt_dict"):
                amts = {str(k): float(v) for k, v in item.get_el_amt_dict().items()}
            else:
                raise _Fail(REASON_MALFORMED, f"not a formula string or Composition: {item!r}")
            _fill_row(out[i], amts)
        except _Fail as f:
            out[i] = 0.0
            valid[i] = False
            failures.append(ParseFailure(i, str(item), f.reason, f.detail))
    return ParsedBatch(out, valid, failures)


def amounts(formulas: Iterable[object]) -> np.ndarray:
    """Element amounts [N, 85] (fractional kept); raises CompositionError on any bad row."""
    items = _as_list(formulas)
    if not items:
        raise CompositionError("no formulas given (empty input)")
    batch = parse_formulas(items)
    batch.raise_first()
    return batch.amounts


def _integer_count_failures(amts: np.ndarray, labels: Sequence[str] | None) -> list[ParseFailure]:
    rounded = np.rint(amts)
    nonint = np.any(np.abs(amts - rounded) > 1e-6, axis=1)
    too_many = np.any(rounded > MAX_COUNT, axis=1) & ~nonint
    failures = []
    for i in np.flatnonzero(nonint | too_many):
        label = labels[i] if labels is not None else counts_to_formulas(amts[i : i + 1])[0]
        if nonint[i]:
            j = int(np.argmax(np.abs(amts[i] - rounded[i])))
            failures.append(
                ParseFailure(int(i), label, REASON_NOT_INTEGER,
                             f"non-integer amount {amts[i, j]:g} of {ELEMENTS[j]} does not fit "
                             "the 85x8 matrix (integer counts 1..8 only)")
            )
        else:
            j = int(np.argmax(amts[i]))
            failures.append(
                ParseFailure(int(i), label, REASON_TOO_MANY,
                             f"{ELEMENTS[j]} count {int(rounded[i, j])} exceeds the maximum of "
                             f"{MAX_COUNT} that the 85x8 matrix holds")
            )
    return failures


def counts_to_matrix(counts: np.ndarray, labels: Sequence[str] | None = None) -> np.ndarray:
    """Integer count vectors [N, 85] -> one-hot matrices [N, 85, 8] (uint8).

    Raises CompositionError naming the composition for a non-integer amount or a count > 8.
    """
    counts = np.asarray(counts)
    if counts.ndim != 2 or counts.shape[1] != N_ELEMENTS:
        raise CompositionError(f"count vectors must have shape [N, {N_ELEMENTS}], got {counts.shape}")
    failures = _integer_count_failures(counts.astype(np.float64), labels)
    if failures:
        ParsedBatch(np.zeros_like(counts, dtype=float), np.zeros(len(counts), bool), failures).raise_first()
    c = np.rint(counts).astype(np.int64)
    mat = np.zeros((len(c), N_ELEMENTS, MAX_COUNT), dtype=np.uint8)
    n, e = np.nonzero(c)
    mat[n, e, c[n, e] - 1] = 1
    return mat


def encode(formulas: Iterable[object]) -> np.ndarray:
    """Formula strings or Compositions -> one-hot matrices [N, 85, 8] (uint8).

    Raises CompositionError naming the first offending formula (unknown element, malformed
    string, fractional amount, count above 8, empty input).
    """
    items = _as_list(formulas)
    amts = amounts(items)
    return counts_to_matrix(amts, labels=[str(x) for x in items])


def decode_counts(matrices: np.ndarray, rule: DecodeRule = DEFAULT_DECODE_RULE,
                  rng: np.random.Generator | None = None) -> np.ndarray:
    """Generator output or one-hot matrices [N, 85, 8] -> integer counts [N, 85] (int8).

    Rules (identical on exact 0/1 matrices):
    - ``"argmax"``: an element is present when its largest slot probability is >= 0.5;
      its count is that slot's index + 1 (MatGAN's rule). For slots read as sigmoid(s_k),
      this is the most likely class of a categorical over {absent, 1..8} with logits
      (0, s_1..s_8).
    - ``"sample"``: draw from that categorical (inverse CDF, one uniform from ``rng`` per
      element), the distribution a generator trained with straight-through Gumbel-softmax
      actually models.
    - ``"expected"``: count = round(sum_k k * p_k), present when that sum is >= 0.5; suits
      a generator whose slots stay soft.
    """
    x = np.asarray(matrices)
    if x.ndim == 4 and x.shape[-1] == 1:
        x = x[..., 0]
    if x.ndim != 3 or x.shape[1:] != (N_ELEMENTS, MAX_COUNT):
        raise CompositionError(f"matrices must have shape [N, {N_ELEMENTS}, {MAX_COUNT}], got {x.shape}")
    if rule == "argmax":
        # Only slots >= 0.5 matter and they are few: work on those, not on all N*85*8.
        n, e, k = np.nonzero(x >= 0.5)
        counts = np.zeros(x.shape[:2], dtype=np.int8)
        if len(n):
            cell = n * N_ELEMENTS + e
            order = np.lexsort((-x[n, e, k], cell))  # per cell, the largest slot first
            first = np.r_[True, cell[order][1:] != cell[order][:-1]]
            pick = order[first]
            counts[n[pick], e[pick]] = k[pick] + 1
        return counts
    if rule == "sample":
        if rng is None:
            raise CompositionError("decoding rule 'sample' needs a numpy Generator (rng)")
        p = np.clip(x.astype(np.float64), 0.0, 1.0 - 1e-12)
        odds = p / (1.0 - p)  # class weights relative to 'absent' (weight 1)
        # One uniform per (row, element), so a seeded stream is the same in any batch size.
        u = rng.random(x.shape[:2], dtype=np.float32)
        return sample_categorical(odds, u)
    if rule == "expected":
        slots = np.arange(1, MAX_COUNT + 1, dtype=np.float32)
        e = x.astype(np.float32, copy=False) @ slots
        return np.where(e >= 0.5, np.clip(np.rint(e), 1, MAX_COUNT), 0).astype(np.int8)
    raise CompositionError(f"unknown decoding rule {rule!r}; use 'argmax', 'sample' or 'expected'")


def sample_categorical(weights: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Counts [N, 85] drawn from categoricals over {absent, 1..8} by inverse CDF.

    ``weights`` [N, 85, 8] are the count classes' weights relative to 'absent' (weight 1),
    i.e. exp(logit); ``u`` [N, 85] uniforms in [0, 1). Class k is picked when u * total
    falls in its slice of the cumulative weights.
    """
    cum = 1.0 + np.cumsum(weights, axis=-1)  # cumulative weight up to class k = 1..8
    thr = u * cum[..., -1]
    k = (cum <= thr[..., None]).sum(axis=-1) + (thr >= 1.0)
    return np.minimum(k, MAX_COUNT).astype(np.int8)


_PERM = np.array(FORMULA_ORDER, dtype=np.int64)
_SYMBOLS_PERM = np.array([ELEMENTS[i] for i in FORMULA_ORDER], dtype=object)


def _amount_str(a: float) -> str:
    if a == 1:
        return ""
    if float(a).is_integer():
        return str(int(a))
    return f"{a:.6g}"


def counts_to_formulas(counts: np.ndarray) -> list[str]:
    """Count (or amount) vectors [N, 85] -> formula strings, '' for an empty row.

    Elements are ordered by electronegativity as pymatgen writes them; amounts of 1 omitted.
    """
    c = np.asarray(counts)
    if c.ndim != 2 or c.shape[1] != N_ELEMENTS:
        raise CompositionError(f"count vectors must have shape [N, {N_ELEMENTS}], got {c.shape}")
    c = c[:, _PERM]
    rows, cols = np.nonzero(c)
    vals = c[rows, cols]
    if np.issubdtype(c.dtype, np.integer) or np.all(vals == np.rint(vals)):
        ivals = np.rint(vals).astype(np.int64)
        top = int(ivals.max()) if len(ivals) else 1
        amount_strs = np.array([""] + [_amount_str(k) for k in range(1, top + 1)], dtype=object)
        toks = _SYMBOLS_PERM[cols] + amount_strs[ivals]
    else:
        toks = _SYMBOLS_PERM[cols] + np.array([_amount_str(float(v)) for v in vals], dtype=object)
    out = np.full(len(c), "", dtype=object)
    if len(toks):
        starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
        out[rows[starts]] = np.add.reduceat(toks, starts)
    return out.tolist()


def reduce_counts(counts: np.ndarray) -> np.ndarray:
    """Divide each integer count vector by the gcd of its counts (Fe4O6 -> Fe2O3)."""
    c = np.asarray(counts)
    if not np.issubdtype(c.dtype, np.integer):
        r = np.rint(c)
        if np.any(np.abs(c - r) > 1e-6):
            raise CompositionError("reduced-composition keys need integer amounts")
        c = r
    c = c.astype(np.int64)
    g = np.gcd.reduce(c, axis=1)
    g[g == 0] = 1
    return c // g[:, None]


# Fixed odd 64-bit multipliers: a composition's key is a linear hash of its reduced counts.
_HASH_MULT = (np.random.default_rng(20240101).integers(0, 2**63, N_ELEMENTS, dtype=np.uint64)
              * np.uint64(2) + np.uint64(1))


def composition_keys(counts: np.ndarray) -> np.ndarray:
    """Canonical reduced-composition keys (uint64) for integer count vectors [N, 85].

    Fe2O3 and Fe4O6 get the same key; an empty row gets key 0.
    """
    c = np.asarray(counts)
    if not np.issubdtype(c.dtype, np.integer):
        c = reduce_counts(c)  # validates integrality
    rows, cols = np.nonzero(c)
    keys = np.zeros(len(c), dtype=np.uint64)
    if len(rows) == 0:
        return keys
    vals = c[rows, cols].astype(np.int64)
    starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
    g = np.gcd.reduceat(vals, starts)
    reduced = (vals // np.repeat(g, np.diff(np.r_[starts, len(rows)]))).astype(np.uint64)
    with np.errstate(over="ignore"):
        keys[rows[starts]] = np.add.reduceat(reduced * _HASH_MULT[cols], starts)
    return keys


def first_occurrences(keys: np.ndarray) -> np.ndarray:
    """Indices of each distinct key's first occurrence, in stream order (deduplication that
    keeps the order things were drawn or listed in)."""
    _, first = np.unique(keys, return_index=True)
    return np.sort(first)


def count_patterns(counts: np.ndarray) -> np.ndarray:
    """Each row's nonzero counts, high to low, as a label: Fe2O3 -> '3-2', Cu2MnAl -> '2-1-1'.

    The training set is 96% three such patterns (2-1-1, 1-1-1, 1-1-1-1), so their shares say
    quickly whether a generator learned the stoichiometries; an empty row gives ''.
    """
    c = -np.sort(-np.asarray(counts, dtype=np.int64), axis=1)
    c = c[:, : max(int((c > 0).sum(1).max(initial=0)), 1)]
    return np.array(["-".join(map(str, row[row > 0])) for row in c], dtype=object)


def reduced_formulas(counts: np.ndarray) -> list[str]:
    """Reduced formula strings (Fe4O6 -> Fe2O3) for integer count vectors [N, 85]."""
    return counts_to_formulas(reduce_counts(counts))


def decode(matrices: np.ndarray, rule: DecodeRule = DEFAULT_DECODE_RULE,
           rng: np.random.Generator | None = None) -> list[str]:
    """Matrices [N, 85, 8] of 0/1 or probabilities -> formula strings ('' when empty)."""
    return counts_to_formulas(decode_counts(matrices, rule, rng))
