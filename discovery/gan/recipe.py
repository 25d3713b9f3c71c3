"""The training recipe shared by ``discover train gan`` and ``pipelines/train/train_gan.py``:
the GAN set, its seeded 90/10 split, the quality evaluator, resume."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from discovery.gan.config import GanConfig
from discovery.gan.train import TrainState

log = logging.getLogger(__name__)


def train_gan(run_dir: Path, overrides: dict | None = None, resume: bool = False,
              paper_setting: bool = False, threads: int = 0, progress: bool = True) -> TrainState:
    """Train (or, with ``resume``, continue) a WGAN on oqmd_gan_formulas.csv in ``run_dir``.

    On resume the saved configuration is kept; only ``iterations`` may be raised.
    """
    from discovery.runtime import set_threads

    set_threads(threads)
    from discovery.data import load_gan_formulas
    from discovery.encoding import composition_keys, decode_counts
    from discovery.gan.config import split_indices
    from discovery.gan.quality import GeneratorQuality
    from discovery.gan.train import GanTrainer, one_hot_dataset
    from discovery.known import KnownMaterials

    overrides = dict(overrides or {})
    checkpoint = Path(run_dir) / "last"
    resuming = resume and (checkpoint / "state.json").is_file()
    if resume and not resuming:
        log.warning("nothing to resume in %s; starting a new run", run_dir)
    if resuming:
        saved = json.loads((checkpoint / "state.json").read_text())["config"]
        if "iterations" in overrides:
            saved["iterations"] = overrides["iterations"]
        cfg = GanConfig(**saved)
    else:
        cfg = GanConfig.paper_setting(**overrides) if paper_setting else GanConfig(**overrides)
    x = one_hot_dataset(load_gan_formulas()["formula"].tolist())
    tr, va = split_indices(len(x), cfg.val_fraction, cfg.seed)
    quality = GeneratorQuality(KnownMaterials.default(), composition_keys(decode_counts(x[va])))
    trainer = GanTrainer(cfg, Path(run_dir), x[tr], x[va], evaluator=quality)
    if resuming:
        trainer.restore(checkpoint)
        log.info("resumed at step %d", trainer.state.step)
    return trainer.train(progress=progress)
