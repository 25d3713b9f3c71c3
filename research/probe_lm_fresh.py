"""How many of 4,096 draws of the shipped LM after its beam are new (neither in the beam's
head nor in the known-materials index), by temperature, drawn from the whole distribution or
from one shard (``discovery.generation.lm_shards``): the figures behind ``draw_temperature``.

    python research/probe_lm_fresh.py [0.65,1.0,1.3]
"""

import sys

import numpy as np

from discovery.encoding import composition_keys, reduce_counts
from discovery.generation.base import in_sorted, skip_keys
from discovery.generation.lm_shards import draw_prefixes
from discovery.generation.registry import load_generator
from discovery.known import KnownMaterials


def main() -> None:
    temps = [float(t) for t in (sys.argv[1] if len(sys.argv) > 1 else "0.65,1.0,1.3").split(",")]
    lm = load_generator("lm")
    skip = skip_keys(KnownMaterials.default().keys)
    _, head_keys, _, shards = lm._head(0, skip)
    sampler = lm.sampler()
    for t in temps:
        for shard in (None, 5):
            pre = None if shard is None else draw_prefixes(shards, shard, np.random.default_rng(1), 4096, t)
            keys = composition_keys(reduce_counts(sampler.block(4096, lm.block_seed(0, 3), t, pre)))
            u = np.unique(keys)
            in_head, known = int(in_sorted(head_keys, u).sum()), int(in_sorted(skip, u).sum())
            fresh = int((~in_sorted(head_keys, u) & ~in_sorted(skip, u)).sum())
            print(f"T={t:.2f} {'whole' if shard is None else f'shard {shard}'}: {len(u):,} distinct, "
                  f"{in_head:,} in the head, {known:,} known, {fresh:,} new ({100 * fresh / 4096:.1f}%)",
                  flush=True)


if __name__ == "__main__":
    main()
