"""Can the shipped generators together reach issue 25's 90% recovery at 1,000,000 samples?

The LM's first ``a`` samples and another generator's first ``b`` (a + b = 1,000,000, bench seed
1, each skipping its own training set as ``bench_generators.py`` does) are exactly what a
generator interleaving the two streams by position would propose; their union's held-out hits
(MP validation split minus OQMD, 4,632 compositions) is its recovery. Also: how many of each
other generator's own 1,000,000-sample hits the LM's 1,000,000 miss.

    DISCOVERY_DATA=../shared/data python research/probe_generator_union.py \
        substitution-elements substitution pattern-random

Measured 2026-12-07: the LM alone 3,700 hits (79.88%). Best mix: LM 900,000 + substitution
100,000, 3,740 (80.74%); LM 900,000 + substitution-elements 100,000, 3,729 (80.51%); LM
950,000 + pattern-random 50,000, 3,678 (79.40%: worse). Of their own 1,000,000-sample hits
(substitution-elements 2,471, substitution 1,648, pattern-random 2,129) the LM misses 182, 141
and 105: all four generators' 4,000,000 samples together hold 3,964 (85.58%). No mix of what
ships reaches 90%: it needs a generator that puts more probability on the held-out
compositions the LM ranks low (probe_lm_ceiling.py: its 1.2M likeliest novel compositions
hold 86.3%).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from discovery.benchmarks.generators import evaluation_sets, training_keys
from discovery.encoding import composition_keys
from discovery.generation.registry import generator_names, load_generator, shipped_dir

N = 1_000_000
SEED = 1  # bench_generators.py's
MIX = (0, 50_000, 100_000, 200_000, 300_000, 500_000)  # samples given to the other generator


def first_hits(kind: str, holdout: np.ndarray, known: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(position of first occurrence, key) of each held-out novel composition in ``kind``'s first
    N samples (its training set skipped)."""
    gen = load_generator(kind, shipped_dir(kind))
    t0 = time.perf_counter()
    counts = gen.sample_counts(N, SEED, skip=training_keys(kind))
    keys = composition_keys(counts)
    keys[(counts > 0).sum(axis=1) < 2] = 0  # not compounds
    pos = np.flatnonzero(np.isin(keys, holdout) & ~np.isin(keys, known))
    found, first = np.unique(keys[pos], return_index=True)
    print(f"{kind}: {N:,} samples in {time.perf_counter() - t0:.0f} s, {len(found):,} held-out hits",
          flush=True)
    return pos[first], found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("others", nargs="+", help="generators to mix with the LM")
    args = ap.parse_args()
    unknown = [k for k in args.others if k not in generator_names()]
    if unknown:
        raise SystemExit(f"unknown generator {unknown[0]!r}; known: {', '.join(generator_names())}")
    sets = evaluation_sets()
    holdout = np.unique(sets["holdout"])
    lm_pos, lm_keys = first_hits("lm", holdout, sets["known"])
    missed = set()
    for kind in args.others:
        pos, keys = first_hits(kind, holdout, sets["known"])
        for b in MIX:
            union = np.union1d(lm_keys[lm_pos < N - b], keys[pos < b])
            print(f"  lm {N - b:,} + {kind} {b:,}: {len(union):,} hits, recovery "
                  f"{100 * len(union) / len(holdout):.2f}%", flush=True)
        own_missed = np.setdiff1d(keys, lm_keys)
        missed.update(own_missed.tolist())
        print(f"  {kind}'s {len(keys):,} hits: {len(own_missed):,} missed by the LM's {N:,}")
    total = len(lm_keys) + len(missed)
    print(f"all together ({N:,} each): {total:,} hits, recovery {100 * total / len(holdout):.2f}%")


if __name__ == "__main__":
    main()
