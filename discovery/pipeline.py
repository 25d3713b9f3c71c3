"""generate -> filter -> rank, in seeded partitions streamed in chunks (bounded memory).

A run is cut into partitions (see RunSpec): partition i is the slice [i * size, (i + 1) * size)
of the generator's one sequence for the run's seed, drawn without the compositions of the
known-materials index (the generator skips them). Within a partition, each chunk of generator
samples is decoded to count vectors, reduced, deduplicated against what the partition has
seen, screened (charge neutrality, electronegativity balance, novelty, element rules,
custom filters), and the survivors' properties predicted; candidates meeting the target are
kept. Merging the partitions deduplicates globally (first occurrence in partition order),
so every engine that runs the same partitions reports the same funnel and candidates.
"""

from __future__ import annotations

import importlib
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from discovery.elements import INDEX
from discovery.encoding import composition_keys, counts_to_formulas, first_occurrences, reduce_counts
from discovery.errors import ConfigError, FilterError
from discovery.filters.chemistry import smact_screen
from discovery.partitions import (  # noqa: F401  (the run API stays importable from here)
    FUNNEL,
    STABILITY_COLUMNS,
    STAGE_CN,
    STAGE_CUSTOM,
    STAGE_EN,
    STAGE_NOVEL,
    STAGE_RULES,
    STAGE_TARGET,
    STAGE_UNIQUE,
    PartitionOutput,
    RunResult,
    RunSpec,
    _element_indices,
    _empty,
    _filter_name,
    build_spec,
    merge_partitions,
    model_columns,
    rank_candidates,
)
from discovery.prefetch import PartitionStreams
from discovery.targets import DERIVED_PROPERTIES, MODEL_PROPERTIES, Target, parse_target


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
    except (Exception, SystemExit) as exc:  # a module that calls sys.exit on import, too
        raise ConfigError(f"cannot import filter module {mod_name!r} ({type(exc).__name__}: {exc})") from None
    fn = getattr(mod, attr, None)
    if not callable(fn):
        raise ConfigError(f"filter {spec!r}: {mod_name} has no callable {attr!r}")
    return fn


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
    except SystemExit as exc:  # not the end of the run it asks for: the run did not finish
        raise FilterError(f"filter {name} called sys.exit({exc.code!r}); a filter must return a "
                          "boolean mask") from None
    mask = np.asarray(mask)
    if mask.shape != (len(chunk),) or mask.dtype != bool:
        raise FilterError(f"filter {name} must return a boolean mask of length {len(chunk)}, "
                          f"got {mask.dtype} of shape {mask.shape}")
    return mask


RANK_BEHIND = 2  # batches the rank thread may lag behind the screening one (their rows held meanwhile)
ELEMENTS_ONLY_NOTE = "hull here holds only the elements: no known compound of them competes"


def elements_only(decompositions: Sequence[str]) -> np.ndarray:
    """True where a decomposition ('F (0.800) + N (0.200)') holds elements alone."""
    return np.array([bool(d) and all(part.rsplit(" (", 1)[0] in INDEX for part in d.split(" + "))
                     for d in decompositions], dtype=bool)


class Pipeline:
    """Composable run: a generator (``sampler``: anything with ``iter_counts``), the
    known-materials index, property models and, for ``e_hull``, the convex hulls of known
    phases (``discovery.stability.PhaseHulls``)."""

    def __init__(self, sampler, known, property_models: dict, seed: int = 0, hulls=None):
        self.sampler, self.known, self.models, self.seed = sampler, known, property_models, seed
        self.hulls = hulls
        self.generator_dir: str | None = None
        self._streams: PartitionStreams | None = None  # the generator's streams, one partition ahead
        known.warn_if_smaller_than_shipped()  # novelty would pass known compounds

    @classmethod
    def default(cls, seed: int = 0, generator: str | None = None,
                generator_dir: Path | str | None = None) -> Pipeline:
        """A generator by registry name (None: the default), shipped or saved in
        ``generator_dir``; the shipped property models and the cached known-materials index."""
        from discovery.generation.registry import load_generator
        from discovery.known import KnownMaterials
        from discovery.properties import load_property_model
        from discovery.stability import default_hulls

        pipe = cls(load_generator(generator, generator_dir), KnownMaterials.default(),
                   {p: load_property_model(p) for p in MODEL_PROPERTIES}, seed, default_hulls())
        pipe.generator_dir = None if generator_dir is None else str(Path(generator_dir).resolve())
        return pipe

    def spec(self, n: int, target: str, filters: Sequence[Callable] = (), sort: str | None = None,
             include: Iterable[str] = (), exclude: Iterable[str] = (), max_elements: int | None = None,
             oxidation_states: str = "smact14", batch_size: int = 8192, kappa: float = 1.0,
             partition_size: int = 250_000) -> RunSpec:
        """Validate the arguments into a RunSpec (one-line errors for bad values)."""
        spec = build_spec(n, target, self.seed, filters, sort, include, exclude, max_elements,
                          oxidation_states, batch_size, kappa, partition_size, self.generator_name,
                          self.generator_version, self.generator_dir)
        self.check_models(spec)
        return spec

    @property
    def generator_name(self) -> str:
        return str(getattr(self.sampler, "name", type(self.sampler).__name__))

    @property
    def generator_version(self) -> str:
        return str(getattr(self.sampler, "card", {}).get("version", "unknown"))

    def check_models(self, spec: RunSpec) -> None:
        """Raise ConfigError when the run names another generator than the one loaded, or a
        property no loaded model gives (``e_hull`` needs the formation-energy model and the
        known phases' hulls)."""
        if (spec.generator, spec.generator_version) != (self.generator_name, self.generator_version):
            raise ConfigError(f"the run needs generator {spec.generator!r} version "
                              f"{spec.generator_version!r}; loaded: {self.generator_name!r} version "
                              f"{self.generator_version!r}")
        needed = [*parse_target(spec.target).properties, spec.sort[0]]
        if "e_hull" in needed:
            if self.hulls is None:
                raise ConfigError("e_hull needs the known phases' formation energies: run `discover data "
                                  "fetch` (crabnet's OQMD tables), then run again")
            needed.append("formation_energy")
        missing = [p for p in needed if p not in self.models and p not in DERIVED_PROPERTIES]
        if missing:
            raise ConfigError(f"no model for {missing[0]!r}; loaded: {', '.join(self.models)}")

    def run(self, n: int, target: str, filters: Sequence[Callable] = (), sort: str | None = None,
            include: Iterable[str] = (), exclude: Iterable[str] = (), max_elements: int | None = None,
            oxidation_states: str = "smact14", batch_size: int = 8192, kappa: float = 1.0,
            partition_size: int = 250_000, progress: bool = False, run_dir=None,
            resume: bool = False) -> RunResult:
        """Sample n compositions and return the ranked candidates meeting ``target``.

        With ``run_dir`` every completed partition is kept on disk and ``resume`` continues
        an interrupted run there.
        """
        from discovery.engines.local import LocalEngine

        spec = self.spec(n, target, filters, sort, include, exclude, max_elements, oxidation_states,
                         batch_size, kappa, partition_size)
        return LocalEngine(self, run_dir=run_dir, resume=resume, progress=progress).run(spec)

    def run_partition(self, spec: RunSpec, i: int, progress=None, then: int | None = None) -> PartitionOutput:
        """Generate -> filter -> rank one partition, streaming its samples in batches.

        ``then``: the partition the engine runs next with this ``spec``; its generator starts as
        soon as this one's is done, so it samples while this partition's last batches are
        ranked (call ``stop_prefetch`` when the run ends early)."""
        tgt = parse_target(spec.target)
        inc = _element_indices(spec.include, "--include")
        exc = _element_indices(spec.exclude, "--exclude")
        # rank_domain: the part of rank spent judging the applicability domain
        seconds = dict.fromkeys(("generate", "filter", "rank", "rank_domain"), 0.0)
        sampled = decoded = 0
        seen: set[int] = set()
        all_keys, all_stages, kept = [], [], []
        # The generator works a chunk ahead in a thread while this one is filtered and ranked;
        # it skips known compositions, so novelty below only sees ones it could not know.
        streams = self._streams
        if streams is None or streams.sampler is not self.sampler or streams.skip is not self.known.keys:
            self.stop_prefetch()  # a generator or index swapped since: its streams are stale
            self._streams = PartitionStreams(self.sampler, self.known.keys)
        opened = self._streams.open(spec, i, then)
        stream, tally = opened.prefetcher, opened.tally
        # The rows meeting the target get their other properties, e_hull and notes in a third
        # thread, a batch behind, while this one screens the next batch: on two cores the work
        # then spreads over both. Each model is used by one thread only (the target's here, the
        # rest there), and the batches come back in order.
        behind: deque = deque()
        rest_seconds: dict[str, float] = {}
        with stream, ThreadPoolExecutor(1, thread_name_prefix="discovery-rank") as ranker:
            try:
                for counts in stream:
                    t0 = time.perf_counter()
                    batch_n = len(counts)
                    sampled += batch_n
                    counts = counts[(counts > 0).sum(axis=1) >= 2]  # a compound: at least two elements
                    decoded += len(counts)
                    keys = composition_keys(counts)
                    first = first_occurrences(keys)
                    keys = keys[first]
                    fresh = np.fromiter((k not in seen for k in keys.tolist()), dtype=bool, count=len(keys))
                    keys, counts = keys[fresh], reduce_counts(counts[first[fresh]])
                    seen.update(keys.tolist())
                    stages = self._screen(counts, keys, inc, exc, spec)
                    live = stages == STAGE_RULES
                    chunk = pd.DataFrame({"formula": counts_to_formulas(counts[live]),
                                          "n_elements": (counts[live] > 0).sum(axis=1), "key": keys[live]})
                    live_idx = np.flatnonzero(live)
                    live_counts = counts[live]
                    for fn in spec.filters:
                        if len(chunk) == 0:
                            break
                        mask = _apply_filter(fn, chunk.drop(columns="key"))
                        chunk = chunk[mask].reset_index(drop=True)
                        live_idx, live_counts = live_idx[mask], live_counts[mask]
                    stages[live_idx] = STAGE_CUSTOM
                    seconds["filter"] += time.perf_counter() - t0
                    if len(chunk):
                        t0 = time.perf_counter()
                        hits, hit_counts, hit = self._target_hits(chunk, live_counts, tgt, seconds)
                        stages[live_idx[hit]] = STAGE_TARGET
                        seconds["rank"] += time.perf_counter() - t0
                        behind.append(ranker.submit(self._complete_hits, hits, hit_counts, rest_seconds))
                        while len(behind) > RANK_BEHIND:
                            kept.append(behind.popleft().result())
                    all_keys.append(keys)
                    all_stages.append(stages)
                    if progress is not None:
                        progress(batch_n)
                while behind:
                    kept.append(behind.popleft().result())
            except BaseException:
                for job in behind:  # the batch in progress finishes (the pool waits for it)
                    job.cancel()
                raise
        for k, v in rest_seconds.items():  # the rank thread's time counts as rank, overlapped
            seconds[k] = seconds.get(k, 0.0) + v
        seconds["generate"] = stream.seconds  # the generator's own time, overlapped
        if self.hulls is not None:  # a partition's systems (~40,000 per 250,000 samples) are not
            self.hulls.clear_cache()  # kept for the next: the run's memory stays flat, its peak
            # (merging and writing the report) ~100 MiB lower at 1e6, for ~2 s of recomputation
        cands = pd.concat(kept, ignore_index=True) if kept else _empty(self.models, with_key=True)
        return PartitionOutput(i, sampled, decoded,
                               np.concatenate(all_keys) if all_keys else np.zeros(0, np.uint64),
                               np.concatenate(all_stages) if all_stages else np.zeros(0, np.int8),
                               cands, seconds, tally.skipped)

    def stop_prefetch(self) -> None:
        """Stop a partition's generator started ahead (``run_partition(..., then=j)``) that
        will not be run: an engine calls this when its run ends."""
        if self._streams is not None:
            self._streams.close()

    def _target_hits(self, chunk: pd.DataFrame, counts: np.ndarray, tgt,
                     seconds: dict) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
        """Predict the target's properties, keep the rows meeting it: (those rows, their counts,
        the mask). Most rows miss the target, so the other properties wait for the hits.

        ``e_hull`` needs the formation energy and a hull per chemical system, so it is computed
        after the other conditions, on the rows that met them. ``seconds["rank_domain"]`` gathers the
        time spent judging the domain (the summary shows what the domain work costs)."""
        first = [p for p in tgt.properties if p in self.models]
        for name in first:
            self._predict(chunk, name, counts, seconds)
        model_conds = tuple(c for c in tgt.conditions if c.prop in self.models)
        hit = Target(model_conds).mask(chunk) if model_conds else np.ones(len(chunk), dtype=bool)
        if "e_hull" in tgt.properties:
            idx = np.flatnonzero(hit)
            part = self._add_stability(chunk.iloc[idx].copy(), counts[idx], seconds)
            hit[idx] = tgt.mask(part)
            return part[hit[idx]].copy(), counts[hit], hit
        return chunk[hit].copy(), counts[hit], hit

    def _complete_hits(self, hits: pd.DataFrame, counts: np.ndarray, seconds: dict) -> pd.DataFrame:
        """The other properties, ``e_hull`` and the domain note of the rows meeting the target,
        in the report's columns. Its time is added to ``seconds["rank"]``."""
        t0 = time.perf_counter()
        for name in self.models:
            if name not in hits:
                self._predict(hits, name, counts, seconds)
        if "e_hull" not in hits:
            hits = self._add_stability(hits, counts, seconds)
        notes = [(p, hits.pop(f"{p}_note").to_numpy()) for p in self.models]
        hits["domain_note"] = ["; ".join(f"{p}: {n[i]}" for p, n in notes if n[i]) for i in range(len(hits))]
        columns = ["formula", "n_elements", "key", *model_columns(self.models), *STABILITY_COLUMNS,
                   "domain_note"]
        seconds["rank"] = seconds.get("rank", 0.0) + time.perf_counter() - t0
        return hits[columns]

    def _predict(self, df: pd.DataFrame, name: str, counts: np.ndarray, seconds: dict | None = None) -> None:
        """Columns ``name`` (empty where the model does not report it), ``name_std`` (calibrated σ),
        ``name_in_domain`` and ``name_note`` (why not in domain, joined into ``domain_note``)."""
        from discovery.properties import predict_with_domain  # imports TensorFlow: not before a model runs

        pred = predict_with_domain(self.models[name], counts)
        if seconds is not None:
            seconds["rank_domain"] = seconds.get("rank_domain", 0.0) + pred.seconds
        df[name], df[f"{name}_std"] = pred.mean, pred.sigma
        df[f"{name}_in_domain"], df[f"{name}_note"] = pred.in_domain, pred.note

    def _add_stability(self, df: pd.DataFrame, counts: np.ndarray,
                       seconds: dict | None = None) -> pd.DataFrame:
        """``e_hull`` (predicted formation energy minus the hull of known phases), its std (the
        formation-energy ensemble's: the hull is DFT data), the competing phases and, where
        there is no number, why."""
        if "formation_energy" not in df and "formation_energy" in self.models:
            self._predict(df, "formation_energy", counts, seconds)
        if self.hulls is None or "formation_energy" not in df:
            why = ("no known-phase data (discover data fetch)" if self.hulls is None
                   else "no formation-energy model")
            df["e_hull"], df["e_hull_std"], df["decomposition"], df["e_hull_note"] = np.nan, np.nan, "", why
            df["e_hull_in_domain"] = False
            return df
        res = self.hulls.evaluate(counts, df["formation_energy"].to_numpy())
        t0 = time.perf_counter()
        df["e_hull"], df["e_hull_std"] = res.e_hull, df["formation_energy_std"].to_numpy()
        in_domain = df["formation_energy_in_domain"].to_numpy() & np.isfinite(res.e_hull)
        note = np.asarray(res.note, dtype=object)
        note[elements_only(res.decomposition) & (note == "")] = ELEMENTS_ONLY_NOTE
        floor = self.models["formation_energy"].card.get("applicability", {}).get("e_hull_floor")
        if floor:
            n_el = (np.asarray(counts) > 0).sum(axis=1)
            by_count = np.array([floor["by_elements"].get(str(k), -np.inf) for k in range(9)])
            limit = by_count[np.clip(n_el, 0, 8)]
            deep = np.isfinite(res.e_hull) & (res.e_hull < limit)
            share = f"{floor['quantile']:.0%}"
            for i in np.flatnonzero(deep):
                why = (f"{-res.e_hull[i]:.2f} below the hull, where fewer than {share} of known "
                       f"{n_el[i]}-element compounds lie more than {-limit[i]:.2f} below the others': "
                       "more likely a model or hull error than a discovery")
                note[i] = why if not note[i] else f"{note[i]}; {why}"
            in_domain &= ~deep
        df["e_hull_in_domain"] = in_domain
        df["decomposition"], df["e_hull_note"] = res.decomposition, note
        if seconds is not None:
            seconds["rank_domain"] = seconds.get("rank_domain", 0.0) + time.perf_counter() - t0
        return df

    def _screen(self, counts, keys, inc, exc, spec: RunSpec) -> np.ndarray:
        """Built-in filters on unique reduced counts: the stage each composition reaches."""
        stages = np.full(len(counts), STAGE_UNIQUE, dtype=np.int8)
        cn, en = smact_screen(counts, spec.oxidation_states)
        stages[cn] = STAGE_CN
        stages[en] = STAGE_EN
        novel = en & ~self.known.contains_keys(keys)
        stages[novel] = STAGE_NOVEL
        ok = novel.copy()
        if inc:
            ok &= (counts[:, inc] > 0).all(axis=1)
        if exc:
            ok &= ~(counts[:, exc] > 0).any(axis=1)
        if spec.max_elements is not None:
            ok &= (counts > 0).sum(axis=1) <= spec.max_elements
        stages[ok] = STAGE_RULES
        return stages
