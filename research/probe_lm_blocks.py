"""Cost and content of the shipped LM's blocks after its beam head, with the known-materials
index skipped (head cached or computed first): CPU and wall seconds for B blocks after block
0, how many compositions they hold, how many are distinct, known or in the head, how many
known ones the draws dropped, the element-count histogram and a hash of the rows (to compare
two trees: run with PYTHONPATH=TREE).

    DISCOVERY_DATA=../shared/data python research/probe_lm_blocks.py [--blocks 20]
"""

import argparse
import hashlib
import time

import numpy as np

from discovery.encoding import composition_keys
from discovery.generation.base import in_sorted
from discovery.generation.registry import load_generator
from discovery.known import KnownMaterials


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--blocks", type=int, default=20)
    blocks = ap.parse_args().blocks
    lm = load_generator("lm")
    known = KnownMaterials.default()
    _, head_keys, _, shards = lm._head(0, known.keys)
    lm.draw_block(0, 0, known.keys, head_keys, shards)  # traces the graphs
    t0, c0 = time.perf_counter(), time.process_time()
    out = [lm.draw_block(0, b, known.keys, head_keys, shards) for b in range(1, blocks + 1)]
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    rows = np.concatenate([o[0] for o in out])
    keys = composition_keys(rows)
    print(f"{blocks} blocks: wall {wall:.2f} s, CPU {cpu:.2f} s")
    n_known, n_head = int(in_sorted(known.keys, keys).sum()), int(in_sorted(head_keys, keys).sum())
    dropped = int(sum(o[1].sum() for o in out))
    print(f"rows {len(rows):,}, distinct {len(np.unique(keys)):,}, known {n_known}, in the head {n_head}, "
          f"known dropped {dropped:,}")
    print("elements 2..8:", np.bincount((rows > 0).sum(axis=1), minlength=9)[2:].tolist())
    print("sha256 of the rows:", hashlib.sha256(rows.tobytes()).hexdigest()[:16])


if __name__ == "__main__":
    main()
