"""Target expressions such as ``"1 < bandgap < 3 and formation_energy < 0"`` for ``discover run --target``.

A tiny tokenizer and parser (no ``eval``): user text never reaches the interpreter, and every
mistake becomes a one-line :class:`TargetError` that names the bad piece, the valid properties and
the accepted syntax, so the CLI can print it as is.

Grammar (whitespace anywhere, ``and`` case-insensitive)::

    target     := condition (("and" | ",") condition)*
    condition  := PROP OP NUMBER | NUMBER OP PROP | NUMBER OP PROP OP NUMBER
    OP         := "<" | "<=" | ">" | ">="      (no "==": predictions are continuous)

A chained range must point one way (``1<bandgap<3`` or ``3>bandgap>1``) and be non-empty, and
so must the conditions on one property taken together (``bandgap>3 and bandgap<1`` is refused).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from discovery.errors import TargetError

MODEL_PROPERTIES: dict[str, str] = {"bandgap": "eV", "formation_energy": "eV/atom", "tc": "K"}
"""Properties a shipped model predicts, with their units."""
DERIVED_PROPERTIES: dict[str, str] = {"e_hull": "eV/atom"}
"""Properties computed from predictions: ``e_hull``, predicted formation energy minus the convex
hull of known phases at the same composition (``discovery.stability``)."""
PROPERTIES: dict[str, str] = {**MODEL_PROPERTIES, **DERIVED_PROPERTIES}
"""Everything a target or sort may name, with its unit."""

TARGET_SYNTAX = "PROP>X, PROP<=X, LO<PROP<HI, joined by 'and' or ','"
SORT_SYNTAX = "PROP (descending), PROP:desc, PROP:asc, -PROP (ascending)"

_OPERATORS = ("<", "<=", ">", ">=")
_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}
_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<num>[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>[<>=!]+)
  | (?P<comma>,)
    """,
    re.VERBOSE,
)


_Fail = Callable[[str], TargetError]  # builds the error for one problem, with the shared context


@dataclass(frozen=True)
class Condition:
    """One property's window: ``lower (<|<=) prop (<|<=) upper``, a missing bound meaning unbounded."""

    prop: str
    lower: float | None = None
    lower_inclusive: bool = False
    upper: float | None = None
    upper_inclusive: bool = False

    def __post_init__(self) -> None:
        if self.lower is None and self.upper is None:
            raise ValueError(f"condition on {self.prop!r} has no bound")

    def holds(self, values: np.ndarray) -> np.ndarray:
        """Boolean mask of ``values`` inside the window; NaN is never inside."""
        v = np.asarray(values, dtype=float)
        ok = np.ones(v.shape, dtype=bool)
        if self.lower is not None:
            ok &= (v >= self.lower) if self.lower_inclusive else (v > self.lower)
        if self.upper is not None:
            ok &= (v <= self.upper) if self.upper_inclusive else (v < self.upper)
        return ok

    def describe(self) -> str:
        """Canonical text, ``prop > x``, ``prop <= x`` or ``lo < prop < hi``, that parses back to self."""
        lo_op = "<=" if self.lower_inclusive else "<"
        hi_op = "<=" if self.upper_inclusive else "<"
        if self.upper is None:
            return f"{self.prop} {_FLIP[lo_op]} {_fmt(self.lower)}"
        if self.lower is None:
            return f"{self.prop} {hi_op} {_fmt(self.upper)}"
        return f"{_fmt(self.lower)} {lo_op} {self.prop} {hi_op} {_fmt(self.upper)}"


@dataclass(frozen=True)
class Target:
    """Conditions that must all hold; several on one property are kept as written."""

    conditions: tuple[Condition, ...]

    @property
    def properties(self) -> tuple[str, ...]:
        """Property names in order of first appearance."""
        return tuple(dict.fromkeys(c.prop for c in self.conditions))

    def mask(self, df: pd.DataFrame) -> np.ndarray:
        """Rows of ``df`` where every condition holds on column ``<prop>`` (the predicted mean).

        NaN (or a missing value) fails; a missing column raises ``KeyError``.
        """
        ok = np.ones(len(df), dtype=bool)
        for cond in self.conditions:
            if cond.prop not in df.columns:
                raise KeyError(f"target needs column {cond.prop!r}; table has {list(df.columns)}")
            ok &= cond.holds(df[cond.prop].to_numpy(dtype=float, na_value=np.nan))
        return ok

    def describe(self) -> str:
        """Canonical text, conditions joined by ``and``; ``parse_target`` reads it back unchanged."""
        return " and ".join(c.describe() for c in self.conditions)

    def __str__(self) -> str:
        return self.describe()

    def default_sort(self) -> tuple[str, bool]:
        """(property, descending) for ranking hits, from the first condition.

        ``prop > x`` sorts descending (more is the aim), ``prop < x`` ascending (less is the aim).
        A two-sided range sorts descending, like ``>``: its lower bound usually states the goal
        ("at least 1 eV") and the upper a practical cap, and one fixed rule keeps output predictable.
        """
        if not self.conditions:
            raise ValueError("empty target has no default sort")
        first = self.conditions[0]
        return first.prop, first.lower is not None


@dataclass(frozen=True)
class _Token:
    kind: str  # "num" | "name" | "op" | "and" | "comma"
    text: str


def parse_target(text: str, properties: Mapping[str, str] = PROPERTIES) -> Target:
    """Parse a target expression into a :class:`Target`; raises :class:`TargetError` on any mistake."""

    def fail(problem: str) -> TargetError:
        where = f" in target '{_show(text)}'" if text.strip() else ""
        return TargetError(f"{problem}{where}; valid properties: "
                           f"{_list_properties(properties)}; syntax: {TARGET_SYNTAX}")

    tokens = _tokenize(text, fail)
    if not tokens:
        raise fail("empty target")
    clauses: list[list[_Token]] = [[]]
    separators: list[_Token] = []
    for tok in tokens:
        if tok.kind in ("and", "comma"):
            separators.append(tok)
            clauses.append([])
        else:
            clauses[-1].append(tok)
    for i, clause in enumerate(clauses):
        if clause:
            continue
        if i == 0:
            raise fail(f"dangling '{separators[0].text}' at the start")
        if i == len(clauses) - 1:
            raise fail(f"dangling '{separators[-1].text}' at the end")
        raise fail(f"empty condition between '{separators[i - 1].text}' and '{separators[i].text}'")
    target = Target(tuple(_parse_condition(c, properties, fail) for c in clauses))
    _check_satisfiable(target, fail)
    return target


def _check_satisfiable(target: Target, fail: _Fail) -> None:
    """Refuse conditions on one property that no value meets together (``bandgap>3 and
    bandgap<1``), as a chained empty range is refused: such a run could never keep a candidate."""
    for prop in target.properties:
        conds = [c for c in target.conditions if c.prop == prop]
        lo, lo_inc, hi, hi_inc = -math.inf, False, math.inf, False
        for c in conds:  # the tightest bounds; at a tie the exclusive one is tighter
            if c.lower is not None and (c.lower > lo or (c.lower == lo and not c.lower_inclusive)):
                lo, lo_inc = c.lower, c.lower_inclusive
            if c.upper is not None and (c.upper < hi or (c.upper == hi and not c.upper_inclusive)):
                hi, hi_inc = c.upper, c.upper_inclusive
        if lo > hi or (lo == hi and not (lo_inc and hi_inc)):
            text = " and ".join(c.describe() for c in conds)
            raise fail(f"conditions '{text}' on {prop} cannot all hold (no value is above "
                       f"{_fmt(lo)} and below {_fmt(hi)})")


def parse_sort(text: str, properties: Mapping[str, str] = PROPERTIES) -> tuple[str, bool]:
    """Parse a ``--sort`` value into (property, descending).

    ``bandgap`` and ``bandgap:desc`` sort descending, ``bandgap:asc`` and ``-bandgap`` ascending.
    """

    def fail(problem: str) -> TargetError:
        where = f" in sort '{_show(text)}'" if text.strip() else ""
        return TargetError(f"{problem}{where}; valid properties: "
                           f"{_list_properties(properties)}; syntax: {SORT_SYNTAX}")

    spec = text.strip()
    if not spec:
        raise fail("empty sort")
    descending = True
    if spec.startswith("-"):
        descending = False
        spec = spec[1:].strip()
    name, colon, order = (part.strip() for part in spec.partition(":"))
    if colon:
        if not descending:
            raise fail(f"'-' together with ':{order}'")
        if order.lower() not in ("asc", "desc"):
            raise fail(f"bad order '{_show(order)}' (use asc or desc)")
        descending = order.lower() == "desc"
    if not name:
        raise fail("missing property")
    if name not in properties:
        raise fail(f"unknown property '{_show(name)}'")
    return name, descending


def _tokenize(text: str, fail: _Fail) -> list[_Token]:
    """Split ``text`` into tokens, dropping whitespace; a character no token starts with is an error."""
    tokens: list[_Token] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if m is None:
            raise fail(f"unexpected character '{_show(text[pos])}' at position {pos + 1}")
        kind, tok = m.lastgroup, m.group()
        pos = m.end()
        if kind == "ws":
            continue
        if kind == "name" and tok.lower() == "and":
            kind = "and"
        tokens.append(_Token(kind, tok))
    return tokens


def _parse_condition(toks: list[_Token], properties: Mapping[str, str], fail: _Fail) -> Condition:
    """One comparison or chained range (tokens between separators) as a :class:`Condition`."""
    clause = "".join(t.text for t in toks)
    # Shape first: operands and operators must alternate, and operators must be supported.
    for i, tok in enumerate(toks):
        before = "".join(t.text for t in toks[:i])
        if i % 2 == 0 and tok.kind == "op":
            raise fail(f"missing property or number before '{tok.text}'" if i == 0
                       else f"missing number between '{before}' and '{tok.text}'")
        if i % 2 == 1 and tok.kind != "op":
            raise fail(f"missing operator between '{before}' and '{tok.text}'" if i == 1
                       else f"unexpected '{tok.text}' after '{before}' (join conditions with 'and' or ',')")
        if tok.kind == "op" and tok.text not in _OPERATORS:
            raise fail(f"bad operator '{tok.text}' (use <, <=, > or >=)")
    if len(toks) % 2 == 0:
        raise fail(f"missing number after '{clause}'")
    if len(toks) > 5:
        raise fail(f"unexpected '{toks[5].text}' after '{''.join(t.text for t in toks[:5])}'")
    for tok in toks:
        if tok.kind == "name" and tok.text not in properties:
            raise fail(f"unknown property '{tok.text}'")
    operands = toks[0::2]
    names = [t for t in operands if t.kind == "name"]
    if len(names) > 1:
        raise fail(f"two properties in one comparison '{clause}'")
    if not names:
        raise fail(f"number with no property '{clause}'")
    if len(toks) == 1:
        raise fail(f"property '{clause}' has no comparison")
    numbers = [_number(t, fail) for t in operands if t.kind == "num"]
    prop = names[0].text

    if len(toks) == 3:
        left, op, _ = toks
        if left.kind == "num":  # "1 < bandgap" reads as "bandgap > 1"
            op = _Token("op", _FLIP[op.text])
        return _bound(prop, op.text, numbers[0])
    # Chained range: the property must sit in the middle and both operators point one way.
    if toks[2].kind != "name":
        raise fail(f"property must sit between the bounds in '{clause}' (LO<PROP<HI)")
    op1, op2 = toks[1].text, toks[3].text
    if op1[0] != op2[0]:
        raise fail(f"mixed directions '{op1}' and '{op2}' in '{clause}' (use LO<PROP<HI or HI>PROP>LO)")
    a = _bound(prop, _FLIP[op1], numbers[0])
    b = _bound(prop, op2, numbers[1])
    lo, hi = (a, b) if a.lower is not None else (b, a)
    cond = Condition(prop, lo.lower, lo.lower_inclusive, hi.upper, hi.upper_inclusive)
    assert cond.lower is not None and cond.upper is not None
    if cond.lower > cond.upper or (
        cond.lower == cond.upper and not (cond.lower_inclusive and cond.upper_inclusive)
    ):
        raise fail(f"empty range '{clause}' (lower bound {_fmt(cond.lower)} is not below "
                   f"upper bound {_fmt(cond.upper)})")
    return cond


def _bound(prop: str, op: str, x: float) -> Condition:
    """``prop OP x`` as a one-sided condition."""
    if op in (">", ">="):
        return Condition(prop, lower=x, lower_inclusive=op == ">=")
    return Condition(prop, upper=x, upper_inclusive=op == "<=")


def _number(tok: _Token, fail: _Fail) -> float:
    x = float(tok.text)
    if not math.isfinite(x):
        raise fail(f"number '{tok.text}' is out of range")
    return x


def _fmt(x: float | None) -> str:
    """Shortest round-tripping text for a bound: 1.0 -> '1', 0.001 -> '0.001'."""
    s = repr(float(x))  # type: ignore[arg-type]
    return s[:-2] if s.endswith(".0") else s


def _list_properties(properties: Mapping[str, str]) -> str:
    return ", ".join(f"{name} ({unit})" if unit else name for name, unit in properties.items())


def _show(text: str) -> str:
    """``text`` on one line: whitespace runs become one space, unprintable characters are escaped."""
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in " ".join(text.split()))
