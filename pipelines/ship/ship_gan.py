"""Export a training checkpoint as the shipped generator: discovery/models/gan/.

    python pipelines/ship/ship_gan.py runs/gan_slim/last [--out discovery/models/gan]

Writes generator.keras, critic.keras, T.npy and card.json (data hash, iterations,
hyper-parameters, validation critic loss, the last logged quality metrics, wall time).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np

from discovery.data import file_sha256, shared_data_dir
from discovery.gan.models import atom_embedding
from discovery.gan.sampler import SHIPPED_GAN_DIR
from discovery.model_files import load_keras_model


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("--out", type=Path, default=SHIPPED_GAN_DIR)
    args = ap.parse_args()
    state = json.loads((args.checkpoint / "state.json").read_text())
    log_file = args.checkpoint.parent / "log.csv"
    rows = list(csv.DictReader(open(log_file))) if log_file.is_file() else []
    at_step = [r for r in rows if int(r["step"]) == state["step"]]
    args.out.mkdir(parents=True, exist_ok=True)
    for name in ("generator.keras", "critic.keras"):
        shutil.copy2(args.checkpoint / name, args.out / name)
    t = atom_embedding(load_keras_model(args.out / "critic.keras"))
    np.save(args.out / "T.npy", t)
    cfg = state["config"]
    card = {
        "version": f"wgan-{cfg['generator']}-{cfg['output']}-step{state['step']}-"
                   + hashlib.sha256((args.out / "generator.keras").read_bytes()).hexdigest()[:8],
        "decode_rule": "sample" if cfg["output"] == "gumbel" else "argmax",  # what training saw
        "training_data": "oqmd_gan_formulas.csv",
        "training_data_sha256": file_sha256(shared_data_dir() / "oqmd_gan_formulas.csv"),
        "iterations": state["step"],
        "wall_seconds": state["wall_seconds"],
        "hyperparameters": cfg,
        "metrics_at_export": {k: float(v) for k, v in at_step[-1].items()} if at_step else {},
        "best_val_critic_loss": state["best_val_critic_loss"],
        "best_step": state["best_step"],
        "embedding_shape": list(t.shape),
    }
    (args.out / "card.json").write_text(json.dumps(card, indent=2) + "\n")
    print(json.dumps(card, indent=2))


if __name__ == "__main__":
    main()
