"""Structure stage benchmark (issue 28): recovery, formation energy, relaxed e_hull, cost.

    nice -n 5 python pipelines/bench/bench_structures.py            # every section, resumable
    python pipelines/bench/bench_structures.py --sections ehull --ehull-rows 20
    python pipelines/bench/bench_structures.py --collect     # report what finished, relax nothing
    python pipelines/bench/bench_structures.py --sections rest --only "LiPF6,SmZnPd"  # a subset,
                                       # reported as rest_only beside the full section

Sections (each resumable: finished candidates are records in <cache>/bench_structures/<section>/,
and the report is rewritten after every section):
  library   recovery of the CSPML benchmark's ground-truth crystals whose prototype pymatgen's
            AFLOW library holds (pymatgen's prototype matcher), default settings; StructureMatcher with
            default tolerances against the ground truth.
  ehull     the first rows (in rank order, as a chemist reads them) of a `discover run --n 100000
            --target "bandgap>1.5" --sort e_hull:asc --seed 0` report (--report), default settings:
            relaxed e_hull beside the composition one, and seconds per candidate. The report ranks
            in-domain rows by e_hull + σ first; the lowest raw e_hull rows are the out-of-domain ones
            issue 24 moved down, most of which no template fits.
  formation formation energy of known compounds (OQMD ΔHf from crabnet's tables): the AFLOW
            library's own compounds, then OQMD hull vertices of template stoichiometries (seeded),
            built from templates; CHGNet against OQMD.
  rest      recovery of the other ground-truth crystals (most need pyxtal's random search).

The 90 crystals: cif_files_for_90crystals.zip of github.com/Minoru938/CSPML (MIT licence), placed
at <cache>/cspml/ (or --zip) and unpacked there at run time; never committed. Writes
pipelines/reports/bench_structures.{md,json}.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from discovery.atomic import atomic_write
from discovery.data import cache_dir
from discovery.structure.frame import KNOWN_E_HULL, energy_of, load_frames, shift_cv
from discovery.structure.settings import RelaxSettings
from discovery.structure.stage import frame_summary, in_oqmd_frame, run_stage

REPORTS = Path(__file__).resolve().parents[1] / "reports"
SECTIONS = ("library", "ehull", "formation", "rest")
ZIP_NAME = "cif_files_for_90crystals.zip"
ZIP_SHA256 = "75456f9e5cb1d2191abd35649fcf516b221e53ee96c764e74e124a5428eefac3"
CHUNK = 5
COLLECT = False  # --collect: summarize finished records, relax nothing
WORKERS = 1  # --workers: more than 1 relaxes on a Dask LocalCluster of that many workers
FORMATION_SETTINGS = RelaxSettings(max_prototypes=2, random_budget=0, max_steps=200, max_atoms=12,
                                   prescreen=24, derivatives=0,  # known types: their templates
                                   rerank_distinct=False,  # two finalists at most: their records predate it
                                   rerank_tie="likelier")  # and --rerank-tie (rerun with mean to measure)


def ground_truth(zip_path: Path, work: Path) -> dict[str, object]:
    """Reduced formula -> ground-truth Structure of the 90 crystals (unpacked under ``work``)."""
    import hashlib

    from pymatgen.core import Structure

    if not zip_path.is_file():
        raise SystemExit(f"no {zip_path}: fetch {ZIP_NAME} from github.com/Minoru938/CSPML "
                         f"(CSPML_latest_codes/) and pass --zip PATH")
    if hashlib.sha256(zip_path.read_bytes()).hexdigest() != ZIP_SHA256:
        raise SystemExit(f"{zip_path} is not the expected {ZIP_NAME} (SHA-256 differs)")
    target = work / "cspml_ground_truth"
    if not target.is_dir():
        with zipfile.ZipFile(zip_path) as z:
            for name in z.namelist():
                if "ground_truth_structures/" in name and name.endswith(".cif") and "__MACOSX" not in name:
                    (target / Path(name).name).parent.mkdir(parents=True, exist_ok=True)
                    (target / Path(name).name).write_bytes(z.read(name))
    out = {}
    for path in sorted(target.glob("*.cif")):
        s = Structure.from_file(path)
        out[s.composition.reduced_formula] = s
    return out


def in_library(structures: dict, work: Path) -> dict[str, str]:
    """Formula -> AFLOW label of the library prototype that matches the ground truth (cached)."""
    saved = work / "in_library.json"
    if saved.is_file():
        return json.loads(saved.read_text())

    from discovery.structure.prototypes import prototype_matcher

    matcher = prototype_matcher()
    hits = {}
    for formula, s in structures.items():
        found = matcher.get_prototypes(s)
        if found:
            hits[formula] = found[0]["tags"]["aflow"]
    atomic_write(saved, lambda p: p.write_text(json.dumps(hits, indent=1)))
    return hits


def recovery(formulas: list[str], truth: dict, folder: Path, settings: RelaxSettings, checkpoint) -> dict:
    from pymatgen.analysis.structure_matcher import StructureMatcher
    from pymatgen.core import Structure

    matcher = StructureMatcher()

    def summarize(records: list[dict]) -> dict:
        rows = []
        for r in records:
            ok = False
            if r.get("cif_name"):
                ok = bool(matcher.fit(Structure.from_file(folder / r["cif_name"]), truth[r["formula"]]))
            rows.append({"formula": r["formula"], "recovered": ok, "prototype": r.get("prototype", ""),
                         "spacegroup": r.get("spacegroup", ""), "truth_spacegroup":
                         truth[r["formula"]].get_space_group_info(symprec=0.1)[0],
                         "seconds": r.get("seconds"), "cpu_seconds": r.get("cpu_seconds"),
                         "note": r.get("relax_note", "")})
        return {"candidates": len(rows), "recovered": sum(r["recovered"] for r in rows),
                "seconds_mean": _mean([r["seconds"] for r in rows]),
                "cpu_seconds_mean": _mean([r["cpu_seconds"] for r in rows]), "rows": rows}

    return staged(formulas, settings, folder, summarize, checkpoint)


def staged(formulas: list[str], settings: RelaxSettings, folder: Path, summarize, checkpoint) -> dict:
    """Relax ``formulas`` in chunks; after each, ``checkpoint(summarize(records so far))`` so a
    run stopped part way still reports what it measured (the records resume it)."""
    section: dict = {}
    if COLLECT:  # report the finished records only
        from discovery.structure.store import StructureStore

        store = StructureStore(folder, settings.digest())
        records = [r for f in formulas if (r := store.load(f)) is not None]
        section = summarize(records) | {"requested": len(formulas), "settings": settings.to_dict()}
        checkpoint(section)
        return section
    chunk = CHUNK if WORKERS == 1 else 10 * WORKERS  # a Dask cluster per chunk: fewer, larger ones
    for stop in range(chunk, len(formulas) + chunk, chunk):
        result = run_stage(formulas[:stop], settings, folder, progress=True,
                           **({"engine": "dask", "workers": WORKERS} if WORKERS > 1 else {}))
        section = summarize(result.records) | {"requested": len(formulas), "settings": settings.to_dict()}
        checkpoint(section)
    return section


def _mean(values) -> float | None:
    v = [x for x in values if x is not None]
    return round(float(np.mean(v)), 2) if v else None


def formation_set(n: int, seed: int) -> pd.DataFrame:
    """Known compounds with an OQMD ΔHf: the AFLOW library's own compounds, then OQMD hull
    vertices (ΔHf < 0) of the library's stoichiometry types, seeded, up to ``n``."""
    from pymatgen.core import Composition

    from discovery.data import load_oqmd_formation_enthalpy
    from discovery.encoding import parse_formulas
    from discovery.stability import default_hulls
    from discovery.structure.prototypes import library, reduced_amounts

    oqmd = pd.concat([load_oqmd_formation_enthalpy(s) for s in ("train", "val", "test")], ignore_index=True)
    oqmd = oqmd[oqmd["formation_enthalpy"].abs() < 5]
    oqmd["reduced"] = [Composition(f).reduced_formula for f in oqmd["formula"]]
    oqmd = oqmd.sort_values("formation_enthalpy").drop_duplicates("reduced")
    types = {tuple(sorted(t.amounts)) for t in library() if len(t.elements) > 1
             and len(t.structure.get_primitive_structure()) <= FORMATION_SETTINGS.max_atoms}
    own = {t.structure.composition.reduced_formula for t in library() if len(t.elements) > 1}
    first = oqmd[oqmd["reduced"].isin(own)]
    rest = oqmd[~oqmd["reduced"].isin(own) & (oqmd["formation_enthalpy"] < 0)]
    kind = [tuple(sorted(reduced_amounts(Composition(f))[1])) for f in rest["reduced"]]
    rest = rest[[k in types and len(k) <= 3 for k in kind]]
    hull = default_hulls().evaluate(parse_formulas(rest["reduced"].tolist()).amounts,
                                    rest["formation_enthalpy"].to_numpy())
    rest = rest[np.abs(hull.e_hull) < 1e-6]
    rest = rest.sample(frac=1.0, random_state=seed)
    out = pd.concat([first.sort_values("reduced"), rest], ignore_index=True).head(n)
    return out[["reduced", "formation_enthalpy"]].rename(columns={"reduced": "formula"})


def formation(n: int, seed: int, folder: Path, checkpoint) -> dict:
    saved = folder.parent / f"formation_set_n{n}_seed{seed}.csv"
    if saved.is_file():
        ref = pd.read_csv(saved)
    else:
        ref = formation_set(n, seed)
        ref.to_csv(saved, index=False)
    oqmd = dict(zip(ref["formula"], ref["formation_enthalpy"], strict=True))
    above = oqmd_e_hull(ref)

    def summarize(records: list[dict]) -> dict:
        rows = [{"formula": r["formula"], "oqmd": round(float(oqmd[r["formula"]]), 4),
                 "oqmd_e_hull": above[r["formula"]],
                 "chgnet": r.get("formation_energy_relaxed"), "rerank": r.get("rerank_formation_energy"),
                 "prototype": r.get("prototype", ""),
                 "seconds": r.get("seconds"), "cpu_seconds": r.get("cpu_seconds"),
                 "note": r.get("relax_note", "")} for r in records]
        err = np.array([r["chgnet"] - r["oqmd"] for r in rows if r["chgnet"] is not None])
        shifted = shift_cv([r["formula"] for r in rows if r["chgnet"] is not None], err)
        return {"compounds": len(rows), "with_energy": len(err), "per_element_shifts_cv": shifted,
                "against_mp": against_mp(rows), "rerank_energy": rerank_energy(rows),
                "mae": round(float(np.abs(err).mean()), 4) if len(err) else None,
                "median_abs_error": round(float(np.median(np.abs(err))), 4) if len(err) else None,
                "mean_error": round(float(err.mean()), 4) if len(err) else None,
                "seconds_mean": _mean([r["seconds"] for r in rows]),
                "cpu_seconds_mean": _mean([r["cpu_seconds"] for r in rows]), "rows": rows}

    return staged(ref["formula"].tolist(), FORMATION_SETTINGS, folder, summarize, checkpoint)


def oqmd_e_hull(ref: pd.DataFrame) -> dict[str, float]:
    """Formula -> how far its OQMD ΔHf lies above the hull of OQMD's other phases (eV/atom; 0 on
    it): beyond ``KNOWN_E_HULL`` the OQMD entry is a hypothetical or metastable structure's."""
    from discovery.encoding import parse_formulas
    from discovery.stability import default_hulls

    batch = parse_formulas(ref["formula"].tolist())
    batch.raise_first()
    hull = default_hulls().evaluate(batch.amounts, ref["formation_enthalpy"].to_numpy())
    return {f: round(max(float(e), 0.0), 4) for f, e in zip(ref["formula"], hull.e_hull, strict=True)}


def rerank_energy(rows: list[dict]) -> dict | None:
    """The re-ranker's own formation energy (its elemental references; ``rerank_formation_energy``)
    against OQMD beside CHGNet's and beside their mean, on the rows that have both: which
    potential's energies the report's formation energy should come from."""
    both = [r for r in rows if energy_of("mean", r["chgnet"], r.get("rerank")) is not None]
    if not both:
        return None
    formulas = [r["formula"] for r in both]
    out = {"compounds": len(both)}
    oqmd = np.array([r["oqmd"] for r in both])
    values = {"chgnet": [r["chgnet"] for r in both], "rerank": [r["rerank"] for r in both],
              "mean": [energy_of("mean", r["chgnet"], r["rerank"]) for r in both]}
    known = np.array([r.get("oqmd_e_hull", np.inf) <= KNOWN_E_HULL for r in both])
    out["known"] = {"compounds": int(known.sum()), "e_hull_within": KNOWN_E_HULL,
                    "left_out": {r["formula"]: r["oqmd_e_hull"] for r, k in zip(both, known, strict=True)
                                 if not k and "oqmd_e_hull" in r}}
    for key, value in values.items():
        err = np.array(value) - oqmd
        out[key] = {"mae": round(float(np.abs(err).mean()), 4), "mean_error": round(float(err.mean()), 4),
                    "per_element_shifts_cv": shift_cv(formulas, err),
                    "known_shifts_cv": shift_cv([f for f, k in zip(formulas, known, strict=True) if k],
                                                err[known])}
    return out


@functools.cache
def mp_ground_states() -> dict[str, float]:
    """The Materials Project's lowest ΔHf per reduced formula (Bartel et al.'s CritExam table),
    read once per process: the formation section's summary runs after every chunk."""
    from pymatgen.core import Composition

    from discovery.data import load_crabnet_table

    mp = pd.concat([load_crabnet_table(f"critexam_ef_{s}") for s in ("train", "val", "test")])
    mp["reduced"] = [Composition(f).reduced_formula for f in mp["formula"]]
    return mp.groupby("reduced")["formation_energy"].min().to_dict()


def against_mp(rows: list[dict]) -> dict:
    """Where the error comes from: on the compounds that the Materials Project's ground-state ΔHf
    (Bartel et al.'s CritExam table, MP's DFT) also holds, MP against OQMD (the two DFT databases'
    own disagreement, which no potential trained on MP can undercut) and CHGNet against MP (the
    potential and the templates), each raw and after per-element shifts out of fold."""
    ground = mp_ground_states()
    both = [r for r in rows if r["chgnet"] is not None and r["formula"] in ground]
    formulas = [r["formula"] for r in both]
    oqmd, chgnet = np.array([r["oqmd"] for r in both]), np.array([r["chgnet"] for r in both])
    ref = np.array([ground[f] for f in formulas])
    out = {"compounds": len(both), "source": "crabnet CritExam__Ef (MP), lowest ΔHf per composition"}
    pairs = (("mp_vs_oqmd", ref - oqmd), ("chgnet_vs_mp", chgnet - ref), ("chgnet_vs_oqmd", chgnet - oqmd))
    for name, err in pairs:
        cv = shift_cv(formulas, err)
        out[name] = {"mae": round(float(np.abs(err).mean()), 4), "mae_shifted_cv": cv and cv["mae"]}
    return out


def ehull(report: Path, n_rows: int, folder: Path, checkpoint) -> dict:
    df = pd.read_csv(report, keep_default_na=False, na_values=[""])
    picked = df[np.isfinite(df["e_hull [eV/atom]"])].sort_values("rank", kind="mergesort").head(n_rows)
    composition = dict(zip(picked["formula"], picked["e_hull [eV/atom]"], strict=True))
    in_domain = dict(zip(picked["formula"], picked["e_hull_in_domain"].astype(bool), strict=True))
    energy_frames = load_frames()  # as `discover relax` reports it: in OQMD's frame where shifts ship

    def summarize(records: list[dict]) -> dict:
        records = [in_oqmd_frame(r, energy_frames) for r in records]
        rows = [{"formula": r["formula"], "e_hull": round(float(composition[r["formula"]]), 4),
                 "in_domain": bool(in_domain[r["formula"]]),
                 "e_hull_relaxed": r.get("e_hull_relaxed"), "prototype": r.get("prototype", ""),
                 "spacegroup": r.get("spacegroup", ""), "seconds": r.get("seconds"),
                 "cpu_seconds": r.get("cpu_seconds"), "note": r.get("relax_note", "")} for r in records]
        pairs = [(r["e_hull"], r["e_hull_relaxed"]) for r in rows if r["e_hull_relaxed"] is not None]
        mean = _mean([r["seconds"] for r in rows])
        return {"report": str(report), "rows": rows, "with_structure": len(pairs),
                "relaxed_below_0.1": sum(b < 0.1 for _, b in pairs),
                "median_shift": round(float(np.median([b - a for a, b in pairs])), 4) if pairs else None,
                "seconds_mean": mean, "seconds_max": max((r["seconds"] or 0 for r in rows), default=None),
                "cpu_seconds_mean": _mean([r["cpu_seconds"] for r in rows]),
                "relax_top_20_minutes_estimate": round(20 * mean / 60, 1) if mean else None,
                "energy_frame": frame_summary(energy_frames, records)}

    return staged(picked["formula"].tolist(), RelaxSettings(), folder, summarize, checkpoint)


def write_report(data: dict) -> None:
    REPORTS.mkdir(parents=True, exist_ok=True)
    text = json.dumps(data, indent=1) + "\n"
    atomic_write(REPORTS / "bench_structures.json", lambda p: p.write_text(text))
    lines = ["# Structure stage benchmark (issue 28)", "",
             f"Last command: `{data['command']}`; machine: {data['machine']}; model: CHGNet 0.3.0 "
             "(chgnet 0.4.2), one torch thread; where a section's settings say `rerank: sevennet`, "
             "SevenNet-0 (sevenn 0.13.0) re-relaxed CHGNet's `rerank_top` lowest structures and picked "
             "the lowest (sections without the key predate it: CHGNet's lowest); within its 5 meV/atom "
             "tie, the likelier, or with `rerank_tie: mean` the one the mean of the two potentials puts "
             "more than 5 meV/atom lower (sections without the key: the likelier).", ""]
    commands = data.get("section_commands", {})
    if commands:
        lines += ["Each section as measured: "
                  + "; ".join(f"{name}: `{cmd}`" for name, cmd in commands.items()), ""]
    lib, rest = data.get("library"), data.get("rest")
    if lib:
        lines += ["## Recovery: CSPML's 90 ground-truth crystals", "",
                  f"AFLOW library holds the prototype of {data['in_library']} of the {data['crystals']} "
                  "(pymatgen's prototype matcher).", "",
                  f"- in-library: **{lib['recovered']} of {lib['candidates']}** run recovered (of "
                  f"{lib['requested']}; StructureMatcher, default tolerances), {lib['seconds_mean']} s wall "
                  f"and {lib['cpu_seconds_mean']} CPU-s per crystal"]
        if rest:
            total = lib["recovered"] + rest["recovered"]
            if rest["settings"] == lib["settings"]:
                lines.append(f"- the others: {rest['recovered']} of {rest['candidates']} run "
                             f"({rest['seconds_mean']} s per crystal); all: **{total} of "
                             f"{lib['candidates'] + rest['candidates']}** run")
            else:
                changed = {k: lib["settings"].get(k) for k in lib["settings"].keys() | rest["settings"].keys()
                           if rest["settings"].get(k) != lib["settings"].get(k)}
                lines.append(f"- the others, measured with other settings (the library's differ in "
                             f"{changed}): {rest['recovered']} of {rest['candidates']} run "
                             f"({rest['seconds_mean']} s per crystal)")
            sub = data.get("rest_only")
            if sub and sub["settings"] == lib["settings"] != rest["settings"]:
                # the library ran with the new settings, the others partly: the rerun rows replace
                # theirs; a crystal not rerun counts as it was measured before
                newer = {r["formula"]: r["recovered"] for r in sub["rows"]}
                others = sum(newer.get(r["formula"], r["recovered"]) for r in rest["rows"])
                lost = [r["formula"] for r in rest["rows"]
                        if r["recovered"] and not newer.get(r["formula"], True)]
                lines.append(f"- with the library's settings (`rest_only` below reran {sub['candidates']} of "
                             "the others: every one recovered before and those the new proposals could "
                             f"reach): the others {others} of {rest['candidates']}, all "
                             f"**{lib['recovered'] + others} of {lib['candidates'] + rest['candidates']}**; "
                             f"lost among the others: {', '.join(lost) or 'none'}; the "
                             f"{rest['candidates'] - sub['candidates']} not rerun were not recovered before")
            if sub := rest.get("reranked_subset"):
                lines.append(f"- the first {len(sub['crystals'])} of the others rerun with re-ranking "
                             f"(`{sub['command']}`): {sub['recovered']} recovered, against "
                             f"{sub['recovered_chgnet_only']} with CHGNet alone; {sub['cpu_seconds']} CPU-s "
                             f"against {sub['cpu_seconds_chgnet_only']}; SevenNet-0 changed the pick for "
                             f"{', '.join(sub['rerank_changed']) or 'none'}")
        for key in ("library_only", "rest_only"):
            if sub := data.get(key):
                rows = ", ".join(f"{r['formula']} {'yes' if r['recovered'] else 'no'}" for r in sub["rows"])
                lines.append(f"- {key}: {sub['recovered']} of {sub['candidates']} recovered with the "
                             f"settings {sub['settings']} (`{commands.get(key, '')}`), "
                             f"{sub['cpu_seconds_mean']} CPU-s per crystal: {rows}")
        lines += ["", "| formula | recovered | prototype found | space group (truth) | s | note |",
                  "|---|---|---|---|---:|---|"]
        for r in lib["rows"] + (rest["rows"] if rest else []):
            lines.append(f"| {r['formula']} | {'yes' if r['recovered'] else 'no'} | {r['prototype']} | "
                         f"{r['spacegroup']} ({r['truth_spacegroup']}) | {r['seconds']} | {r['note']} |")
        lines.append("")
    form = data.get("formation")
    if form:
        lines += ["## Formation energy: CHGNet on templates against OQMD", "",
                  f"{form['with_energy']} of {form['compounds']} compounds with an energy; MAE "
                  f"**{form['mae']} eV/atom**, median |error| {form['median_abs_error']}, mean error "
                  f"(CHGNet − OQMD) {form['mean_error']}; {form['seconds_mean']} s wall, "
                  f"{form['cpu_seconds_mean']} CPU-s per compound (of {form['requested']} requested; "
                  f"settings {form['settings']}).", ""]
        if cv := form.get("per_element_shifts_cv"):
            lines += [f"With per-element reference shifts into OQMD's frame (ridge {cv['ridge']}, "
                      f"{cv['folds']}-fold, out of fold; `shift_cv`): MAE **{cv['mae']} eV/atom**, median "
                      f"{cv['median_abs_error']}, {cv['mae_without_exploded']} without exploded relaxations "
                      f"({cv['elements']} elements). The shifts fitted on the known ones (below) ship in "
                      "`discovery/models/chgnet_frame/` (`pipelines/ship/fit_energy_frame.py`) and move "
                      "`formation_energy_relaxed` and `e_hull_relaxed` into OQMD's frame.", ""]
        if mp := form.get("against_mp"):
            lines += [f"Where the error comes from, on the {mp['compounds']} of them whose ground-state ΔHf "
                      f"the Materials Project also has ({mp['source']}): MP against OQMD MAE "
                      f"{mp['mp_vs_oqmd']['mae']} "
                      f"raw, {mp['mp_vs_oqmd']['mae_shifted_cv']} after the same shifts (the two DFT "
                      f"databases' own disagreement); CHGNet against MP {mp['chgnet_vs_mp']['mae']} raw, "
                      f"{mp['chgnet_vs_mp']['mae_shifted_cv']} shifted (the potential and the templates); "
                      f"CHGNet against OQMD {mp['chgnet_vs_oqmd']['mae']} raw, "
                      f"{mp['chgnet_vs_oqmd']['mae_shifted_cv']} shifted.", ""]
        if rr := form.get("rerank_energy"):
            def cell(key: str) -> str:
                v, cv = rr[key], rr[key]["per_element_shifts_cv"] or {}
                return (f"{v['mae']} raw, **{cv.get('mae')}** shifted "
                        f"({cv.get('mae_without_exploded')} without exploded)")
            lines += [f"The re-ranker's own formation energy of the kept structure (its energy against "
                      f"its own elemental references, `rerank_formation_energy`) on the {rr['compounds']} "
                      f"compounds that have both, against OQMD, per-element shifts out of fold as above: "
                      f"CHGNet {cell('chgnet')}; SevenNet-0 {cell('rerank')}; the two averaged "
                      f"{cell('mean')}. The mean's shifts, fitted on the known ones, ship in "
                      "`discovery/models/chgnet_sevennet_frame/` (`pipelines/ship/fit_energy_frame.py "
                      "--energy mean`): a report's `formation_energy_relaxed` is the mean wherever both "
                      "potentials gave an energy.", ""]
            if kn := rr.get("known"):
                def known(key: str) -> str:
                    cv = rr[key]["known_shifts_cv"] or {}
                    return f"{cv.get('mae')} (median {cv.get('median_abs_error')})"
                above = sorted(kn["left_out"].items(), key=lambda x: -x[1])
                left = ", ".join(f"{f} +{e:.3f}" for f, e in above)
                lines += [f"**Known compounds**: the {kn['compounds']} of them whose OQMD ΔHf lies within "
                          f"{kn['e_hull_within']} eV/atom of OQMD's own hull (the others' OQMD entry is a "
                          "hypothetical or metastable structure, so a template relaxing below it is no "
                          f"error of the potential; left out, eV/atom above the hull: {left}). Shifts "
                          f"fitted on them out of fold: CHGNet {known('chgnet')}, SevenNet-0 "
                          f"{known('rerank')}, the mean **{known('mean')}** eV/atom. The shipped shifts "
                          "are fitted on these compounds.", ""]
    eh = data.get("ehull")
    if eh:
        lines += ["## Relaxed e_hull on a `discover run` report", "",
                  f"The first {len(eh['rows'])} rows (rank order) of {eh['report']} "
                  f"(of {eh['requested']} requested); {eh['with_structure']} with a structure, "
                  f"{eh['relaxed_below_0.1']} of them with relaxed e_hull < 0.1 eV/atom; median shift "
                  f"{eh['median_shift']} eV/atom. {eh['seconds_mean']} s wall ({eh['cpu_seconds_mean']} "
                  "CPU-s) per candidate on average "
                  f"(max {eh['seconds_max']}): `--relax-top 20` ≈ {eh['relax_top_20_minutes_estimate']} min "
                  "on one worker.", "",
                  "| formula | e_hull | in domain | e_hull_relaxed | prototype | space group | s | note |",
                  "|---|---:|---|---:|---|---|---:|---|"]
        for r in eh["rows"]:
            dom = {True: "yes", False: "no"}.get(r.get("in_domain"), "")
            lines.append(f"| {r['formula']} | {r['e_hull']} | {dom} | {r['e_hull_relaxed']} | "
                         f"{r['prototype']} | {r['spacegroup']} | {r['seconds']} | {r['note']} |")
        lines.append("")
    atomic_write(REPORTS / "bench_structures.md", lambda p: p.write_text("\n".join(lines) + "\n"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sections", default=",".join(SECTIONS))
    ap.add_argument("--zip", type=Path, default=None)
    ap.add_argument("--report", type=Path, default=Path("runs/demo/ehull.csv"))
    ap.add_argument("--ehull-rows", type=int, default=50)
    ap.add_argument("--formation-n", type=int, default=240)
    ap.add_argument("--rest-limit", type=int, default=None, help="Only the first N other crystals.")
    ap.add_argument("--only", default=None,
                    help="Comma-separated crystals: recovery sections on these alone, reported as "
                         "<section>_only beside the full section.")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--collect", action="store_true",
                    help="Write the report from the finished candidates only (relax nothing).")
    ap.add_argument("--workers", type=int, default=1,
                    help="Relax on a Dask LocalCluster of this many workers (one candidate per task).")
    args = ap.parse_args()
    global COLLECT, WORKERS
    COLLECT, WORKERS = args.collect, args.workers
    work = cache_dir() / "bench_structures"
    work.mkdir(parents=True, exist_ok=True)
    path = REPORTS / "bench_structures.json"
    data = json.loads(path.read_text()) if path.is_file() else {}
    data.update(command="python pipelines/bench/bench_structures.py " + " ".join(sys.argv[1:]),
                machine=f"{os.cpu_count()} cores, {platform.machine()}, shared")
    sections = args.sections.split(",")
    for name in sections:
        if name not in SECTIONS:
            raise SystemExit(f"unknown section {name!r}; use {', '.join(SECTIONS)}")
    only = set(args.only.split(",")) if args.only else None
    truth = lib = None
    if {"library", "rest"} & set(sections):
        truth = ground_truth(args.zip or cache_dir() / "cspml" / ZIP_NAME, work)
        lib = in_library(truth, work)
        data.update(crystals=len(truth), in_library=len(lib), library_prototypes=lib)
    if only and truth is not None and (unknown := sorted(only - set(truth))):
        raise SystemExit(f"--only: {', '.join(unknown)} not among the {len(truth)} crystals")
    for name in sections:
        t0 = time.perf_counter()

        key = f"{name}_only" if only and name in ("library", "rest") else name

        def checkpoint(section: dict, name: str = key, t0: float = t0) -> None:
            # the file may hold sections another process measured: replace only this one
            merged = json.loads(path.read_text()) if path.is_file() else {}
            merged |= {k: v for k, v in data.items()
                       if k not in SECTIONS and not k.endswith("_only")
                       and k not in ("wall_seconds", "section_commands")}  # the file's, not the start's
            merged[name] = section
            wall = round(time.perf_counter() - t0, 1)
            if not COLLECT:  # --collect summarizes what a measuring run did: its command and wall time stand
                merged["section_commands"] = merged.get("section_commands", {}) | {name: data["command"]}
                merged["wall_seconds"] = merged.get("wall_seconds", {}) | {name: wall}
            write_report(merged)
            done = len(section.get("rows", []))
            print(f"{name}: {done} of {section['requested']} after {wall} s", flush=True)

        if name == "library":
            chosen = sorted(f for f in lib if not only or f in only)
            recovery(chosen, truth, work / "library", RelaxSettings(), checkpoint)
        elif name == "rest":
            others = sorted(f for f in truth if f not in lib and (not only or f in only))[: args.rest_limit]
            recovery(others, truth, work / "rest", RelaxSettings(), checkpoint)
        elif name == "formation":
            formation(args.formation_n, args.seed, work / "formation", checkpoint)
        elif name == "ehull":
            ehull(args.report, args.ehull_rows, work / "ehull", checkpoint)


if __name__ == "__main__":
    main()
