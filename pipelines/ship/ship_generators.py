"""Fit the data-driven generators on the MP training split and ship them under discovery/models/.

    python pipelines/ship/ship_generators.py [--only substitution,random,pattern-random]

Each is fitted on the seeded 90% training split of ``mp_compositions.csv``
(``discovery.generation.splits.generator_split('mp')``); the 10% validation split is never
seen. Writes ``<model dir>/card.json`` and the fitted state (a small .npz). Benchmark
figures are added to the cards by ``pipelines/bench/bench_generators.py --update-cards``.
"""

from __future__ import annotations

import argparse

from discovery.data import file_sha256, shared_data_dir
from discovery.generation.registry import new_generator, shipped_dir
from discovery.generation.splits import SPLIT_SEED, VAL_FRACTION, generator_split

SHIPPED = ("substitution", "substitution-elements", "random", "pattern-random")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default=",".join(SHIPPED))
    args = ap.parse_args()
    train, val = generator_split("mp")
    data = shared_data_dir() / "mp_compositions.csv"
    for name in args.only.split(","):
        gen = new_generator(name)
        gen.card.update({"trained_on": "mp_compositions.csv train split",
                         "split": f"{1 - VAL_FRACTION:.0%} of unique compositions ({len(train):,}), seed "
                                  f"{SPLIT_SEED}; {len(val):,} validation compositions held out",
                         "training_data_sha256": file_sha256(data)})
        gen.fit(train)
        gen.card["name"] = name  # the registry name (one class may ship as several)
        out = shipped_dir(name)
        gen.save(out)
        print(f"{name}: {gen.card['version']} -> {out}")


if __name__ == "__main__":
    main()
