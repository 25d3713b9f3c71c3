"""Probe: does the LM sampler of this tree draw the same rows as the one of an older commit?

Loads ``discovery/generation/lm_sampler.py`` as it was at REV (``git show``), then draws the
same blocks of 4,096 rows with both (the shipped LM's first network, seed 0; every other block
with shard prefixes from the cached head) and counts the rows that differ, with each side's
seconds.

    DISCOVERY_DATA=../shared/data python research/probe_sampler_exactness.py [--rev REV] [--blocks B]

Measured 2026-12-06 (session 16), --rev 807fe67 (before the loop dropped finished rows):
0 of 32,768 rows differ; 3.0 s against 1.89 s for the 8 blocks (a rerun: 3.32 against 2.17).
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

import discovery.generation.lm_sampler as current
from discovery.generation.lm_shards import draw_prefixes
from discovery.generation.registry import load_generator
from discovery.known import KnownMaterials


def sampler_at(rev: str):
    """The lm_sampler module as it was at ``rev``."""
    proc = subprocess.run(["git", "show", f"{rev}:discovery/generation/lm_sampler.py"],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"--rev {rev!r}: {proc.stderr.strip().splitlines()[-1]}")
    path = Path(tempfile.mkdtemp()) / "lm_sampler_at_rev.py"
    path.write_text(proc.stdout)
    spec = importlib.util.spec_from_file_location("lm_sampler_at_rev", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rev", default="807fe67")
    ap.add_argument("--blocks", type=int, default=8)
    args = ap.parse_args()
    if args.blocks < 1:
        raise SystemExit(f"--blocks must be at least 1, got {args.blocks}")
    old_module = sampler_at(args.rev)
    lm = load_generator("lm")
    weights = lm._weights()[0]
    old, new = old_module.GRUSampler(weights), current.GRUSampler(weights)
    shards = lm._head(0, KnownMaterials.default().keys)[3]
    differ, seconds = 0, {"old": 0.0, "new": 0.0}
    for b in range(args.blocks):
        seed = lm.block_seed(0, b)
        pre = draw_prefixes(shards, b, np.random.default_rng(b), 4096, 1.0) if b % 2 else None
        rows = {}
        for name, sampler in (("old", old), ("new", new)):
            sampler.block(64, seed, 1.0, None)  # trace outside the timing
            t = time.perf_counter()
            rows[name] = sampler.block(4096, seed, 1.0, pre)
            seconds[name] += time.perf_counter() - t
        differ += int((rows["old"] != rows["new"]).any(axis=1).sum())
    print(f"rows differing: {differ:,} of {args.blocks * 4096:,}; seconds {args.rev} "
          f"{seconds['old']:.2f}, this tree {seconds['new']:.2f}")


if __name__ == "__main__":
    main()
