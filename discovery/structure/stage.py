"""The structure stage of a report: for each of its top rows, propose structures (AFLOW templates
of its stoichiometry type and their ordered derivatives, else random symmetric structures with the
derivatives), prescreen and relax them, keep the lowest-energy one, re-score it against the hull
and write its CIF, one task per candidate on the local or the Dask engine, resumable after a kill.

The report gains the columns ``prototype``, ``spacegroup``, ``formation_energy_relaxed``,
``e_hull_relaxed``, ``relax_converged``, ``structure_file`` and ``relax_note`` (why a row has no
structure, or what to know about it); its summary gains a ``structure`` section with the
settings, the model and the seconds per candidate.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from discovery.atomic import atomic_write
from discovery.errors import ConfigError
from discovery.structure.frame import Frame, energy_of, load_frames
from discovery.structure.settings import RelaxSettings
from discovery.structure.store import StructureStore

log = logging.getLogger(__name__)

COLUMNS = {"prototype": "prototype", "spacegroup": "spacegroup",
           "formation_energy_relaxed": "formation_energy_relaxed [eV/atom]",
           "e_hull_relaxed": "e_hull_relaxed [eV/atom]", "relax_converged": "relax_converged",
           "structure_file": "structure_file", "relax_note": "relax_note"}
FLOAT = "{:.4f}"
# eV/atom: a fully relaxed structure must be this much lower to replace a likelier template's.
# Below it CHGNet does not order polymorphs reliably (its energy MAE on MPtrj is ~30 meV/atom).
# Picked from the relaxed energies of the formation benchmark's 148 AFLOW-library compounds, the
# compound's own template won 79 times at 1 meV, 81 at 5 and 84 at 10.
TIE = 5e-3
PRESCREEN_TIE = 1e-3  # eV/atom: prescreen energies this close rank by likelihood


def structures_dir(report: Path) -> Path:
    """``<report stem>_structures/`` beside the report."""
    report = Path(report)
    return report.with_name(f"{report.stem}_structures")


def _parse(formula: str):
    from pymatgen.core import Composition, Element

    try:
        comp = Composition(formula)
    except Exception:
        return None
    # pymatgen reads an unknown symbol (Xx) as a dummy species: not an element to build a crystal of
    real = all(isinstance(e, Element) and comp[e] > 0 for e in comp.elements)
    return comp if len(comp.elements) and real else None


def relax_candidate(formula: str, settings: RelaxSettings, directory: str, cache: str | None = None) -> dict:
    """The task: one candidate's search, relaxation, scoring and files (its stored record when a
    finished one exists: a relaxed candidate is never relaxed again)."""
    store = StructureStore(Path(directory), settings.digest())
    done = store.load(formula)
    if done is not None:
        return done | {"resumed": True}
    from threadpoolctl import threadpool_limits

    t0, c0 = time.perf_counter(), time.process_time()
    # one BLAS thread, as one torch thread: BFGS's eigh and the cell filter's matrix functions on
    # two OpenBLAS threads took 2.3x the wall time per step with another worker on the machine
    with threadpool_limits(limits=1):
        record, cif = _search(formula, settings, None if cache is None else Path(cache))
    # wall time, and this process's CPU time (the cost on a core of its own)
    record["seconds"] = round(time.perf_counter() - t0, 2)
    record["cpu_seconds"] = round(time.process_time() - c0, 2)
    return store.save(formula, record, cif) | {"resumed": False}


def _empty(formula: str, note: str) -> dict:
    return {"formula": formula, "prototype": "", "spacegroup": "", "formation_energy_relaxed": None,
            "e_hull_relaxed": None, "relax_converged": None, "relax_note": note, "tried": 0}


def _search(formula: str, settings: RelaxSettings, cache: Path | None) -> tuple[dict, str | None]:
    from discovery.structure.cif import cif_text, spacegroup
    from discovery.structure.derivatives import derivatives
    from discovery.structure.energy import e_hull, formation_energy
    from discovery.structure.prototypes import propose
    from discovery.structure.random_search import random_structures
    from discovery.structure.relax import model_version, relax, uncovered_elements
    from discovery.structure.volume import with_volume_floor

    comp = _parse(formula)
    if comp is None:
        return _empty(formula, f"formula {formula!r} is not a composition"), None
    missing = uncovered_elements(comp)
    if missing:
        return _empty(formula, f"element {', '.join(missing)} not covered by CHGNet (H..Pu)"), None
    proposals = propose(comp, max(settings.prescreen, settings.max_prototypes), settings.max_atoms)
    # ordered derivatives join whichever pool is prescreened: the templates', else the random one
    ordered = derivatives(comp, settings.derivatives, settings.max_atoms) if settings.max_prototypes else []
    source = "templates"
    if proposals and settings.max_prototypes:  # --max-prototypes 0 searches randomly
        proposals, failures, screened = _keep_lowest(proposals + ordered, settings.max_prototypes, settings,
                                                     ordered_from=len(proposals))
    else:
        # with the prior, a pool of likely site sets is prescreened as templates are: the table
        # does not say which element takes which site, the short relaxation's energy does
        pool = settings.random_budget
        if settings.random_prior == "mp-wyckoff" and pool:
            pool = max(settings.prescreen, pool)
        drawn = random_structures(comp, pool, settings.seed, settings.max_atoms, settings.random_prior)
        source = "pyxtal"
        keep = settings.random_budget if drawn else settings.max_prototypes
        proposals, failures, screened = _keep_lowest(drawn + ordered, keep, settings)
    if screened and not proposals:
        return _empty(formula, f"every relaxation failed ({screened} tried): {failures[0]}") | {
            "tried": screened}, None
    if not proposals:
        kind = comp.reduced_composition.anonymized_formula
        return _empty(formula, f"no AFLOW prototype fits {kind} within {settings.max_atoms} atoms and "
                               "pyxtal placed no random structure"), None
    relaxed, energies = [], []  # relaxed: (label, Relaxed) in the order of likelihood
    for proposal in proposals:
        res = relax(with_volume_floor(proposal.structure), settings)
        energies.append([proposal.label, round(res.energy_per_atom, 6) if res.ok else None])
        if not res.ok:
            failures.append(res.note)
            continue
        relaxed.append((proposal.label, res))
    tried = max(len(proposals), screened)
    if not relaxed:
        return _empty(formula, f"every relaxation failed ({tried} tried): {failures[0]}") | {
            "tried": tried}, None
    pick, reranked, rerank_notes = _rerank(comp, relaxed, settings)
    best_label, best = relaxed[pick]
    try:
        ef = formation_energy(comp, best.energy_per_atom, cache)
    except RuntimeError as exc:
        return _empty(formula, f"no elemental reference: {exc}") | {"tried": tried}, None
    if reranked["rerank_energy_per_atom"] is not None:  # the re-ranker's own view, its own references
        try:
            reranked["rerank_formation_energy"] = round(formation_energy(
                comp, reranked["rerank_energy_per_atom"], cache, model=settings.rerank), 6)
        except RuntimeError as exc:
            rerank_notes.append(f"no {reranked['rerank_model']} elemental reference: {exc}")
    eh, decomposition, hull_note = e_hull(comp.reduced_formula, ef)
    notes = []
    if source == "pyxtal":
        prior = " (MP Wyckoff prior)" if settings.random_prior == "mp-wyckoff" else ""
        pooled = f" (of {screened} prescreened)" if screened else ""
        derived = f" and {len(ordered)} ordered derivatives of templates" if ordered else ""
        notes.append(f"no AFLOW prototype fits: best of {len(proposals)} random pyxtal "
                     f"structures{prior}{derived}{pooled}")
    notes += rerank_notes
    if not best.converged:
        notes.append(f"forces above {settings.fmax} eV/Å after {settings.max_steps} steps")
    if failures:
        notes.append(f"{len(failures)} of {tried} relaxations discarded ({failures[0]})")
    if hull_note:
        notes.append(hull_note)
    record = {"formula": formula, "prototype": best_label, "spacegroup": spacegroup(best.structure),
              "energy_per_atom": round(best.energy_per_atom, 6), "formation_energy_relaxed": round(ef, 6),
              "e_hull_relaxed": None if not math.isfinite(eh) else round(eh, 6),
              "decomposition_relaxed": decomposition, "relax_converged": best.converged,
              "relax_steps": best.steps, "relax_note": "; ".join(notes), "tried": tried,
              "prescreened": screened, "relaxed_energies": energies, "model": model_version()} | reranked
    return record, cif_text(best.structure)


def _lowest(energies: Sequence[float]) -> int:
    """Index of the lowest energy; one within TIE of a likelier (earlier) one loses to it."""
    best = 0
    for i, e in enumerate(energies):
        if e < energies[best] - TIE:
            best = i
    return best


def _rerank(comp, relaxed: list, settings: RelaxSettings) -> tuple[int, dict, list[str]]:
    """Which of ``relaxed`` ((label, Relaxed), likeliest first) to keep, the record's re-ranking
    fields and notes. CHGNet's lowest (``_lowest``), unless ``settings.rerank`` re-relaxes the
    ``rerank_top`` lowest (distinct ones: ``_distinct``) and at least two of those succeed: then
    its lowest (same tie rule; with ``rerank_tie`` 'mean', ``_pick`` may keep another of
    its tie, and a note says so), and ``reranked`` holds each finalist's [label, CHGNet energy, its
    energy]. The kept structure's re-relaxed energy (``rerank_energy_per_atom``) is recorded
    whenever it has one, a single relaxed structure included: the report's formation energy
    averages the two potentials'. A composition with an element the re-ranker lacks keeps
    CHGNet's lowest with a note saying so."""
    from discovery.structure.relax import covered, relax, rerank_version

    lowest = _lowest([res.energy_per_atom for _, res in relaxed])
    kept = {"rerank_model": None, "reranked": None, "rerank_changed": False, "rerank_energy_per_atom": None,
            "rerank_formation_energy": None}
    if settings.rerank == "none":
        return lowest, kept, []
    model = rerank_version(settings.rerank)
    if not covered(comp, settings.rerank):
        return lowest, kept, [f"{model} lacks an element of {comp.reduced_formula}: CHGNet's lowest kept"]
    order = sorted(range(len(relaxed)), key=lambda i: relaxed[i][1].energy_per_atom)
    if settings.rerank_distinct:  # CHGNet's pick stands for its structure, whatever the labels
        finalists = _distinct(relaxed, [lowest, *(i for i in order if i != lowest)], settings.rerank_top)
    else:
        finalists = order[:settings.rerank_top]
    finalists.sort()  # back in the order of likelihood
    judged = {i: relax(relaxed[i][1].structure, settings, model=settings.rerank) for i in finalists}
    fine = [i for i in finalists if judged[i].ok]
    if len(fine) < 2:  # nothing to compare: CHGNet's lowest, with the re-ranker's energy where it has one
        energy = round(judged[lowest].energy_per_atom, 6) if lowest in fine else None
        return lowest, kept | {"rerank_model": model if energy is not None else None,
                               "rerank_energy_per_atom": energy}, []
    chgnet = [relaxed[i][1].energy_per_atom for i in fine]
    own = [judged[i].energy_per_atom for i in fine]
    at, first = _pick(chgnet, own, settings.rerank_tie)
    pick = fine[at]
    rows = [[relaxed[i][0], round(relaxed[i][1].energy_per_atom, 6),
             round(judged[i].energy_per_atom, 6) if judged[i].ok else None] for i in finalists]
    notes, why = [], f"{model} put it lowest"
    if at != first:
        gap = 500 * (chgnet[first] + own[first] - chgnet[at] - own[at])
        notes.append(f"{model} tied it with {relaxed[fine[first]][0]} within {1000 * TIE:.0f} meV/atom; "
                     f"the mean of the two potentials put it {gap:.0f} meV/atom lower")
        why = "kept on the mean"
    if pick != lowest:
        gap = 1000 * (relaxed[pick][1].energy_per_atom - relaxed[lowest][1].energy_per_atom)
        notes.append(f"{why}; CHGNet put {relaxed[lowest][0]} {gap:.0f} meV/atom below it")
    return pick, kept | {"rerank_model": model, "reranked": rows, "rerank_changed": pick != lowest,
                         "rerank_energy_per_atom": round(judged[pick].energy_per_atom, 6)}, notes


def _pick(chgnet: Sequence[float], own: Sequence[float], tie: str) -> tuple[int, int]:
    """(kept, the re-ranker's pick) among finalists (likeliest first) with CHGNet's and the
    re-ranker's (``own``) energies per atom. The pick is ``_lowest`` on ``own``; with ``tie`` 'mean',
    another within TIE of it on ``own`` that the mean of the two energies puts more than TIE below
    it is kept instead (the lowest such on the mean; the likelier of equals)."""
    pick = _lowest(own)
    if tie != "mean":
        return pick, pick
    mean = [(c + e) / 2 for c, e in zip(chgnet, own, strict=True)]
    tied = [i for i, e in enumerate(own) if e <= own[pick] + TIE]
    lowest = min(tied, key=lambda i: (mean[i], i))
    return (lowest if mean[lowest] < mean[pick] - TIE else pick), pick


def _distinct(relaxed: list, order: list[int], top: int) -> list[int]:
    """One index for each of the first ``top`` distinct structures in ``order`` (pymatgen's
    StructureMatcher, default tolerances; fewer when fewer differ): a template's orderings and
    two assignments of one template often relax to one structure, and a re-ranker given three
    copies compares nothing. ``order[0]`` stands for its structure; any other structure for its
    likeliest relaxation (smallest index), which wins TIE as that structure would have."""
    from pymatgen.analysis.structure_matcher import StructureMatcher

    matcher, groups = StructureMatcher(), []
    for i in order:
        s = relaxed[i][1].structure
        same = next((g for g in groups if matcher.fit(s, relaxed[g[0]][1].structure)), None)
        if same is None:
            groups.append([i])
        else:
            same.append(i)
    return [g[0] if n == 0 else min(g) for n, g in enumerate(groups[:top])]


def _keep_lowest(proposals: list, keep: int, settings: RelaxSettings,
                 ordered_from: int | None = None) -> tuple[list, list[str], int]:
    """More than ``keep`` proposals: the ``keep`` lowest after the prescreen, in the order of
    likelihood (a tie goes to the likelier), the prescreen's failure notes and how many it tried;
    otherwise the proposals as they are (none for ``keep`` 0: --max-prototypes 0 searches randomly).
    Proposals from index ``ordered_from`` on (ordered derivatives beside templates) take at most
    half of the ``keep`` places (rounded up) while templates are left to take the rest: a template's orderings
    are many and relax alike (four took the Heusler Eu2MgTl's place), the templates are distinct."""
    if keep == 0:
        return [], [], 0
    if len(proposals) <= keep:
        return proposals, [], 0
    ranked, failures = _prescreen(proposals, settings)
    chosen, ordered = [], 0
    for i, p in ranked:
        if ordered_from is not None and i >= ordered_from:
            if ordered >= (keep + 1) // 2:
                continue
            ordered += 1
        chosen.append((i, p))
        if len(chosen) == keep:
            break
    # too few templates survived the prescreen: the next derivatives fill their places
    taken = {i for i, _ in chosen}
    chosen += [r for r in ranked if r[0] not in taken][:keep - len(chosen)]
    kept = [p for _, p in sorted(chosen, key=lambda r: r[0])]
    return kept, failures, len(ranked) + len(failures)


def _prescreen(proposals: list, settings: RelaxSettings) -> tuple[list[tuple[int, object]], list[str]]:
    """(index, proposal) after ``prescreen_steps`` optimizer steps, lowest energy first (within
    PRESCREEN_TIE the likelier template first), each proposal starting where its short relaxation
    stopped; and the notes of those that failed."""
    from dataclasses import replace

    from discovery.structure.prototypes import Proposal
    from discovery.structure.relax import relax
    from discovery.structure.volume import with_volume_floor

    short = replace(settings, max_steps=settings.prescreen_steps)
    done, failures = [], []
    for i, proposal in enumerate(proposals):
        res = relax(with_volume_floor(proposal.structure), short)
        if res.ok:
            done.append((res.energy_per_atom, i, Proposal(proposal.label, res.structure, proposal.score)))
        else:
            failures.append(res.note)
    done.sort(key=lambda d: (round(d[0] / PRESCREEN_TIE), d[1]))
    return [(i, p) for _, i, p in done], failures


@dataclass
class StageResult:
    """What the stage did: records in candidate order, and the wall time."""

    records: list[dict]
    wall_seconds: float
    directory: Path

    def summary(self, settings: RelaxSettings) -> dict:
        fresh = [r for r in self.records if not r.get("resumed")]
        seconds = {r["formula"]: r.get("seconds") for r in self.records}
        timed = [s for s in seconds.values() if s is not None]
        return {"candidates": len(self.records), "relaxed_now": len(fresh),
                "resumed": len(self.records) - len(fresh),
                "with_structure": sum(bool(r.get("cif_name")) for r in self.records),
                "model": next((r["model"] for r in self.records if r.get("model")), None),
                "rerank_model": next((r["rerank_model"] for r in self.records if r.get("rerank_model")),
                                     None),
                "rerank_changed": sum(bool(r.get("rerank_changed")) for r in self.records),
                "settings": settings.to_dict(), "directory": self.directory.name,
                "seconds": {"wall": round(self.wall_seconds, 2),
                            "per_candidate_mean": round(sum(timed) / len(timed), 2) if timed else None,
                            "per_candidate": seconds,
                            "cpu_per_candidate": {r["formula"]: r.get("cpu_seconds") for r in self.records}}}


def run_stage(formulas: Sequence[str], settings: RelaxSettings, directory: Path, engine: str = "local",
              scheduler: str | None = None, workers: int | None = None, progress: bool = False,
              cache: Path | None = None) -> StageResult:
    """Relax every formula (one task each) into ``directory``; records in the order given."""
    from discovery.structure import require_extra

    require_extra()
    if engine not in ("local", "dask"):
        raise ConfigError(f"unknown engine {engine!r}; use local or dask")
    directory = Path(directory)
    StructureStore(directory, settings.digest())  # creates the folder, clears interrupted writes
    formulas = list(dict.fromkeys(formulas))
    t0 = time.perf_counter()
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(formulas), unit="candidate", desc="relax structures")
    args = (settings, str(directory.resolve()), None if cache is None else str(cache))
    records: dict[str, dict] = {}
    try:
        stream = (_local(formulas, args) if engine == "local"
                  else _dask(formulas, args, directory, scheduler, workers))
        for formula, record in stream:
            records[formula] = record
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return StageResult([records[f] for f in formulas], time.perf_counter() - t0, directory)


def _local(formulas: Iterable[str], args: tuple) -> Iterable[tuple[str, dict]]:
    for formula in formulas:
        yield formula, relax_candidate(formula, *args)


def _dask(formulas: Sequence[str], args: tuple, directory: Path, scheduler: str | None,
          workers: int | None) -> Iterable[tuple[str, dict]]:
    import contextlib
    import logging

    from dask.distributed import as_completed

    from discovery.engines.dask import DaskEngine, _logger_level, _quiet

    # as `discover run --engine dask`: Dask's info lines stay off the console unless --verbose
    with _logger_level("distributed", logging.ERROR) if _quiet() else contextlib.nullcontext():
        client, cluster = DaskEngine(directory, scheduler, workers)._client()
        try:
            futures = {client.submit(relax_candidate, f, *args, pure=False): f for f in formulas}
            for fut in as_completed(futures):
                yield futures[fut], fut.result()
        finally:
            client.close()
            if cluster is not None:
                cluster.close()


def _cell(record: dict, column: str, folder: str) -> str:
    value = record.get(column)
    if column == "structure_file":
        return f"{folder}/{record['cif_name']}" if record.get("cif_name") else ""
    if value is None:
        return ""
    if isinstance(value, float):
        return FLOAT.format(value)
    return str(value)


def relaxed_formation(record: dict, comp, energy_frames: dict[str, Frame]) -> tuple[float | None, str]:
    """The record's ΔHf (of ``comp``) before any shift and which energy it is (``frame.ENERGIES``):
    the mean of CHGNet's and the re-ranker's where the record has both and the mean's shifts cover
    every element, else CHGNet's (whose shifts were fitted on more compounds)."""
    ef = record.get("formation_energy_relaxed")
    mean = energy_of("mean", ef, record.get("rerank_formation_energy"))
    if mean is not None and "mean" in energy_frames and not energy_frames["mean"].offset(comp)[1]:
        return mean, "mean"
    return ef, "chgnet"


def in_oqmd_frame(record: dict, energy_frames: dict[str, Frame]) -> dict:
    """The record as a report shows it: ``formation_energy_relaxed`` (``relaxed_formation``) moved
    into OQMD's frame by the shipped per-element shifts of that energy and ``e_hull_relaxed`` taken
    from it against OQMD's hull (the frame the hull is in); CHGNet's own values stay as
    ``*_chgnet``. Unchanged without shifts for that energy."""
    from discovery.structure.energy import e_hull

    comp = _parse(record["formula"])
    ef, energy = relaxed_formation(record, comp, energy_frames)
    if ef is None or energy not in energy_frames:
        return record
    shifted, missing = energy_frames[energy].to_oqmd(comp, float(ef))
    eh, decomposition, _ = e_hull(comp.reduced_formula, shifted)
    note = record.get("relax_note") or ""
    if missing:
        unshifted = f"no OQMD-frame shift for {', '.join(missing)} (the potentials' frame)"
        note = "; ".join(filter(None, [note, unshifted]))
    return record | {"formation_energy_chgnet": record["formation_energy_relaxed"],
                     "e_hull_chgnet": record.get("e_hull_relaxed"), "formation_energy_from": energy,
                     "formation_energy_relaxed": round(shifted, 6),
                     "e_hull_relaxed": None if not math.isfinite(eh) else round(eh, 6),
                     "decomposition_relaxed": decomposition, "relax_note": note}


def frame_summary(energy_frames: dict[str, Frame], records: Sequence[dict] = ()) -> dict:
    """What frame the report's relaxed energies are in and how many of ``records`` (as
    ``in_oqmd_frame`` returns them) hold each energy, for the summary."""
    if not energy_frames:
        return {"frame": "CHGNet (Materials Project, MP2020-compatible): no shifts shipped"}
    what = {"chgnet": "CHGNet ΔHf", "mean": "mean of CHGNet's and SevenNet-0's ΔHf"}
    return {"frame": "OQMD (ΔHf minus per-element shifts)",
            "energies": {e: {"what": what[e], "elements": len(f.shifts),
                             "rows": sum(r.get("formation_energy_from") == e for r in records),
                             "fitted_on": f.card.get("fitted_on"),
                             "mae_out_of_fold": f.card.get("mae_out_of_fold")}
                         for e, f in energy_frames.items()}}


def read_report(path: Path) -> pd.DataFrame:
    """A report CSV as text, so the columns written before come back byte for byte."""
    path = Path(path)
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise ConfigError(f"no report at {path}") from None
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise ConfigError(f"cannot read the report {path} ({str(exc).splitlines()[0]})") from None
    if "formula" not in frame:
        raise ConfigError(f"{path} has no 'formula' column: not a discover run report")
    return frame


def attach(report: Path, top: int, settings: RelaxSettings, out: Path | None = None, engine: str = "local",
           scheduler: str | None = None, workers: int | None = None, progress: bool = False,
           cache: Path | None = None) -> tuple[Path, StageResult]:
    """Relax the first ``top`` rows of ``report`` and write it, with the structure columns, to
    ``out`` (default: in place) and its summary beside it; return the CSV path and the result."""
    if not isinstance(top, int) or top < 1:
        raise ConfigError(f"--top must be a whole number >= 1, got {top!r}")
    report = Path(report)
    out = Path(out) if out is not None else report
    if out.suffix != ".csv":
        raise ConfigError(f"--out must name a .csv file, got {out}")
    frame = read_report(report)
    frame = frame.drop(columns=[c for c in COLUMNS.values() if c in frame])  # a rerun replaces them
    folder = structures_dir(out)
    chosen = frame["formula"].head(top).tolist()
    bad = [f for f in chosen if _parse(f) is None]  # the report's fault, not a row to note
    if bad:
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise ConfigError(f"{report}: {bad[0]!r} is not a formula of known elements{more}")
    result = run_stage(chosen, settings, folder, engine, scheduler, workers, progress, cache)
    energy_frames = load_frames()
    result.records = [in_oqmd_frame(r, energy_frames) for r in result.records]
    by_formula = {r["formula"]: r for r in result.records}
    for key, name in COLUMNS.items():
        frame[name] = [_cell(by_formula[f], key, folder.name) if f in by_formula else ""
                       for f in frame["formula"]]
    atomic_write(out, lambda p: frame.to_csv(p, index=False, lineterminator="\n"))
    summary_in = report.with_suffix(".summary.json")
    summary = {}
    if summary_in.is_file():
        try:
            summary = json.loads(summary_in.read_text())
        except ValueError:
            log.warning("%s unreadable: the new summary holds the structure stage only", summary_in)
    summary["structure"] = result.summary(settings) | {
        "energy_frame": frame_summary(energy_frames, result.records)}
    atomic_write(out.with_suffix(".summary.json"),
                 lambda p: p.write_text(json.dumps(summary, indent=2) + "\n"))
    return out, result
