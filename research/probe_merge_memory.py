"""What does merging a run's partitions cost in memory? (issue 25: the 1e6 run's peak RSS)

    PYTHONPATH=TREE python research/probe_merge_memory.py REPORT.csv [--csv OUT.csv]

Builds ~320,000 candidates in 4 partitions from a `discover run` report (its rows repeated, one
in 50 given a key another partition holds, so the deduplication has work), then runs that
tree's ``merge_partitions`` under tracemalloc: the peak of memory traced above the start, and the
merged candidates' hash (``--csv`` writes them, to compare two trees byte for byte). Run it once
per tree (a ``git worktree`` of each commit) to compare two versions of the merge.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np
import pandas as pd

from discovery.partitions import PartitionOutput, build_spec, merge_partitions

ROWS, PARTITIONS = 320_000, 4


def candidates_from_report(path: str) -> pd.DataFrame:
    rep = pd.read_csv(path, keep_default_na=False, na_values=[""], low_memory=False)
    rep = rep.rename(columns=lambda c: c.split(" [")[0]).drop(columns=["rank", "score"])
    for c in rep:
        if c.endswith("_in_domain"):
            rep[c] = rep[c].astype(bool)
    for c in ("decomposition", "e_hull_note", "domain_note"):
        rep[c] = rep[c].fillna("").astype(object)
    big = pd.concat([rep] * (ROWS // len(rep) + 1), ignore_index=True).iloc[:ROWS].copy()
    big.insert(2, "key", np.random.default_rng(0).integers(0, 2**63, len(big), dtype=np.uint64))
    big.loc[big.index[::50], "key"] = big["key"].iloc[0]
    return big


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("report")
    ap.add_argument("--csv", default=None)
    args = ap.parse_args()
    big = candidates_from_report(args.report)
    outputs = [PartitionOutput(i, 250_000, 250_000, np.zeros(0, np.uint64), np.zeros(0, np.int8),
                               part.reset_index(drop=True), {})
               for i, part in enumerate(np.array_split(big, PARTITIONS))]
    del big
    spec = build_spec(1000, "bandgap>1.5", sort="e_hull:asc")
    tracemalloc.start()
    t0 = time.perf_counter()
    result = merge_partitions(outputs, spec, ["bandgap", "formation_energy", "tc"])
    seconds = time.perf_counter() - t0
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    digest = int(pd.util.hash_pandas_object(result.candidates, index=True).sum())
    if args.csv:
        result.candidates.to_csv(args.csv)
    print(f"merge: peak {peak / 2**20:.0f} MiB traced above the start, result {current / 2**20:.0f} MiB, "
          f"{seconds:.2f} s, {len(result.candidates)} rows, hash {digest}")


if __name__ == "__main__":
    main()
