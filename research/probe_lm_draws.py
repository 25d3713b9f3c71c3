"""Probe: what a block of draws after the LM's head costs and where its rows go.

Per block: seconds, sampler calls and their seconds; per call of the first cycle's shards,
how many of 4,096 draws repeat a composition of the same call, are a multiple of another
composition, lie in the head, are known, or are new; cells drawn iid (shipped) or by
systematic sampling. The shipped LM, the known-materials index skipped, seed 0; the head is
read from (or written to) the cache.

    DISCOVERY_DATA=../shared/data python research/probe_lm_draws.py [--blocks B]

Measured 2026-12-06 (session 16, 2 cores): a block 1.1-1.35 s in 3 calls of 0.33-0.46 s
before the sampler dropped finished rows, 0.62-0.84 s after (3 calls, the last one smaller);
per 4,096 draws 1,386 repeats, 18 multiples, 84 head, 402 known, 2,207 new (systematic:
1,277 / 20 / 99 / 424 / 2,276).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import discovery.generation.lm_sampler as lm_sampler
from discovery.encoding import composition_keys, first_occurrences, reduce_counts
from discovery.generation.autoregressive import SHARD_STREAM, seed_sequence
from discovery.generation.base import in_sorted
from discovery.generation.lm_shards import Prefixes, draw_prefixes
from discovery.generation.registry import load_generator
from discovery.known import KnownMaterials


def systematic_prefixes(shards, shard, rng, rows, temperature=None):
    """``draw_prefixes`` with one uniform and evenly spaced points instead of iid ones."""
    cells = shards.cells[shard]
    w = (shards.temperature / temperature) * shards.log_mass[cells]
    cdf = np.cumsum(np.exp(w - w.max()))
    u = (np.arange(rows) + rng.random()) / rows
    pick = rng.permutation(np.minimum(np.searchsorted(cdf, u * cdf[-1], side="right"), len(cells) - 1))
    return Prefixes(shards.prefixes[cells[pick]], shards.allow[cells[pick]])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--blocks", type=int, default=6, help="blocks of 4,096 draws to time and tally")
    blocks = ap.parse_args().blocks
    if blocks < 1:
        raise SystemExit(f"--blocks must be at least 1, got {blocks}")
    lm, known = load_generator("lm"), KnownMaterials.default()
    head, head_keys, _, shards = lm._head(0, known.keys)
    calls = []
    block = lm_sampler.GRUSampler.block

    def timed(self, rows, *args):
        t = time.perf_counter()
        out = block(self, rows, *args)
        calls.append((rows, time.perf_counter() - t))
        return out

    lm_sampler.GRUSampler.block = timed
    for b in range(blocks):
        calls.clear()
        t = time.perf_counter()
        lm.draw_block(0, b, known.keys, head_keys, shards)
        print(f"block {b}: {time.perf_counter() - t:.2f} s; calls (rows, s): "
              f"{[(r, round(s, 2)) for r, s in calls]}")
    lm_sampler.GRUSampler.block = block
    sampler = lm.sampler()
    order = np.random.default_rng(seed_sequence(0, SHARD_STREAM, 0)).permutation(len(shards))
    for name, draw in (("iid (shipped)", draw_prefixes), ("systematic", systematic_prefixes)):
        tally = np.zeros(5)
        for b in range(blocks):
            pre = draw(shards, int(order[b]), np.random.default_rng(seed_sequence(0, b, 0, 1)), 4096, 1.0)
            raw = sampler.block(4096, lm.block_seed(0, b), 1.0, pre)
            rows = reduce_counts(raw)
            keys = composition_keys(rows)
            first = np.zeros(len(keys), dtype=bool)
            first[first_occurrences(keys)] = True
            multiple = first & ~(rows == raw).all(axis=1)
            ok = first & ~multiple
            in_head = ok & in_sorted(head_keys, keys)
            is_known = ok & ~in_head & in_sorted(known.keys, keys)
            tally += [(~first).sum(), multiple.sum(), in_head.sum(), is_known.sum(),
                      (ok & ~in_head & ~is_known).sum()]
        print(f"{name}: per 4,096 draws, repeats / multiples / head / known / new:",
              " / ".join(f"{v:,.0f}" for v in tally / blocks))


if __name__ == "__main__":
    main()
