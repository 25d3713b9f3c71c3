"""Model choice for the shipped regressors, on validation data only (the test split is not read).

    python pipelines/select/select_property_model.py --property bandgap [--seeds 2]

Compares, with the same MLP and seeds: GAN embedding of raw counts (the paper) vs of
fractions, frozen T vs T fine-tuned end to end from the critic's initialisation, constant
learning rate vs halving it on a validation plateau (suffix ``+plateau``: LR patience 10,
early-stopping patience 30), MAE loss vs ``+mse`` / ``+huber``, the paper's head vs ``+wide``
(512-256-128-64) or ``+xwide`` (1024-512-256-128),
e.g. ``--variants finetune_fractions,finetune_fractions+plateau+mse``. Two other families on the
same splits: ``attention`` (discovery.attention: element tokens on T, fractions in; options
``+w128`` for width 128 and 3 blocks) and ``magpie_gbt`` (Magpie features + gradient-boosted
trees, trees chosen on the validation split).
Prints validation MAE / RMSE / R² and appends them to pipelines/reports/model_selection.csv.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from discovery.featurizers import GanEmbedding, OneHot, load_embedding
from discovery.regressors import MLPRegressor, regression_metrics
from discovery.runtime import set_threads
from discovery.tasks import load_task

REPORTS = Path(__file__).resolve().parents[1] / "reports"
OPTIONS = {  # variant suffixes: "+plateau", "+mse", ...
    "plateau": {"lr_patience": 10, "patience": 30},  # halve the LR on a validation plateau
    "mse": {"loss": "mse"},
    "huber": {"loss": "huber"},
    "wide": {"hidden": (512, 256, 128, 64)},
    "xwide": {"hidden": (1024, 512, 256, 128)},
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--property", required=True, choices=["bandgap", "tc", "formation_energy"])
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--embedding", type=Path, default=None)
    ap.add_argument("--variants", default="counts,fractions,finetune_fractions")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--max-epochs", type=int, default=300)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    set_threads(args.threads)
    task = load_task(args.property)
    t = load_embedding(args.embedding)
    rows = []
    for variant in args.variants.split(","):
        if variant.startswith(("attention", "magpie_gbt")):
            rows += other_family(variant, task, t, args)
            continue
        base, *options = variant.split("+")
        finetune = base.startswith("finetune_")
        amounts = base.removeprefix("finetune_")
        unknown = set(options) - set(OPTIONS)
        if unknown:
            raise SystemExit(f"unknown variant option(s) {sorted(unknown)}; use {', '.join(OPTIONS)}")
        sched = {k: v for o in options for k, v in OPTIONS[o].items()}
        feat = OneHot(amounts=amounts) if finetune else GanEmbedding(t, amounts=amounts)
        xtr, xva = feat.transform(task.train["formula"]), feat.transform(task.val["formula"])
        for seed in range(args.seeds):
            reg = MLPRegressor(
                seed=seed,
                batch_size=args.batch_size,
                max_epochs=args.max_epochs,
                embedding=t if finetune else None,
                **sched,
            )
            reg.fit(xtr, task.train["y"].to_numpy(), xva, task.val["y"].to_numpy())
            m = regression_metrics(task.val["y"].to_numpy(), reg.predict(xva))
            rows.append(
                {
                    "property": args.property,
                    "variant": variant,
                    "seed": seed,
                    **m,
                    "epochs": reg.best_epoch_,
                    "embedding": str(args.embedding or "shipped"),
                }
            )
            print(rows[-1], flush=True)
    REPORTS.mkdir(parents=True, exist_ok=True)
    out = REPORTS / "model_selection.csv"
    df = pd.DataFrame(rows)
    df.to_csv(out, mode="a", header=not out.is_file(), index=False)
    print(df.groupby("variant")[["mae", "rmse", "r2"]].mean())


def other_family(variant: str, task, t, args) -> list[dict]:
    """Validation scores of the attention regressor or Magpie + trees, one row per seed."""
    from discovery.attention import AttentionRegressor
    from discovery.featurizers import Magpie
    from discovery.regressors import GBTRegressor

    feat = Magpie() if variant == "magpie_gbt" else OneHot(amounts="fractions")
    xtr, xva = feat.transform(task.train["formula"]), feat.transform(task.val["formula"])
    ytr, yva = task.train["y"].to_numpy(), task.val["y"].to_numpy()
    rows = []
    for seed in range(1 if variant == "magpie_gbt" else args.seeds):
        if variant == "magpie_gbt":
            reg = GBTRegressor(seed=seed).fit(xtr, ytr, xva, yva)
            epochs = reg.best_trees_
        else:
            wide = "+w128" in variant
            reg = AttentionRegressor(embedding=t, width=128 if wide else 64, blocks=3 if wide else 2,
                                     ff=256 if wide else 128, batch_size=args.batch_size,
                                     max_epochs=args.max_epochs, seed=seed).fit(xtr, ytr, xva, yva)
            epochs = reg.best_epoch_
        rows.append({"property": args.property, "variant": variant, "seed": seed,
                     **regression_metrics(yva, reg.predict(xva)), "epochs": epochs,
                     "embedding": str(args.embedding or "shipped")})
        print(rows[-1], flush=True)
    return rows


if __name__ == "__main__":
    main()
