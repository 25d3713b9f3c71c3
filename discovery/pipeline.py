"""generate -> filter -> rank, streamed in chunks so memory stays bounded whatever n is.

Each chunk of generator samples is decoded to count vectors, reduced, deduplicated against
everything seen so far in the run, screened (charge neutrality, electronegativity balance,
novelty, element rules, custom filters), and the survivors' properties predicted; only
candidates meeting the target are kept. Every stage counts what it drops (the funnel) and
how long it took.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from discovery.elements import ELEMENTS, INDEX
from discovery.encoding import composition_keys, counts_to_formulas, reduce_counts
from discovery.errors import ConfigError
from discovery.filters.chemistry import smact_screen
from discovery.targets import PROPERTIES, Target, parse_sort, parse_target

FUNNEL = ("sampled", "decoded", "unique", "charge_neutral", "en_balanced", "novel",
          "element_rules", "custom_filters", "meets_target")


class FilterError(RuntimeError):
    """A custom filter that raised or returned something other than a boolean mask."""


def composition_filter(fn: Callable) -> Callable:
    """Mark ``fn(Composition) -> bool`` as a per-composition filter (the default is a
    DataFrame filter ``fn(chunk) -> boolean mask``)."""
    fn.__discovery_per_composition__ = True
    return fn


def load_filter(spec: str) -> Callable:
    """A filter from ``package.module:function`` (the CLI's ``--filter``)."""
    mod_name, sep, attr = spec.partition(":")
    if not sep or not mod_name or not attr:
        raise ConfigError(f"filter {spec!r} must look like package.module:function")
    try:
        mod = importlib.import_module(mod_name)
    except Exception as exc:
        raise ConfigError(f"cannot import filter module {mod_name!r} ({type(exc).__name__}: {exc})") from None
    fn = getattr(mod, attr, None)
    if not callable(fn):
        raise ConfigError(f"filter {spec!r}: {mod_name} has no callable {attr!r}")
    return fn


def _filter_name(fn: Callable) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


def _apply_filter(fn: Callable, chunk: pd.DataFrame) -> np.ndarray:
    name = _filter_name(fn)
    try:
        if getattr(fn, "__discovery_per_composition__", False):
            from pymatgen.core import Composition

            mask = np.array([bool(fn(Composition(f))) for f in chunk["formula"]], dtype=bool)
        else:
            mask = fn(chunk)
    except Exception as exc:
        raise FilterError(f"filter {name} raised {type(exc).__name__}: {exc}") from None
    mask = np.asarray(mask)
    if mask.shape != (len(chunk),) or mask.dtype != bool:
        raise FilterError(f"filter {name} must return a boolean mask of length {len(chunk)}, "
                          f"got {mask.dtype} of shape {mask.shape}")
    return mask


def _element_indices(symbols: Iterable[str], option: str) -> list[int]:
    out = []
    for s in symbols:
        s = s.strip()
        if not s:
            continue
        if s not in INDEX:
            raise ConfigError(f"unknown element {s!r} in {option}; use symbols of the 85 the generator knows")
        out.append(INDEX[s])
    return out


@dataclass
class RunResult:
    candidates: pd.DataFrame
    funnel: dict[str, int]
    seconds: dict[str, float]
    target: Target
    sort: tuple[str, bool]
    settings: dict = field(default_factory=dict)


class Pipeline:
    """Composable run: a sampler, the known-materials index and property models."""

    def __init__(self, sampler, known, property_models: dict, seed: int = 0):
        self.sampler, self.known, self.models, self.seed = sampler, known, property_models, seed

    @classmethod
    def default(cls, seed: int = 0) -> Pipeline:
        """The shipped generator and property models, and the cached known-materials index."""
        from discovery.gan.sampler import CompositionSampler
        from discovery.known import KnownMaterials
        from discovery.properties import load_property_model

        return cls(CompositionSampler.load(), KnownMaterials.default(),
                   {p: load_property_model(p) for p in PROPERTIES}, seed)

    def run(self, n: int, target: str | Target, filters: Sequence[Callable] = (), sort: str | None = None,
            include: Iterable[str] = (), exclude: Iterable[str] = (), max_elements: int | None = None,
            oxidation_states: str = "smact14", batch_size: int = 8192, kappa: float = 1.0,
            progress: bool = False) -> RunResult:
        """Sample n compositions and return the ranked candidates meeting ``target``."""
        if not isinstance(n, int | np.integer) or n <= 0:
            raise ConfigError(f"--n must be a positive number of samples, got {n!r}")
        if batch_size <= 0:
            raise ConfigError(f"--batch-size must be positive, got {batch_size}")
        if max_elements is not None and max_elements < 1:
            raise ConfigError(f"--max-elements must be >= 1, got {max_elements}")
        tgt = target if isinstance(target, Target) else parse_target(target)
        sort_key = parse_sort(sort) if sort else tgt.default_sort()
        missing = [p for p in (*tgt.properties, sort_key[0]) if p not in self.models]
        if missing:
            raise ConfigError(f"no model for {missing[0]!r}; loaded: {', '.join(self.models)}")
        inc = _element_indices(include, "--include")
        exc = _element_indices(exclude, "--exclude")
        smact_screen(np.zeros((1, len(ELEMENTS)), np.int64), oxidation_states)  # validate the set early

        funnel = dict.fromkeys(FUNNEL, 0)
        seconds: dict[str, float] = dict.fromkeys(("generate", "filter", "rank"), 0.0)
        seen = np.zeros(0, dtype=np.uint64)
        kept: list[pd.DataFrame] = []
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=n, unit="sample", desc="discover run", unit_scale=True)
        stream: Iterator[np.ndarray] = self.sampler.iter_counts(n, self.seed, batch_size)
        while True:
            t0 = time.perf_counter()
            counts = next(stream, None)
            seconds["generate"] += time.perf_counter() - t0
            if counts is None:
                break
            t0 = time.perf_counter()
            counts, seen = self._screen(counts, seen, funnel, inc, exc, max_elements, oxidation_states)
            chunk = pd.DataFrame({"formula": counts_to_formulas(counts),
                                  "n_elements": (counts > 0).sum(axis=1)})
            for fn in filters:
                if len(chunk) == 0:
                    break
                mask = _apply_filter(fn, chunk)
                chunk, counts = chunk[mask].reset_index(drop=True), counts[mask]
            funnel["custom_filters"] += len(chunk)
            seconds["filter"] += time.perf_counter() - t0
            t0 = time.perf_counter()
            if len(chunk):
                for name, model in self.models.items():
                    mean, std = model.predict_amounts(counts)
                    chunk[name], chunk[f"{name}_std"] = mean, std
                chunk = chunk[tgt.mask(chunk)]
                funnel["meets_target"] += len(chunk)
                kept.append(chunk)
            seconds["rank"] += time.perf_counter() - t0
            if bar is not None:
                bar.update(min(batch_size, n - bar.n))
        if bar is not None:
            bar.close()
        cands = rank_candidates(pd.concat(kept, ignore_index=True) if kept else _empty(self.models),
                                sort_key, kappa)
        settings = {"n": n, "seed": self.seed, "target": tgt.describe(), "sort": list(sort_key),
                    "include": [ELEMENTS[i] for i in inc], "exclude": [ELEMENTS[i] for i in exc],
                    "max_elements": max_elements, "oxidation_states": oxidation_states,
                    "batch_size": batch_size, "kappa": kappa,
                    "filters": [_filter_name(f) for f in filters]}
        return RunResult(cands, funnel, seconds, tgt, sort_key, settings)

    def _screen(self, counts, seen, funnel, inc, exc, max_elements, oxidation_states):
        """Built-in stages on one chunk; returns the surviving reduced counts and the seen keys."""
        funnel["sampled"] += len(counts)
        n_el = (counts > 0).sum(axis=1)
        counts = counts[n_el >= 2]  # a compound: at least two elements
        funnel["decoded"] += len(counts)
        keys = composition_keys(counts)
        keys, first = np.unique(keys, return_index=True)
        fresh = ~np.isin(keys, seen, assume_unique=True)
        keys, counts = keys[fresh], reduce_counts(counts[first[fresh]])
        seen = np.union1d(seen, keys)
        funnel["unique"] += len(counts)
        cn, en = smact_screen(counts, oxidation_states)
        funnel["charge_neutral"] += int(cn.sum())
        keys, counts = keys[en], counts[en]
        funnel["en_balanced"] += len(counts)
        novel = ~self.known.contains_keys(keys)
        counts = counts[novel]
        funnel["novel"] += len(counts)
        ok = np.ones(len(counts), dtype=bool)
        if inc:
            ok &= (counts[:, inc] > 0).all(axis=1)
        if exc:
            ok &= ~(counts[:, exc] > 0).any(axis=1)
        if max_elements is not None:
            ok &= (counts > 0).sum(axis=1) <= max_elements
        counts = counts[ok]
        funnel["element_rules"] += len(counts)
        return counts, seen


def _empty(models: dict) -> pd.DataFrame:
    cols = ["formula", "n_elements"] + [c for p in models for c in (p, f"{p}_std")]
    return pd.DataFrame({c: pd.Series(dtype=object if c == "formula" else float) for c in cols})


def rank_candidates(df: pd.DataFrame, sort_key: tuple[str, bool], kappa: float = 1.0) -> pd.DataFrame:
    """Sort by an uncertainty-aware score and number the ranks.

    The score is the sort property's lower confidence bound (mean - kappa*std) when larger is
    better and its upper bound (mean + kappa*std) when smaller is better, so a confident
    prediction outranks an equally good but uncertain one. Ties fall back to the formula.
    """
    prop, descending = sort_key
    df = df.copy()
    sign = 1.0 if descending else -1.0
    df["score"] = df[prop] - sign * kappa * df[f"{prop}_std"]
    df = df.sort_values(["score", "formula"], ascending=[not descending, True], kind="mergesort")
    df.insert(0, "rank", np.arange(1, len(df) + 1))
    return df.reset_index(drop=True)
