"""Train and ship the count-pattern WGAN on the OQMD GAN set, judged against PatternSiteRandom.

    python pipelines/train/train_pattern_wgan.py [--iterations 10000] [--run runs/wgan_pattern] [--ship]

The OQMD set is split 90/10 (``discovery.gan.config.split_indices``, seed 0, as the GAN recipe).
The WGAN trains on the 90% and picks its iteration on a validation split it carves from that
90%; the 10% is never seen in training or selection. ``PatternSiteRandom`` is fit on the whole
90%. Both draw 100,000 samples (seed 1); the report gives, against the 10%: distinct, novel
(not in the 90%), held-out hits, precision (hits / novel) and the shares of the three main
count patterns against the 90%'s. Interrupted training resumes from ``--run``.
Writes the model to ``--out`` (default ``<run>/model``; with ``--ship``, discovery/models/wgan_pattern/,
the one ``discover run --generator wgan-pattern`` uses) and the report to
pipelines/reports/wgan_pattern.{md,json} (with ``--ship`` only).
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np

from discovery.atomic import atomic_write
from discovery.data import load_gan_formulas
from discovery.encoding import composition_keys, reduce_counts
from discovery.gan.config import split_indices
from discovery.generation.baselines import PatternSiteRandom
from discovery.generation.metrics import pattern_shares, recovery_metrics
from discovery.generation.pattern_wgan import PatternWGAN
from discovery.generation.registry import shipped_dir
from discovery.generation.training import training_set
from discovery.runtime import set_threads

REPORTS = Path(__file__).resolve().parents[1] / "reports"
PATTERNS = ("2-1-1", "1-1-1", "1-1-1-1")


def judge(counts: np.ndarray, known: np.ndarray, held: np.ndarray, train_shares: dict) -> dict:
    """Distinct, novel, held-out hits and precision (``metrics.recovery_metrics``) and the shares
    of the main count patterns, against the training split's."""
    m = recovery_metrics(counts, known, held)
    shares = {p: 100 * pattern_shares(reduce_counts(counts)).get(p, 0.0) for p in PATTERNS}
    return {"samples": len(counts), "distinct": m["distinct"], "novel": m["novel"],
            "held_out_hits": m["holdout_hits"], "precision_pct": m["precision_pct"],
            "pattern_shares_pct": shares,
            "pattern_max_diff_pts": max(abs(shares[p] - train_shares[p]) for p in PATTERNS)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=10000)
    ap.add_argument("--eval-every", type=int, default=250)
    ap.add_argument("--samples", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--run", type=Path, default=Path("runs/wgan_pattern"))
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="model directory (default RUN/model)")
    ap.add_argument("--ship", action="store_true", help="write the shipped model and the report")
    args = ap.parse_args()
    set_threads(args.threads)
    formulas = load_gan_formulas()["formula"].tolist()
    ts = training_set(formulas)
    tr, te = split_indices(len(ts.counts), 0.1, 0)
    train, test = ts.counts[tr], ts.counts[te]
    gen = PatternWGAN(iterations=args.iterations, eval_every=args.eval_every)
    digest = hashlib.sha256(np.ascontiguousarray(train).tobytes()).hexdigest()
    gen.card.update({"training_data": "oqmd_gan_formulas.csv (90% split, seed 0)",
                     "training_data_sha256": digest})
    gen.fit(train, seed=args.seed, run_dir=args.run, resume=True, log=lambda s: print(s, flush=True))
    known = composition_keys(train)
    held = np.setdiff1d(composition_keys(test), known)  # the held-out compositions not in training
    train_shares = {p: 100 * pattern_shares(reduce_counts(train)).get(p, 0.0) for p in PATTERNS}
    psr = PatternSiteRandom().fit(train)
    rows = {"wgan-pattern": judge(gen.sample_counts(args.samples, seed=1), known, held, train_shares),
            "pattern-random": judge(psr.sample_counts(args.samples, seed=1), known, held, train_shares)}
    gen.card["oqmd_benchmark"] = {**rows["wgan-pattern"], "pattern_random_precision_pct":
                                  rows["pattern-random"]["precision_pct"], "held_out": len(held)}
    out = shipped_dir("wgan-pattern") if args.ship else (args.out or args.run / "model")
    gen.save(out)
    print(f"saved {gen.card['version']} to {out}")
    for name, r in rows.items():
        print(f"{name}: precision {r['precision_pct']:.2f}%, held-out hits {r['held_out_hits']:,}, "
              f"largest pattern-share difference {r['pattern_max_diff_pts']:.1f} pts")
    if not args.ship:
        return
    report = {"train": len(train), "held_out": len(held), "train_pattern_shares_pct": train_shares,
              "training": {k: v for k, v in gen.card["training"].items() if k != "log"}, "rows": rows,
              "version": gen.card["version"]}
    atomic_write(REPORTS / "wgan_pattern.json",
                 lambda p: p.write_text(json.dumps(report, indent=2, default=float) + "\n"))
    fit = gen.card["training"]
    lines = ["# Count-pattern WGAN vs PatternSiteRandom on the OQMD GAN set", "",
             f"Command: `python pipelines/train/train_pattern_wgan.py --iterations {args.iterations} "
             f"--eval-every {args.eval_every} --samples {args.samples} --seed {args.seed} --ship`", "",
             f"Train: 90% of oqmd_gan_formulas.csv ({len(train):,} compositions; the WGAN selects its "
             f"iteration on a 10% validation carve-out of it: iteration {fit['best_iteration']:,} "
             f"of {fit['iterations']:,}). Held out: the other 10%, {len(held):,} compositions, "
             f"never seen in training or selection. {args.samples:,} samples, seed 1. Precision: held-out "
             "compositions among novel distinct samples.", "",
             "| sampler | distinct | novel | held-out hits | precision % | "
             + " | ".join(f"{p} % (train {train_shares[p]:.1f})" for p in PATTERNS)
             + " | max pattern diff pts |",
             "|---|---:|---:|---:|---:|" + "---:|" * len(PATTERNS) + "---:|"]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['distinct']:,} | {r['novel']:,} | {r['held_out_hits']:,} | "
                     f"{r['precision_pct']:.2f} | "
                     + " | ".join(f"{r['pattern_shares_pct'][p]:.1f}" for p in PATTERNS)
                     + f" | {r['pattern_max_diff_pts']:.1f} |")
    lines += ["", "Validation log (selection split):", "",
              "| iteration | precision % | hits | novel | seconds |", "|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['iteration']:,} | {r['precision_pct']:.2f} | {r['hits']:,} | {r['novel']:,} | "
              f"{r['seconds']} |" for r in fit["log"]]
    atomic_write(REPORTS / "wgan_pattern.md", lambda p: p.write_text("\n".join(lines) + "\n"))
    print("\n".join(lines[:10]))


if __name__ == "__main__":
    main()
