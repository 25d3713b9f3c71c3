"""Probe: the count-pattern WGAN fitted on the MP training split (issue 14 item 5, both sets).

    python research/probe_pattern_wgan_mp.py [iterations]
    python pipelines/bench/bench_generators.py --only lm --extra wgan-pattern=runs/wgan_pattern_mp \
        --sizes 100000 --out runs/bench_wgan_pattern_mp

Fits on ``generator_split('mp')``'s training 90% (its iteration chosen on a validation
carve-out of that), saves to runs/wgan_pattern_mp for the benchmark's MP validation split.
"""

import sys

from discovery.generation.pattern_wgan import PatternWGAN
from discovery.generation.splits import generator_split

train, _ = generator_split("mp")
gen = PatternWGAN(iterations=int(sys.argv[1]) if len(sys.argv) > 1 else 10000, eval_every=250)
gen.card.update({"trained_on": "mp_compositions.csv train split"})
gen.fit(train, seed=0, run_dir="runs/wgan_pattern_mp_run", resume=True, log=lambda s: print(s, flush=True))
gen.save("runs/wgan_pattern_mp")
print(gen.card["version"], gen.card["training"]["best_iteration"])
