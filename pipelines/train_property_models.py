"""Train the shipped property ensembles on the GAN embedding: discovery/models/<property>/.

    python pipelines/train_property_models.py --property bandgap [--members 5] [--amounts fractions]
    python pipelines/train_property_models.py --property all

Early stopping on the validation split; the test split is only scored for the model card.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from discovery.featurizers import GanEmbedding
from discovery.properties import MODELS_DIR, PropertyModel
from discovery.regressors import Ensemble, regression_metrics
from discovery.runtime import set_threads
from discovery.tasks import load_task


def train_one(prop: str, members: int, amounts: str, t_path: Path | None, max_epochs: int,
              seed: int, out_dir: Path, batch_size: int = 256) -> dict:
    task = load_task(prop, split_seed=0)
    feat = GanEmbedding(t_path, amounts=amounts)
    x = {s: feat.transform(getattr(task, s)["formula"]) for s in ("train", "val", "test")}
    y = {s: getattr(task, s)["y"].to_numpy() for s in ("train", "val", "test")}
    t0 = time.perf_counter()
    ens = Ensemble.fit(x["train"], y["train"], x["val"], y["val"], k=members, seed=seed,
                       max_epochs=max_epochs, batch_size=batch_size)
    wall = time.perf_counter() - t0
    metrics = {s: regression_metrics(y[s], ens.predict(x[s])[0]) for s in ("val", "test")}
    model = PropertyModel(prop, task.unit, feat, ens)
    card = {"version": f"{prop}-gan-embedding-{amounts}-k{members}-seed{seed}",
            "data": {"source": task.source, "sha256": task.data_sha256, "skipped": task.skipped},
            "splits": {**task.describe_splits(), "rule": "crabnet splits" if prop == "formation_energy"
                       else "seeded 80/10/10, split seed 0"},
            "training": {"members": members, "seed": seed, "max_epochs": max_epochs, "batch_size": batch_size,
                         "best_epochs": ens.fit_info["best_epochs"], "loss": "mae",
                         "early_stopping": "validation loss, patience 20"},
            "metrics": metrics, "wall_seconds": round(wall, 1)}
    model.save(out_dir / prop, card)
    print(prop, metrics)
    return card


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--property", default="all", choices=["all", "bandgap", "tc", "formation_energy"])
    ap.add_argument("--members", type=int, default=5)
    ap.add_argument("--amounts", default="fractions", choices=["counts", "fractions"])
    ap.add_argument("--embedding", type=Path, default=None, help="T.npy (default: the shipped GAN's)")
    ap.add_argument("--max-epochs", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=MODELS_DIR)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--threads", type=int, default=0, help="TensorFlow threads (0: all cores)")
    args = ap.parse_args()
    set_threads(args.threads)
    props = ["bandgap", "tc", "formation_energy"] if args.property == "all" else [args.property]
    for p in props:
        train_one(p, args.members, args.amounts, args.embedding, args.max_epochs, args.seed, args.out,
                  args.batch_size)


if __name__ == "__main__":
    main()
