"""Compare GAN training runs at equal wall time from their log.csv files.

    python research/compare_gan_runs.py NAME=path/to/log.csv ... [--out REPORT.md]

For each run, every logged evaluation (10,000 samples, seed 12345) with the training
wall time it took to get there; runs that shared the CPU (or a GPU) equally are comparable
row by row. Columns a log lacks are left out (``train_gan_jax.py`` logs no novelty, CN or EN).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

COLUMNS = {"step": "iteration", "wall_seconds": "train s", "holdout_recovered_pct": "recovered % of val",
           "unique_pct": "unique %", "novel_of_unique_pct": "novel % of unique",
           "charge_neutral_pct": "CN %", "en_balanced_pct": "EN %", "elements_2_pct": "2 el %",
           "elements_3_pct": "3 el %", "elements_4_pct": "4 el %", "elements_5plus_pct": "5+ el %",
           "decodable_pct": ">=2 el %", "pattern_211_pct": "2-1-1 %", "pattern_111_pct": "1-1-1 %",
           "pattern_1111_pct": "1-1-1-1 %"}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+", help="NAME=log.csv")
    ap.add_argument("--out", type=Path, default=Path("pipelines/reports/gan_variants/README.md"))
    ap.add_argument("--note", default="")
    args = ap.parse_args()
    parts = ["# GAN variants at equal wall time", "", args.note, ""]
    for spec in args.runs:
        name, path = spec.split("=", 1)
        df = pd.read_csv(path)
        df = df[[c for c in COLUMNS if c in df]].rename(columns=COLUMNS)  # GPU logs: no novelty/CN/EN
        parts += [f"## {name}", "", df.to_markdown(index=False, floatfmt=".2f"), ""]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(parts))
    print("\n".join(parts))


if __name__ == "__main__":
    main()
