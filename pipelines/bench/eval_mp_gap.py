"""Out-of-sample check of a band-gap model on crabnet's matbench ``mp_gap`` table.

    python pipelines/bench/eval_mp_gap.py [--model discovery/models/bandgap]

``mp_gap`` is never used to train or choose the band-gap models. It overlaps the MP set they
were trained on, so the report gives metrics on its non-metals (gap > 0, like
``mp_bandgap.csv``) twice: all of them, and only compositions absent from the model's
train and validation splits (reduced-composition match). Writes
pipelines/reports/mp_gap_eval.{md,json}.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from discovery.data import load_crabnet_table
from discovery.encoding import composition_keys, parse_formulas
from discovery.model_files import ModelFileError
from discovery.properties import MODELS_DIR, PropertyModel
from discovery.regressors import regression_metrics
from discovery.tasks import load_task

REPORTS = Path(__file__).resolve().parents[1] / "reports"


def integer_keys(formulas: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Reduced-composition keys and a mask of the formulas with integer amounts."""
    a = parse_formulas(formulas.tolist()).amounts
    integer = np.isclose(a, np.rint(a)).all(1)
    return composition_keys(np.rint(a).astype(np.int64)), integer


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, default=MODELS_DIR / "bandgap")
    ap.add_argument("--out", type=Path, default=REPORTS)
    args = ap.parse_args()
    try:
        model = PropertyModel.load(args.model)
    except ModelFileError as exc:
        ap.error(str(exc))
    task = load_task("bandgap", split_seed=0)
    seen, _ = integer_keys(pd.concat([task.train["formula"], task.val["formula"]]))
    gap = load_crabnet_table("matbench_mp_gap")
    nonmetal = gap[gap["bandgap"] > 0].reset_index(drop=True)
    keys, integer = integer_keys(nonmetal["formula"])
    unseen = integer & ~np.isin(keys, seen)
    pred, std = model.predict_amounts(parse_formulas(nonmetal["formula"].tolist()).amounts)
    y = nonmetal["bandgap"].to_numpy()
    rows = {
        "mp_gap non-metals, all": {"n": len(y), **regression_metrics(y, pred)},
        "mp_gap non-metals, compositions unseen in train/val": {
            "n": int(unseen.sum()), **regression_metrics(y[unseen], pred[unseen])},
    }
    table = pd.DataFrame(rows).T
    md = ["# Band-gap model on matbench mp_gap (never used for training or model choice)", "",
          f"Command: `python pipelines/bench/eval_mp_gap.py --model {args.model}`", "",
          f"Model: `{model.card.get('version')}`; mp_gap rows {len(gap):,}, non-metals "
          f"{len(nonmetal):,}.", "", table.to_markdown(floatfmt=".3f"), ""]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "mp_gap_eval.md").write_text("\n".join(md))
    (args.out / "mp_gap_eval.json").write_text(json.dumps(rows, indent=2, default=float))
    print("\n".join(md))


if __name__ == "__main__":
    main()
