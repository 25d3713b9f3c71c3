"""Final-report comparison on the test splits: each shipped property model against Magpie +
gradient-boosted trees trained on the same training split (scikit-learn's defaults, 31 leaves and
learning rate 0.1; trees added until 300 more bring no validation gain, up to --max-trees).
Nothing here selects a model; the test split is read only to report.

    python pipelines/bench/bench_vs_magpie_gbt.py --properties bandgap,tc

Writes pipelines/reports/bench_vs_magpie_gbt.md and .json (MAE / RMSE / R² on test for both).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from discovery.atomic import atomic_write
from discovery.encoding import parse_formulas
from discovery.featurizers import Magpie
from discovery.properties import load_property_model
from discovery.regressors import GBTRegressor, regression_metrics
from discovery.tasks import load_task

REPORTS = Path(__file__).resolve().parents[1] / "reports"


def compare(prop: str, seed: int = 0, max_trees: int = 30000) -> dict:
    task = load_task(prop)
    y_test = task.test["y"].to_numpy()
    shipped = load_property_model(prop)
    mean, _ = shipped.predict_amounts(parse_formulas(task.test["formula"].tolist()).amounts)
    feat = Magpie()
    t0 = time.perf_counter()
    gbt = GBTRegressor(seed=seed, max_trees=max_trees)
    gbt.fit(feat.transform(task.train["formula"]), task.train["y"].to_numpy(),
            feat.transform(task.val["formula"]), task.val["y"].to_numpy())
    seconds = time.perf_counter() - t0
    return {"property": prop, "unit": task.unit, "test_rows": len(y_test),
            "shipped": {"version": shipped.card.get("version"), **regression_metrics(y_test, mean)},
            "magpie_gbt": {"trees": gbt.best_trees_, "val_mae": gbt.val_mae_,
                           "fit_seconds": round(seconds, 1),
                           **regression_metrics(y_test, gbt.predict(feat.transform(task.test["formula"])))}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--properties", default="bandgap,tc")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-trees", type=int, default=30000,
                    help="cap on the trees (they stop 300 after the best validation MAE)")
    args = ap.parse_args()
    props = args.properties.split(",")
    bad = [p for p in props if p not in ("bandgap", "tc", "formation_energy")]
    if bad:
        raise SystemExit(f"error: --properties {bad[0]!r}: use bandgap, tc or formation_energy")
    rows = []
    for prop in props:
        rows.append(compare(prop, args.seed, args.max_trees))
        print(json.dumps(rows[-1], default=float), flush=True)
    lines = ["# Shipped property models vs Magpie + gradient-boosted trees, test splits", "",
             "Same seeded train/validation/test splits (`discovery.tasks.load_task`); trees chosen on "
             "validation; the test split only reported.", "",
             "| property | test rows | shipped MAE | shipped RMSE | shipped R² | Magpie+GBT MAE "
             "| Magpie+GBT RMSE "
             "| Magpie+GBT R² | trees |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        s, g = r["shipped"], r["magpie_gbt"]
        lines.append(f"| {r['property']} ({r['unit']}) | {r['test_rows']:,} | {s['mae']:.4f} | "
                     f"{s['rmse']:.4f} | "
                     f"{s['r2']:.4f} | {g['mae']:.4f} | {g['rmse']:.4f} | {g['r2']:.4f} | {g['trees']} |")
    lines += ["", "```", "python pipelines/bench/bench_vs_magpie_gbt.py --properties " + args.properties,
              "```", ""]
    atomic_write(REPORTS / "bench_vs_magpie_gbt.md", lambda p: p.write_text("\n".join(lines)))
    text = json.dumps(rows, indent=2, default=float)
    atomic_write(REPORTS / "bench_vs_magpie_gbt.json", lambda p: p.write_text(text))


if __name__ == "__main__":
    main()
