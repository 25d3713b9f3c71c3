"""Store a shipped property model's weights as float16: half the bytes, measured on validation.

    python pipelines/ship/store_float16.py --property bandgap

Why: the shipped weights share a ~40 MB budget; the band-gap ensemble (five 3.6 MB MLPs) is
the largest model, and rounding its weights to float16 leaves its predictions within a few meV.
Each member's weights are stored as float16 (Keras casts them back to float32 on load, so the
computation is unchanged); the card records the validation MAE before and after and the
largest change of a prediction, and its metrics are rescored (the test split for the card
only). The new model is written beside the old one and swapped in by renames
(``discovery.atomic.replace_dir``). Rerun ``calibrate_property_models.py`` afterwards: the
ensemble's spread, which its σ calibration reads, moves with the weights.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from discovery.atomic import recover_dir, replace_dir, staging_dir
from discovery.encoding import parse_formulas
from discovery.errors import CompositionError, ConfigError, DataError
from discovery.model_files import weights_rounding, write_card
from discovery.properties import MODELS_DIR, PropertyModel
from discovery.regressors import Ensemble, regression_metrics
from discovery.stacking import StackedPropertyModel
from discovery.tasks import load_task


def store_float16(directory: Path, task) -> dict:
    """Rewrite the plain (unstacked) property model in ``directory`` with float16 weights;
    returns what the rounding did on ``task``'s validation split (also written to the card)."""
    directory = Path(directory)
    recover_dir(directory, "card.json")  # a run killed while swapping the model in
    model = PropertyModel.load(directory)
    if isinstance(model, StackedPropertyModel):
        raise ConfigError(f"{str(directory)!r} is a stack: store each part as float16 when it is "
                          "imported (train_attention_jax.py import --weights-dtype float16)")
    if model.ensemble.weights_dtype == "float16":
        raise ConfigError(f"{str(directory)!r} already stores float16 weights")
    amounts = {s: parse_formulas(getattr(task, s)["formula"].tolist()) for s in ("val", "test")}
    for batch in amounts.values():
        batch.raise_first()
    y = {s: getattr(task, s)["y"].to_numpy() for s in ("val", "test")}
    before = model.predict_amounts(amounts["val"].amounts)[0]

    stage = staging_dir(directory)
    shutil.rmtree(stage, ignore_errors=True)
    shutil.copytree(directory, stage, ignore=shutil.ignore_patterns("card.json", "member_*.keras"))
    model.ensemble.weights_dtype = "float16"
    model.ensemble.save(stage)
    stored = Ensemble.load(stage, len(model.ensemble.members), "float16")  # scored as a run reads them
    after = {s: stored.predict(model.featurizer.transform_amounts(amounts[s].amounts))[0]
             for s in ("val", "test")}
    rounding = weights_rounding(before, after["val"], y["val"])
    card = {**model.card, "weights_dtype": "float16",  # a new version: caches keyed by it refill
            "version": f"{model.card.get('version', model.name)}-float16",
            "metrics": {s: regression_metrics(y[s], after[s]) for s in ("val", "test")},
            "training": {**model.card.get("training", {}), "weights_rounding": rounding,
                         "weights_rounding_command":
                             f"python pipelines/ship/store_float16.py --property {model.name}"}}
    write_card(stage, card)  # the marker: written last
    replace_dir(directory, "card.json")
    return rounding


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--property", required=True, choices=["bandgap", "tc", "formation_energy"])
    ap.add_argument("--models", type=Path, default=MODELS_DIR)
    args = ap.parse_args()
    try:
        rounding = store_float16(args.models / args.property, load_task(args.property))
    except (ConfigError, DataError, CompositionError) as exc:  # DataError: also a bad model file
        raise SystemExit(f"error: {exc}") from None
    print(f"{args.property}: float16 weights stored; validation {rounding}")
    print("now rerun: python pipelines/ship/calibrate_property_models.py")


if __name__ == "__main__":
    main()
