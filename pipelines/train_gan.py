"""Train the composition WGAN on oqmd_gan_formulas.csv (90/10 split), resumable.

    python pipelines/train_gan.py --run-dir runs/gan --iterations 10000 [--resume]
    python pipelines/train_gan.py --run-dir runs/slim --generator slim --threads 1
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from pathlib import Path


def main(argv=None) -> None:
    from discovery.gan.train import GanConfig

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for f in dataclasses.fields(GanConfig):
        kind = type(f.default)
        if kind is bool:
            ap.add_argument(f"--{f.name.replace('_', '-')}", type=lambda s: s.lower() in ("1", "true", "yes"),
                            default=None)
        else:
            ap.add_argument(f"--{f.name.replace('_', '-')}", type=kind, default=None)
    ap.add_argument("--run-dir", type=Path, required=True)
    ap.add_argument("--resume", action="store_true", help="continue from RUN_DIR/last")
    ap.add_argument("--threads", type=int, default=0, help="TensorFlow threads (0: all cores)")
    ap.add_argument("--paper-setting", action="store_true", help="weight clipping + RMSProp 1e-2")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    import tensorflow as tf

    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)

    from discovery.data import load_gan_formulas
    from discovery.encoding import composition_keys, decode_counts
    from discovery.gan.quality import GeneratorQuality
    from discovery.gan.train import GanTrainer, one_hot_dataset, split_indices
    from discovery.known import KnownMaterials

    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(GanConfig)
                 if getattr(args, f.name) is not None}
    if args.resume and (args.run_dir / "last" / "state.json").is_file():
        saved = json.loads((args.run_dir / "last" / "state.json").read_text())["config"]
        cfg = GanConfig(**{**saved, **{k: v for k, v in overrides.items() if k == "iterations"}})
    else:
        cfg = GanConfig.paper_setting(**overrides) if args.paper_setting else GanConfig(**overrides)
    x = one_hot_dataset(load_gan_formulas()["formula"].tolist())
    tr, va = split_indices(len(x), cfg.val_fraction, cfg.seed)
    quality = GeneratorQuality(KnownMaterials.default(), composition_keys(decode_counts(x[va])))
    trainer = GanTrainer(cfg, args.run_dir, x[tr], x[va], evaluator=quality)
    if args.resume and (args.run_dir / "last" / "state.json").is_file():
        trainer.restore(args.run_dir / "last")
        logging.info("resumed at step %d", trainer.state.step)
    trainer.train()


if __name__ == "__main__":
    main()
