"""Precision / yield / uniqueness frontier of the shipped LM: plain sampling vs drawing
without repeats (distinct) vs distinct and novel (training compositions skipped)."""
import sys, time, json
import numpy as np
sys.path.insert(0, "pipelines")
from bench_generators import evaluation_sets
from discovery.encoding import composition_keys, reduce_counts
from discovery.generation.metrics import recovery_metrics
from discovery.generation.registry import load_generator

sets = evaluation_sets()
gen = load_generator("lm")
N = 100_000
for T in [float(t) for t in sys.argv[1].split(",")]:
    g = gen.with_options(temperature=T)
    t0 = time.perf_counter()
    raw = g.sample_counts(int(sys.argv[2]) if len(sys.argv) > 2 else 400_000, 1)
    dt = time.perf_counter() - t0
    raw = reduce_counts(raw)
    keys = composition_keys(raw)
    _, first = np.unique(keys, return_index=True)
    first = np.sort(first)
    nov = first[~np.isin(keys[first], sets["known"])]
    out = {"T": T, "raw_per_s": len(raw) / dt}
    for label, rows in [("plain", np.arange(N)), ("distinct", first[:N]), ("distinct_novel", nov[:N])]:
        m = recovery_metrics(raw[rows], sets["known"], sets["holdout"], "smact14", sets["train"])
        used = rows[-1] + 1 if len(rows) else 0
        out[label] = {k: round(m[k], 2) for k in ("unique_pct", "novel_pct", "precision_pct", "yield_per_100k",
                                                 "precision_cnen_pct", "yield_cnen_per_100k", "cn_pct", "en_pct", "pattern_distance_pts")}
        out[label]["rows"] = len(rows); out[label]["draws_used"] = int(used)
    print(json.dumps(out), flush=True)
