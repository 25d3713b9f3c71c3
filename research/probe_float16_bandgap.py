"""Probe: what storing the shipped band-gap ensemble's weights as float16 (half of its 18 MB,
room under the ~40 MB budget for two more width-256 formation-energy parts) costs in accuracy.

Each member's weights are rounded to float16 and back (what ``save_without_optimizer(...,
weights_dtype="float16")`` stores and Keras casts on load); validation MAE before and after.

    python research/probe_float16_bandgap.py

Measured 2026-12-03: validation MAE 0.38949 eV both ways; largest prediction change 0.0019 eV.
"""

from __future__ import annotations

import numpy as np

from discovery.encoding import parse_formulas
from discovery.properties import load_property_model
from discovery.tasks import load_task


def main() -> None:
    task, model = load_task("bandgap"), load_property_model("bandgap")
    batch = parse_formulas(task.val["formula"].tolist())
    batch.raise_first()
    y = task.val["y"].to_numpy()
    mean32, _ = model.predict_amounts(batch.amounts)
    for m in model.ensemble.members:
        m.set_weights([w.astype(np.float16).astype(w.dtype) for w in m.get_weights()])
    mean16, _ = model.predict_amounts(batch.amounts)
    print(f"band gap validation MAE: float32 {np.abs(mean32 - y).mean():.5f} eV, "
          f"float16 weights {np.abs(mean16 - y).mean():.5f} eV; "
          f"largest prediction change {np.abs(mean16 - mean32).max():.5f} eV")


if __name__ == "__main__":
    main()
