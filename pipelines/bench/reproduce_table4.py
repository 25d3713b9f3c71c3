"""The paper's Table 4: the same MLP on three featurizers, three datasets, several seeds.

    python pipelines/bench/reproduce_table4.py [--datasets bandgap,tc,formation_energy] [--seeds 10]
        [--oqmd-seeds 3] [--embedding discovery/models/gan/T.npy] [--amounts counts]

Same as ``discover evaluate``; see discovery/evaluation.py. Writes table4.csv (mean ± std),
table4_runs.csv (every seed), table4.md, table4_r2.png and supercon_tsne.png.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from discovery.evaluation import evaluate
from discovery.runtime import set_threads

REPORTS = Path(__file__).resolve().parents[1] / "reports"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", default="bandgap,tc,formation_energy")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--oqmd-seeds", type=int, default=3)
    ap.add_argument("--embedding", type=Path, default=None)
    ap.add_argument("--amounts", default="counts", choices=["counts", "fractions"])
    ap.add_argument("--max-epochs", type=int, default=300)
    ap.add_argument("--out", type=Path, default=REPORTS)
    ap.add_argument("--featurizers", default="gan_embedding,magpie,onehot")
    ap.add_argument("--no-tsne", action="store_true")
    ap.add_argument("--resume", action="store_true", help="keep and skip the cells in table4_runs.csv")
    ap.add_argument("--threads", type=int, default=0, help="TensorFlow threads (0: all cores)")
    args = ap.parse_args()
    set_threads(args.threads)
    evaluate(args.datasets.split(","), args.seeds, args.oqmd_seeds, args.embedding, args.amounts,
             args.max_epochs, args.out, tuple(args.featurizers.split(",")), not args.no_tsne,
             "python pipelines/bench/reproduce_table4.py " + " ".join(sys.argv[1:]), args.resume)
    print((args.out / "table4.md").read_text())


if __name__ == "__main__":
    main()
