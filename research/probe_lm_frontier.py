"""Precision / yield / uniqueness frontier of the shipped LM: plain sampling vs drawing
without repeats (distinct) vs distinct and novel (training compositions skipped).

    python research/probe_lm_frontier.py 0.5,0.8 400000
"""

import json
import sys
import time

import numpy as np

from discovery.benchmarks.generators import evaluation_sets
from discovery.encoding import composition_keys, reduce_counts
from discovery.generation.metrics import recovery_metrics
from discovery.generation.registry import load_generator

KEYS = ("unique_pct", "novel_pct", "precision_pct", "yield_per_100k", "precision_cnen_pct",
        "yield_cnen_per_100k", "cn_pct", "en_pct", "pattern_distance_pts")
N = 100_000


def main() -> None:
    sets = evaluation_sets()
    gen = load_generator("lm").with_options(distinct=False)
    draws = int(sys.argv[2]) if len(sys.argv) > 2 else 400_000
    for temp in (float(t) for t in sys.argv[1].split(",")):
        t0 = time.perf_counter()
        raw = reduce_counts(gen.with_options(temperature=temp).sample_counts(draws, 1))
        seconds = time.perf_counter() - t0
        keys = composition_keys(raw)
        _, first = np.unique(keys, return_index=True)
        first = np.sort(first)
        novel = first[~np.isin(keys[first], sets["known"])]
        out = {"T": temp, "raw_per_s": len(raw) / seconds}
        for label, rows in [("plain", np.arange(N)), ("distinct", first[:N]), ("distinct_novel", novel[:N])]:
            m = recovery_metrics(raw[rows], sets["known"], sets["holdout"], "smact14", sets["train"])
            out[label] = {k: round(m[k], 2) for k in KEYS}
            out[label].update(rows=len(rows), draws_used=int(rows[-1] + 1) if len(rows) else 0)
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
