"""The vectorised SMACT screen against smact_validity, on the same compositions, in one run.

    python pipelines/bench/bench_filters.py [--n 100000] [--generator discovery/models/gan] \
        [--sets smact14,icsd24]

Compositions come from a trained generator when --generator names one, else from the
enhanced-random baseline fitted on the GAN set. SMACT is called once per unique composition
(twice: without and with the Pauling test). Prints agreement and the speed-up.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from discovery.data import load_gan_formulas
from discovery.encoding import composition_keys, parse_formulas
from discovery.filters.chemistry import oxidation_table, smact_screen
from discovery.filters.smact_reference import smact_verdicts
from discovery.generation.baselines import EnhancedRandom


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--generator", default=None)
    ap.add_argument("--sets", default="smact14,icsd24")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-assignments", type=int, default=100_000)
    args = ap.parse_args()
    if args.generator:
        from discovery.gan.sampler import CompositionSampler

        counts = CompositionSampler.load(args.generator).sample_counts(args.n, args.seed)
        source = f"generator {args.generator}"
    else:
        train = parse_formulas(load_gan_formulas()["formula"].tolist()).amounts.astype(np.int64)
        counts = EnhancedRandom().fit(train).sample_counts(args.n, args.seed)
        source = "enhanced-random baseline"
    _, first = np.unique(composition_keys(counts), return_index=True)
    uniq = counts[np.sort(first)]
    uniq = uniq[(uniq > 0).sum(1) >= 2]
    print(f"{args.n:,} compositions from the {source}; {len(uniq):,} unique compounds")
    for name in args.sets.split(","):
        smact_screen(uniq[:10], name)  # load the table outside the timing
        # smact_validity enumerates every oxidation-state assignment: past ~10^5 of them (many
        # elements with many states) one call takes minutes, so those are left out of both.
        n_states = oxidation_table(name).n_states
        assignments = np.array([np.prod(n_states[np.flatnonzero(r)].astype(float)) for r in uniq])
        tractable = uniq[assignments <= args.max_assignments]
        print(f"[{name}] compared on {len(tractable):,} compositions; left out "
              f"{len(uniq) - len(tractable):,} with more than {args.max_assignments:,} assignments")
        t0 = time.perf_counter()
        cn, en = smact_screen(tractable, name)
        t_fast = time.perf_counter() - t0
        t0 = time.perf_counter()
        rcn, ren = smact_verdicts(tractable, name)
        t_ref = time.perf_counter() - t0
        print(f"[{name}] charge-neutral {100 * cn.mean():.2f}%  EN-balanced {100 * en.mean():.2f}%  "
              f"disagreements CN {int((cn != rcn).sum())} EN {int((en != ren).sum())}  "
              f"fast {t_fast:.2f} s  smact {t_ref:.1f} s  speed-up {t_ref / t_fast:.0f}x")


if __name__ == "__main__":
    main()
