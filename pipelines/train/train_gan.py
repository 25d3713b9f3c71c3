"""Train the composition WGAN on oqmd_gan_formulas.csv (seeded 90/10 split), resumable.

    python pipelines/train/train_gan.py --run-dir runs/gan_slim --generator slim --iterations 10000
    python pipelines/train/train_gan.py --run-dir runs/gan_slim --resume --iterations 20000

Every GanConfig field is an option (--batch-size, --n-critic, --loss clip, ...).
Same as ``discover train gan``.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path

from discovery.gan.config import GanConfig
from discovery.gan.recipe import train_gan


def _bool(s: str) -> bool:
    return s.lower() in ("1", "true", "yes")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for f in dataclasses.fields(GanConfig):
        kind = _bool if isinstance(f.default, bool) else type(f.default)
        ap.add_argument(f"--{f.name.replace('_', '-')}", type=kind, default=None)
    ap.add_argument("--run-dir", type=Path, required=True)
    ap.add_argument("--resume", action="store_true", help="continue from RUN_DIR/last")
    ap.add_argument("--threads", type=int, default=0, help="TensorFlow threads (0: all cores)")
    ap.add_argument("--paper-setting", action="store_true", help="weight clipping + RMSProp 1e-2")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(GanConfig)
                 if getattr(args, f.name) is not None}
    train_gan(args.run_dir, overrides, args.resume, args.paper_setting, args.threads)


if __name__ == "__main__":
    main()
