"""Train the shipped property ensembles on the GAN embedding: discovery/models/<property>/.

    python pipelines/train/train_property_models.py --property bandgap [--members 5] [--amounts fractions]
    python pipelines/train/train_property_models.py --property all
    python pipelines/train/train_property_models.py --domain-only   # only record the training domains
    python pipelines/train/train_property_models.py --property formation_energy --members 3 --finetune \
        --lr-patience 10 --patience 30 --batch-size 1024 --max-epochs 400

Early stopping on the validation split; the test split is only scored for the model card.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import numpy as np

from discovery.atomic import atomic_write
from discovery.encoding import parse_formulas
from discovery.featurizers import GanEmbedding, OneHot, load_embedding
from discovery.properties import MODELS_DIR, PropertyModel, training_domain
from discovery.regressors import HIDDEN, Ensemble, regression_metrics
from discovery.runtime import set_threads
from discovery.tasks import load_task


def train_one(prop: str, members: int, amounts: str, t_path: Path | None, max_epochs: int,
              seed: int, out_dir: Path, batch_size: int = 256, finetune: bool = False,
              lr_patience: int = 0, patience: int = 20, hidden: tuple[int, ...] = HIDDEN) -> dict:
    task = load_task(prop, split_seed=0)
    t = load_embedding(t_path)
    # Fine-tuning: the model's first layer is T (initialised from the critic's), fed amounts.
    feat = OneHot(amounts=amounts) if finetune else GanEmbedding(t, amounts=amounts)
    x = {s: feat.transform(getattr(task, s)["formula"]) for s in ("train", "val", "test")}
    y = {s: getattr(task, s)["y"].to_numpy() for s in ("train", "val", "test")}
    t0 = time.perf_counter()
    ens = Ensemble.fit(x["train"], y["train"], x["val"], y["val"], k=members, seed=seed,
                       max_epochs=max_epochs, batch_size=batch_size, lr_patience=lr_patience,
                       patience=patience, embedding=t if finetune else None, hidden=hidden)
    wall = time.perf_counter() - t0
    metrics = {s: regression_metrics(y[s], ens.predict(x[s])[0]) for s in ("val", "test")}
    model = PropertyModel(prop, task.unit, feat, ens)
    kind = "gan-embedding-finetuned" if finetune else "gan-embedding"
    card = {"version": f"{prop}-{kind}-{amounts}-k{members}-seed{seed}",
            "embedding": {"source": str(t_path or "discovery/models/gan/T.npy"),
                          "sha256": hashlib.sha256(np.ascontiguousarray(t, np.float32).tobytes()).hexdigest(),
                          "fine_tuned": finetune},
            "data": {"source": task.source, "sha256": task.data_sha256, "skipped": task.skipped},
            "splits": {**task.describe_splits(), "rule": "crabnet splits" if prop == "formation_energy"
                       else "seeded 80/10/10, split seed 0"},
            "training": {"members": members, "seed": seed, "max_epochs": max_epochs, "batch_size": batch_size,
                         "hidden": list(hidden), "best_epochs": ens.fit_info["best_epochs"], "loss": "mae",
                         "optimizer": "Adam 1e-3" + (f", halved after {lr_patience} epochs without "
                                                     "validation gain" if lr_patience else ""),
                         "early_stopping": f"validation loss, patience {patience}"},
            "domain": training_domain(parse_formulas(task.train["formula"].tolist()).amounts),
            "metrics": metrics, "wall_seconds": round(wall, 1)}
    model.save(out_dir / prop, card)
    print(prop, metrics)
    return card


def _widths(text: str) -> tuple[int, ...]:
    try:
        widths = tuple(int(w) for w in text.split(","))
    except ValueError:
        widths = ()
    if not widths or min(widths) < 1:
        raise argparse.ArgumentTypeError(f"--hidden must be positive integers like 512,256; got {text!r}")
    return widths


def write_domain(prop: str, out_dir: Path) -> None:
    """Record in the card what the training formulas span (``predict`` warns beyond it)."""
    card_file = out_dir / prop / "card.json"
    card = json.loads(card_file.read_text())
    task = load_task(prop, split_seed=0)
    card["domain"] = training_domain(parse_formulas(task.train["formula"].tolist()).amounts)
    atomic_write(card_file, lambda p: p.write_text(json.dumps(card, indent=2, default=float)))
    print(prop, card["domain"])


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
    ap.add_argument("--finetune", action="store_true", help="fine-tune T end to end (first layer)")
    ap.add_argument("--lr-patience", type=int, default=0, help=">0: halve the LR on a val plateau")
    ap.add_argument("--patience", type=int, default=20, help="early-stopping patience (epochs)")
    ap.add_argument("--hidden", type=_widths, default=HIDDEN, help="hidden layer widths, e.g. 512,256,128,64")
    ap.add_argument("--threads", type=int, default=0, help="TensorFlow threads (0: all cores)")
    ap.add_argument("--domain-only", action="store_true",
                    help="only (re)write each card's training domain (no training)")
    args = ap.parse_args()
    set_threads(args.threads)
    props = ["bandgap", "tc", "formation_energy"] if args.property == "all" else [args.property]
    if args.domain_only:
        for p in props:
            write_domain(p, args.out)
        return
    for p in props:
        train_one(p, args.members, args.amounts, args.embedding, args.max_epochs, args.seed, args.out,
                  args.batch_size, args.finetune, args.lr_patience, args.patience,
                  args.hidden)


if __name__ == "__main__":
    main()
