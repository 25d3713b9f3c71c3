"""Every shipped generator (the random baselines included) on the MP validation split.

    python pipelines/bench/bench_generators.py --sizes 100000,1000000 [--seed 1] [--skip training|none]
        [--only wgan,substitution] [--extra NAME=MODEL_DIR] [--log NAME=RUN_DIR/log.csv]
        [--update-cards]

For each generator and each size: samples drawn with the same seed, timed (samples/s of
decoded counts on this machine), and judged by ``discovery.generation.metrics``: empty or
unary share, unique, novel, CN / EN shares of the distinct compounds, count-pattern
distance to the MP training split, held-out recovery, yield and precision before and after
the CN + EN screen.

Novelty and held-out are leak-free for every generator: "known" is the MP training split
plus the OQMD GAN training set (everything a shipped generator was trained on), and the
held-out set is the MP validation split minus the compositions also in the OQMD set (the
WGAN saw those). With ``--skip training`` (default) each generator skips its own training set
(``TRAINING_SET``: the LM the union of MP training split and OQMD set, the WGANs the OQMD set,
the others the MP training split), as ``discover run`` skips the known-materials index: none of
it is held out, so the held-out measurement stays honest, and a generator that skipped the full
index could never propose a compound the index holds and its training data does not.
Writes ``pipelines/reports/bench_generators.md`` and ``.json``;
``--update-cards`` stores the smallest size's figures in each shipped card (``benchmark``),
which ``discover generators`` shows. ``--log`` adds quality-against-training-iterations
rows from a training log (``log.csv``: a ``step`` column and the metrics it recorded).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import sys
from pathlib import Path

import numpy as np

from discovery.benchmarks.generators import bench_one, evaluation_sets, training_keys
from discovery.generation.registry import generator_names, load_generator, shipped_dir

REPORTS = Path(__file__).resolve().parents[1] / "reports"
COLUMNS = [  # (key, header, digits)
    ("empty_or_unary_pct", "empty/unary %", 2), ("unique_pct", "unique %", 1), ("novel_pct", "novel %", 1),
    ("cn_pct", "CN %", 1), ("en_pct", "EN %", 1), ("pattern_distance_pts", "pattern TV pts", 1),
    ("holdout_hits", "held-out hits", 0), ("recovery_pct", "recovery %", 2),
    ("precision_pct", "precision %", 2), ("yield_per_100k", "yield /100k", 0),
    ("precision_cnen_pct", "precision CN+EN %", 2), ("yield_cnen_per_100k", "yield CN+EN /100k", 0),
    ("samples_per_s", "samples/s", 0),
]


def _pairs(values: list[str], option: str) -> list[tuple[str, Path]]:
    out = []
    for v in values:
        name, sep, path = v.partition("=")
        if not sep:
            raise SystemExit(f"{option} {v!r}: use NAME=PATH")
        out.append((name, Path(path)))
    return out


def log_rows(path: Path, max_rows: int = 12) -> tuple[list[str], list[dict]]:
    """Evenly spaced rows of a training log (always the last), loss columns left out."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return [], []
    cols = [c for c in rows[0] if "loss" not in c]
    idx = sorted(set(np.linspace(0, len(rows) - 1, min(max_rows, len(rows))).round().astype(int)))
    return cols, [{c: rows[i][c] for c in cols} for i in idx]


def _fmt(v, digits: int) -> str:
    return "-" if v is None else f"{v:,.{digits}f}"


def _cell(value: str) -> str:
    try:
        x = float(value)
    except ValueError:
        return str(value)
    return f"{x:,.0f}" if x.is_integer() else f"{x:,.2f}"


def markdown(results: list[dict], logs: dict, meta: dict) -> str:
    lines = ["# Generators on the MP validation split", "",
             f"Command: `{meta['command']}`", "",
             f"Machine: {meta['machine']} ({meta['cpus']} CPUs, shared with other jobs while measured); "
             f"seed {meta['seed']} for every generator.", "",
             "Skipped while sampling: " + ("each generator's own training set."
                                           if meta.get("skip", "none") == "training" else "nothing."), "",
             f"Known (not novel): MP training split + OQMD GAN set, {meta['known']:,} compositions. "
             f"Held-out: MP validation split minus OQMD, {meta['holdout']:,} of {meta['validation']:,} "
             "compositions. CN / EN: shares of distinct compounds (smact14, the pipeline's screen). "
             "Precision: held-out among novel distinct compounds; CN+EN: among those passing the "
             "screen. Pattern TV: total-variation distance of count-pattern shares to the MP "
             "training split (points).", ""]
    for n in sorted({r["n"] for r in results}):
        header = "| generator | version | " + " | ".join(h for _, h, _ in COLUMNS) + " |"
        lines += [f"## {n:,} samples", "", header, "|---|---|" + "---:|" * len(COLUMNS)]
        for r in (r for r in results if r["n"] == n):
            lines.append(f"| {r['generator']} | {r['version']} | "
                         + " | ".join(_fmt(r.get(k), d) for k, _, d in COLUMNS) + " |")
        lines.append("")
    for name, (path, cols, rows) in logs.items():
        lines += [f"## {name}: quality against training iterations", "",
                  f"From `{path}` (the metrics that training run logged, on its own validation data).", "",
                  "| " + " | ".join(cols) + " |", "|" + "---:|" * len(cols)]
        lines += ["| " + " | ".join(_cell(row[c]) for c in cols) + " |" for row in rows]
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="100000,1000000", help="comma-separated sample counts")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--only", default="", help="comma-separated registry names (default: all)")
    ap.add_argument("--extra", action="append", default=[], help="NAME=MODEL_DIR of a registered kind")
    ap.add_argument("--log", action="append", default=[], help="NAME=PATH of a training log.csv")
    ap.add_argument("--out", type=Path, default=REPORTS / "bench_generators")
    ap.add_argument("--update-cards", action="store_true", help="store the first size's figures in the cards")
    ap.add_argument("--skip", choices=("training", "none"), default="training",
                    help="each generator skips its own training set (default), or nothing")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    names = args.only.split(",") if args.only else generator_names()
    gens = [(name, name, None) for name in names]
    gens += [(f"{name} ({path})", name, path) for name, path in _pairs(args.extra, "--extra")]
    sets = evaluation_sets()
    results = []
    for label, kind, path in gens:
        skip = training_keys(kind) if args.skip == "training" else None
        for n in sizes:
            gen = load_generator(kind, path)  # fresh per size: nothing computed for one size is reused
            r = bench_one(gen, n, args.seed, sets, skip=skip)
            r.update({"generator": label, "version": gen.card.get("version", "unknown"), "n": n,
                      "skip": args.skip, "skipped_keys": 0 if skip is None else len(skip)})
            results.append(r)
            print(f"{label:16s} n={n:>9,}  precision {r['precision_pct']:.2f}%  "
                  f"CN+EN {r['precision_cnen_pct']:.2f}%  yield {r['yield_per_100k']:.0f}/100k  "
                  f"{r['samples_per_s']:,.0f} samples/s", flush=True)
        if args.update_cards and path is None:
            first = next(r for r in results if r["generator"] == label and r["n"] == sizes[0])
            card_path = shipped_dir(kind) / "card.json"
            card = json.loads(card_path.read_text())
            card["benchmark"] = {k: first[k] for k, _, _ in COLUMNS if k in first}
            card["benchmark"].update({"samples": sizes[0], "seed": args.seed,
                                      "report": "pipelines/reports/bench_generators.md"})
            card_path.write_text(json.dumps(card, indent=2) + "\n")
    logs = {}
    for name, path in _pairs(args.log, "--log"):
        cols, rows = log_rows(path)
        logs[name] = (str(path), cols, rows)
    meta = {"command": "python pipelines/bench/" + " ".join([Path(__file__).name, *sys.argv[1:]]),
            "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
            "seed": args.seed, "skip": args.skip, "known": len(sets["known"]),
            "holdout": len(sets["holdout"]), "validation": sets["validation"]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text(markdown(results, logs, meta) + "\n")
    args.out.with_suffix(".json").write_text(json.dumps({"meta": meta, "results": results,
                                                         "logs": {k: v[2] for k, v in logs.items()}},
                                                        indent=2) + "\n")
    print(f"wrote {args.out.with_suffix('.md')} and .json")


if __name__ == "__main__":
    main()
