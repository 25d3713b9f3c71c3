"""What a run is and what it yields, shared by the pipeline and the engines that execute it.

``RunSpec`` fixes a run (its arguments, validated before any model loads; picklable, so a
worker can run a partition), ``PartitionOutput`` is one partition's work, and
``merge_partitions`` turns the partitions, in any order and from any engine, into the
``RunResult``: global deduplication, the funnel and the ranking. ``discovery.pipeline`` computes
partitions; the engines (``discovery.engines``) decide where they run and import this module,
never the pipeline, so imports run one way: pipeline -> engines.local -> partitions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import pandas as pd

from discovery.elements import ELEMENTS, INDEX
from discovery.errors import ConfigError
from discovery.filters.chemistry import smact_screen
from discovery.generation.registry import DEFAULT as DEFAULT_GENERATOR
from discovery.targets import Target, parse_sort, parse_target

FUNNEL = ("sampled", "decoded", "unique", "charge_neutral", "en_balanced", "novel",
          "element_rules", "custom_filters", "meets_target")


def _filter_name(fn: Callable) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


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


@dataclass(frozen=True)
class RunSpec:
    """Everything that decides a run's result; picklable, so a worker can run a partition.

    The generator's output for a run is one sequence fixed by the seed; partition i is its
    slice ``partition_slice(i)``. The result does not depend on where or in which order
    partitions run, nor on the partition or batch size. Custom filters must judge each
    composition on its own for that to hold.
    """

    n: int
    target: str
    seed: int = 0
    partition_size: int = 250_000
    batch_size: int = 8192
    sort: tuple[str, bool] | None = None
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    max_elements: int | None = None
    oxidation_states: str = "smact14"
    kappa: float = 1.0
    filters: tuple[Callable, ...] = ()
    generator: str = DEFAULT_GENERATOR  # registry name: a Dask worker loads the same generator
    generator_version: str = "unknown"  # its card's version: resume refuses another
    generator_dir: str | None = None  # a trained one's directory (None: the shipped one)

    def __post_init__(self):
        if not isinstance(self.n, int | np.integer) or isinstance(self.n, bool) or self.n <= 0:
            raise ConfigError(f"--n must be a positive number of samples, got {self.n!r}")
        for name in ("batch_size", "partition_size"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be positive, got {getattr(self, name)}")
        if self.max_elements is not None and self.max_elements < 2:
            raise ConfigError(f"--max-elements must be >= 2 (a compound has at least two elements), "
                              f"got {self.max_elements}")
        if not np.isfinite(self.kappa) or self.kappa < 0:
            raise ConfigError(f"--kappa must be a number >= 0 (score = mean -/+ kappa * std penalises "
                              f"uncertainty), got {self.kappa}")
        tgt = parse_target(self.target)
        object.__setattr__(self, "target", tgt.describe())
        if self.sort is None:
            object.__setattr__(self, "sort", tgt.default_sort())
        inc = _element_indices(self.include, "--include")
        _element_indices(self.exclude, "--exclude")
        both = [s for s in dict.fromkeys(self.include) if s in self.exclude]
        if both:
            raise ConfigError(f"--include and --exclude both name {','.join(both)}: no candidate can "
                              "contain and lack an element")
        if self.max_elements is not None and len(set(inc)) > self.max_elements:
            raise ConfigError(f"--include names {len(set(inc))} elements but --max-elements is "
                              f"{self.max_elements}: no candidate can satisfy both")
        smact_screen(np.zeros((1, len(ELEMENTS)), np.int64), self.oxidation_states)  # a known set?

    @property
    def n_partitions(self) -> int:
        return -(-self.n // self.partition_size)

    def partition_slice(self, i: int) -> tuple[int, int]:
        """[start, stop) of partition i in the generator's sequence; a one-line ConfigError
        naming i when it lies outside the run."""
        if not isinstance(i, int | np.integer) or isinstance(i, bool) or not 0 <= i < self.n_partitions:
            raise ConfigError(f"partition {i!r} is outside the run: it has partitions "
                              f"0..{self.n_partitions - 1} of --n {self.n:,}")
        start = int(i) * self.partition_size
        return start, min(start + self.partition_size, self.n)

    def partition_samples(self, i: int) -> int:
        start, stop = self.partition_slice(i)
        return stop - start

    def settings(self) -> dict:
        """The JSON-able description (report summary, run-directory manifest)."""
        return {"n": self.n, "seed": self.seed, "target": self.target, "sort": list(self.sort),
                "partition_size": self.partition_size, "batch_size": self.batch_size,
                "include": list(self.include), "exclude": list(self.exclude),
                "max_elements": self.max_elements, "oxidation_states": self.oxidation_states,
                "kappa": self.kappa, "filters": [_filter_name(f) for f in self.filters],
                "generator": self.generator, "generator_version": self.generator_version,
                "generator_skips": "known-materials index"}


# A unique composition's fate: the last funnel stage it reached (index into FUNNEL[2:]).
STAGE_UNIQUE, STAGE_CN, STAGE_EN, STAGE_NOVEL, STAGE_RULES, STAGE_CUSTOM, STAGE_TARGET = range(7)


@dataclass
class PartitionOutput:
    """One partition's work: per-sample counts, each unique composition's key and fate,
    and the candidates that met the target (with their keys)."""

    index: int
    sampled: int
    decoded: int
    keys: np.ndarray  # uint64, first-occurrence order within the partition
    stages: np.ndarray  # int8, STAGE_* per key
    candidates: pd.DataFrame
    seconds: dict[str, float]
    generator_skipped: int = 0  # draws the generator replaced: their composition was known


@dataclass
class RunResult:
    candidates: pd.DataFrame
    funnel: dict[str, int]
    seconds: dict[str, float]
    target: Target
    sort: tuple[str, bool]
    settings: dict = field(default_factory=dict)
    generator_skipped: int = 0  # known compositions the generator skipped (never sampled)


STABILITY_COLUMNS = ("e_hull", "e_hull_std", "e_hull_in_domain", "decomposition", "e_hull_note")


def model_columns(models: Iterable[str]) -> list[str]:
    """Per property: the mean, its calibrated σ and whether the row is in the model's domain."""
    return [c for p in models for c in (p, f"{p}_std", f"{p}_in_domain")]


def build_spec(n: int, target: str, seed: int = 0, filters: Sequence[Callable] = (),
               sort: str | None = None, include: Iterable[str] = (), exclude: Iterable[str] = (),
               max_elements: int | None = None, oxidation_states: str = "smact14",
               batch_size: int = 8192, kappa: float = 1.0, partition_size: int = 250_000,
               generator: str = RunSpec.generator, generator_version: str = "unknown",
               generator_dir: str | None = None) -> RunSpec:
    """Validate run arguments into a RunSpec without loading any model, so bad values fail in
    milliseconds (one-line ConfigError/TargetError naming the value)."""
    return RunSpec(n=n, target=target, seed=seed, partition_size=partition_size,
                   batch_size=batch_size, sort=parse_sort(sort) if sort else None,
                   include=tuple(s.strip() for s in include if s.strip()),
                   exclude=tuple(s.strip() for s in exclude if s.strip()), max_elements=max_elements,
                   oxidation_states=oxidation_states, kappa=float(kappa), filters=tuple(filters),
                   generator=generator, generator_version=generator_version, generator_dir=generator_dir)


class PartitionRunner(Protocol):
    """What an engine needs of a pipeline: its property models' names and one partition's work
    (``discovery.pipeline.Pipeline``)."""

    models: dict

    def run_partition(self, spec: RunSpec, i: int, progress=None, then: int | None = None) -> PartitionOutput:
        """Partition i's output; ``then`` names the partition the engine runs next, which the
        runner may start ahead (an engine that passes it calls ``stop_prefetch``, if the runner
        has it, when its run ends)."""
        ...


def merge_partitions(outputs: Sequence[PartitionOutput], spec: RunSpec, models: Iterable[str]) -> RunResult:
    """Global deduplication (first occurrence in partition order), funnel and ranking."""
    outputs = sorted(outputs, key=lambda o: o.index)
    keys = np.concatenate([o.keys for o in outputs]) if outputs else np.zeros(0, np.uint64)
    stages = np.concatenate([o.stages for o in outputs]) if outputs else np.zeros(0, np.int8)
    _, first = np.unique(keys, return_index=True)
    st = stages[first]
    funnel = {"sampled": sum(o.sampled for o in outputs), "decoded": sum(o.decoded for o in outputs)}
    for k, name in enumerate(FUNNEL[2:]):
        funnel[name] = int((st >= k).sum())
    frames = [o.candidates for o in outputs if len(o.candidates)]
    cands = pd.concat(frames, ignore_index=True) if frames else _empty(models, with_key=True)
    # the first occurrence of each key, without the key: a copy without the key column, then one
    # of its rows only where keys repeat (one .loc over rows and columns at once peaked higher)
    first_rows = ~cands["key"].duplicated(keep="first").to_numpy()
    cands = cands.drop(columns="key")
    if not first_rows.all():
        cands = cands[first_rows]
    seconds: dict[str, float] = {}
    for o in outputs:
        for k, v in o.seconds.items():
            seconds[k] = seconds.get(k, 0.0) + v
    tgt = parse_target(spec.target)
    return RunResult(rank_candidates(cands, spec.sort, spec.kappa), funnel, seconds, tgt, spec.sort,
                     spec.settings(), sum(o.generator_skipped for o in outputs))


def _empty(models: Iterable[str], with_key: bool = False) -> pd.DataFrame:
    cols = ["formula", "n_elements", *(["key"] if with_key else [])]
    cols += model_columns(models)
    cols += [*STABILITY_COLUMNS, "domain_note"]
    dtypes = {"formula": object, "n_elements": np.int64, "key": np.uint64, "decomposition": object,
              "e_hull_note": object, "domain_note": object,
              **{c: bool for c in cols if c.endswith("_in_domain")}}
    return pd.DataFrame({c: pd.Series(dtype=dtypes.get(c, float)) for c in cols})


def rank_candidates(df: pd.DataFrame, sort_key: tuple[str, bool], kappa: float = 1.0) -> pd.DataFrame:
    """Sort by an uncertainty-aware score and number the ranks.

    The score is the sort property's lower confidence bound (mean - kappa*σ) when larger is
    better and its upper bound (mean + kappa*σ) when smaller is better, σ calibrated on
    validation data, so a confident prediction outranks an equally good but uncertain one.
    Rows whose sort property lies in its model's applicability domain come first: outside it
    nothing measured says how wrong the number may be. Rows with no value (a Tc not reported)
    come last; ties fall back to the formula.
    """
    prop, descending = sort_key
    sign = 1.0 if descending else -1.0
    score = (df[prop] - sign * kappa * df[f"{prop}_std"]).to_numpy()
    flag = f"{prop}_in_domain"
    outside = ~df[flag].to_numpy(bool) if flag in df else np.zeros(len(df), bool)
    order = pd.DataFrame({"outside": outside, "score": score, "formula": df["formula"].to_numpy()})
    positions = order.sort_values(["outside", "score", "formula"], ascending=[True, not descending, True],
                                  kind="mergesort", na_position="last").index.to_numpy()
    ranked = df.take(positions)  # the one copy of the candidates
    ranked["score"] = score[positions]
    ranked.insert(0, "rank", np.arange(1, len(ranked) + 1))
    ranked.index = pd.RangeIndex(len(ranked))
    return ranked
