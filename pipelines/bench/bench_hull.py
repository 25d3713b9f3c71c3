"""Hull energies of screened candidates: batched simplex (``PhaseHulls.evaluate``) against
building each chemical system's facets with qhull (``PhaseHulls.system_hull``), one run.

    python pipelines/bench/bench_hull.py --n 200000 --seed 5

Candidates: the shipped default generator's distinct samples that pass the CN + EN screen
(up to --keep of them), placed on the shipped known phases. Both sides start with empty caches
and must agree to 1e-9 eV/atom. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from discovery.encoding import composition_keys
from discovery.filters.chemistry import smact_screen
from discovery.generation.registry import load_generator
from discovery.stability import _as_int, default_hulls, system_masks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--keep", type=int, default=70_000)
    ap.add_argument("--seed", type=int, default=5)
    args = ap.parse_args()
    counts = load_generator(None).sample_counts(args.n, args.seed)
    _, first = np.unique(composition_keys(counts), return_index=True)
    counts = counts[np.sort(first)]
    cn, en = smact_screen(counts, "smact14")
    counts = counts[en][: args.keep]
    x = counts / counts.sum(axis=1, keepdims=True)

    hulls = default_hulls()
    t0 = time.perf_counter()
    fast = hulls.evaluate(counts, np.zeros(len(counts)))
    t_lp = time.perf_counter() - t0

    hulls = default_hulls()
    t0 = time.perf_counter()
    masks = system_masks(counts > 0)
    slow = np.empty(len(counts))
    for i, m in enumerate(masks):  # hull energy and the decomposition's shares, from the facets
        slow[i] = hulls.facet_solution(_as_int(m), x[i])[0]
    t_qhull = time.perf_counter() - t0
    assert np.abs(fast.hull_energy - slow).max() < 1e-9
    print(json.dumps({"candidates": len(counts), "systems": len(np.unique(masks, axis=0)),
                      "simplex_s": round(t_lp, 2), "qhull_facets_s": round(t_qhull, 2),
                      "speedup": round(t_qhull / t_lp, 1),
                      "max_abs_diff": float(np.abs(fast.hull_energy - slow).max())}))


if __name__ == "__main__":
    main()
