"""Stack a shipped property model with an MLP ensemble on Magpie features, weights chosen on validation.

    python pipelines/ship/stack_property_model.py --property tc [--members 3]
    python pipelines/ship/stack_property_model.py --property formation_energy \
        --component attention=runs/bench_stability/oqmd/attention   # add a trained model

Fits the Magpie MLP ensemble on the property's training split (early stopping on the validation
split), finds the weights of the average of the shipped model and it with the lowest validation
MAE (``discovery.stacking.stack_weights``, grid 0.05) and, if that lowers the validation MAE by
at least ``--min-gain`` (1%: a second model costs prediction time on every candidate of a run),
replaces ``discovery/models/<property>/`` by the stack (the shipped model becomes its ``tmlp``
component, unchanged). The test split is scored for the card only. The new model is written
beside the old one and swapped in by renames (``discovery.atomic.replace_dir``); a run killed
in between is repaired when the script next starts.
A shipped stack keeps its parts and gains the ``--component`` models (each trained on the same
training split, e.g. by ``bench_stability.py``); the weights are refit over all of them. A part
weighted 0 is not shipped, and a stack is not given a new Magpie MLP once it has dropped one
(``--component magpie_mlp=DIR`` brings one back).

Why an MLP and not gradient-boosted trees on the same features: on Tc the trees keep improving
up to ~7,800 trees, and 6,000 trees predict ~1,500 rows/s on one core, too slow for a run's
candidates; the MLP is more accurate on validation (4.65 vs 4.74 K) and fast.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import time
from pathlib import Path

import numpy as np

from discovery.atomic import recover_dir, replace_dir, staging_dir
from discovery.data import DataError
from discovery.encoding import parse_formulas
from discovery.errors import ConfigError
from discovery.featurizers import Magpie
from discovery.properties import MODELS_DIR, PropertyModel, training_domain
from discovery.regressors import Ensemble, regression_metrics
from discovery.runtime import set_threads
from discovery.stacking import StackedPropertyModel, stack_weights
from discovery.tasks import load_task

HIDDEN = (512, 256, 128, 64)  # the "+wide" head of select_property_model.py


def fit_magpie_mlp(task, args) -> PropertyModel:
    feat = Magpie()
    x = {s: feat.transform(getattr(task, s)["formula"]) for s in ("train", "val")}
    y = {s: getattr(task, s)["y"].to_numpy() for s in ("train", "val")}
    t0 = time.perf_counter()
    ens = Ensemble.fit(x["train"], y["train"], x["val"], y["val"], k=args.members, seed=args.seed,
                       max_epochs=args.max_epochs, batch_size=args.batch_size, lr_patience=10, patience=30,
                       hidden=HIDDEN)
    card = {"version": f"{task.name}-magpie-mlp-k{args.members}-seed{args.seed}",
            "data": {"source": task.source, "sha256": task.data_sha256, "skipped": task.skipped},
            "splits": task.describe_splits(),
            "training": {"members": args.members, "seed": args.seed, "max_epochs": args.max_epochs,
                         "batch_size": args.batch_size, "hidden": list(HIDDEN),
                         "best_epochs": ens.fit_info["best_epochs"],
                         "loss": "mae",
                         "optimizer": "Adam 1e-3, halved after 10 epochs without validation gain",
                         "early_stopping": "validation loss, patience 30"},
            "domain": training_domain(parse_formulas(task.train["formula"].tolist()).amounts),
            "wall_seconds": round(time.perf_counter() - t0, 1)}
    return PropertyModel(task.name, task.unit, feat, ens, card)


def load_component(spec: str, parts: dict, task) -> PropertyModel:
    """The ``NAME=MODEL_DIR`` model, checked: a new plain name, the task's property, and (when its
    card records one) the task's training data."""
    name, _, path = spec.partition("=")
    if not re.fullmatch(r"[A-Za-z0-9_-]+", name) or not path or name in parts:
        raise SystemExit(f"error: --component {spec!r}: give NAME=MODEL_DIR, a new name of letters, digits, "
                         f"_ or - (the stack has {', '.join(parts)})")
    try:
        model = PropertyModel.load(path)
    except (DataError, ConfigError) as exc:
        raise SystemExit(f"error: --component {spec!r}: {exc}") from None
    if model.name != task.name:
        raise SystemExit(f"error: --component {spec!r} predicts {model.name!r}, not {task.name!r}")
    digest = model.card.get("data", {}).get("sha256")
    if digest is None:
        print(f"warning: --component {spec!r} records no training-data hash; it must have been trained "
              f"on the training split of {task.source} (validation for early stopping only)")
    elif digest != task.data_sha256:
        raise SystemExit(f"error: --component {spec!r} was trained on other data ({digest[:12]}, "
                         f"task {task.data_sha256[:12]})")
    return model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--property", required=True, choices=["bandgap", "tc", "formation_energy"])
    ap.add_argument("--members", type=int, default=3)
    ap.add_argument("--max-epochs", type=int, default=400)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--min-gain", type=float, default=0.01,
                    help="ship only if the stack's validation MAE is this fraction below the shipped model's "
                         "(another model costs prediction time on every candidate)")
    ap.add_argument("--component", action="append", default=[],
                    help="NAME=MODEL_DIR: a trained model of the property to stack as well (repeatable)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--models", type=Path, default=MODELS_DIR)
    ap.add_argument("--threads", type=int, default=0, help="TensorFlow threads (0: all cores)")
    args = ap.parse_args()
    set_threads(args.threads)
    target = args.models / args.property
    recover_dir(target, "card.json")  # a run killed while swapping the model in
    shipped = PropertyModel.load(target)
    parts = dict(shipped.components) if isinstance(shipped, StackedPropertyModel) else {"tmlp": shipped}
    task = load_task(args.property)
    for spec in args.component:
        parts[spec.partition("=")[0]] = load_component(spec, parts, task)
    if "magpie_mlp" not in parts and not isinstance(shipped, StackedPropertyModel):
        # the first stack only: a shipped stack without it has weighed it at 0 already
        parts["magpie_mlp"] = fit_magpie_mlp(task, args)
    amounts = {s: parse_formulas(getattr(task, s)["formula"].tolist()).amounts for s in ("val", "test")}
    y = {s: getattr(task, s)["y"].to_numpy() for s in ("val", "test")}
    preds = {c: {s: m.predict_amounts(amounts[s])[0] for s in ("val", "test")} for c, m in parts.items()}
    shipped_w = shipped.weights if isinstance(shipped, StackedPropertyModel) else {"tmlp": 1.0}
    current = regression_metrics(y["val"], sum(w * preds[c]["val"] for c, w in shipped_w.items()))["mae"]
    w, val_mae = stack_weights([preds[c]["val"] for c in parts], y["val"])
    weights = dict(zip(parts, (float(v) for v in w), strict=True))
    report = {c: {s: regression_metrics(y[s], preds[c][s]) for s in ("val", "test")} for c in parts}
    print({"weights": weights, "val_mae": val_mae, **report}, flush=True)
    if val_mae > current * (1 - args.min_gain):
        print(f"the stack's validation MAE {val_mae:.4g} is not {args.min_gain:.0%} below the shipped "
              f"{args.property} model's {current:.4g}; nothing changed")
        return
    kept = {c: m for c, m in parts.items() if weights[c] > 0}  # a zero weight: not shipped
    stack = StackedPropertyModel(args.property, task.unit, kept, {c: weights[c] for c in kept})
    mean = {s: stack.predict_amounts(amounts[s])[0] for s in ("val", "test")}
    metrics = {s: regression_metrics(y[s], mean[s]) for s in ("val", "test")}
    rows = np.repeat(amounts["test"], max(1, 20000 // len(amounts["test"])), axis=0)
    t0 = time.perf_counter()
    stack.predict_amounts(rows)
    rate = len(rows) / (time.perf_counter() - t0)
    mix = " + ".join(f"{v:.2f} {c}" for c, v in weights.items())
    parts_id = hashlib.sha256(json.dumps([[c, m.card.get("version"), weights[c]] for c, m in parts.items()])
                              .encode()).hexdigest()[:8]  # retrained parts give another version
    card = {"version": f"{args.property}-stack-" + "-".join(f"{c}{v:.2f}" for c, v in weights.items())
                       + f"-{parts_id}",
            "rule": f"{mix}: the weights (grid 0.05, non-negative, summing to 1) of the average with the "
                    "lowest validation MAE; components trained on the training split, the test split "
                    "scored for this card only",
            "components": {c: {"version": m.card.get("version"), "metrics": report[c]}
                           for c, m in parts.items()},
            "data": {"source": task.source, "sha256": task.data_sha256}, "splits": task.describe_splits(),
            "metrics": metrics, "rows_per_second": round(rate),
            "command": f"python pipelines/ship/stack_property_model.py --property {args.property} "
                       f"--members {args.members} --max-epochs {args.max_epochs} "
                       f"--batch-size {args.batch_size} --seed {args.seed}"
                       + "".join(f" --component {c}" for c in args.component)}
    shutil.rmtree(staging_dir(target), ignore_errors=True)
    stack.save(staging_dir(target), card)  # the stack's card is written last
    replace_dir(target, "card.json")
    print(f"saved {card['version']} to {target}: val {metrics['val']}, test {metrics['test']}, "
          f"{rate:,.0f} rows/s")


if __name__ == "__main__":
    main()
