"""Probe: does a finer weight grid, or a linear stack with an intercept, bring the shipped
formation-energy stack (the four shipped attention parts) to <= 0.031 eV/atom on OQMD's test split?

Weights and coefficients are chosen on the validation split (MAE); the test split is scored once.
Parts' predictions are cached in runs/fe_stack/ (version-keyed).

    python research/probe_fe_stack.py

Measured 2026-12-03 (load_task splits): shipped weights val 0.03580, test 0.03198; grid 0.01 val
0.03579, test 0.03197; LAD linear stack with an intercept val 0.03579, test 0.03197. No gain: the
parts, not their weights, set the error.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.optimize import linprog

from discovery.encoding import parse_formulas
from discovery.properties import load_property_model
from discovery.stacking import stack_weights
from discovery.tasks import load_task

CACHE = Path("runs/fe_stack")


def part_predictions(model, name: str, split: str, amounts: np.ndarray) -> np.ndarray:
    path = CACHE / f"{name}_{split}.npz"
    version = str(model.card.get("version", ""))
    if path.is_file():
        with np.load(path) as z:
            if str(z["version"]) == version and len(z["mean"]) == len(amounts):
                return z["mean"]
    mean, _ = model.predict_amounts(amounts)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(path, mean=mean, version=version)
    return mean


def lad(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least absolute deviations with an intercept (a linear programme)."""
    n, k = x.shape
    a = np.hstack([np.ones((n, 1)), x])
    # variables: beta (k+1, free), u (n >= 0), v (n >= 0); a beta + u - v = y; min sum(u + v)
    c = np.concatenate([np.zeros(k + 1), np.ones(2 * n)])
    from scipy.sparse import eye, hstack
    a_eq = hstack([a, eye(n), -eye(n)]).tocsr()
    bounds = [(None, None)] * (k + 1) + [(0, None)] * (2 * n)
    res = linprog(c, A_eq=a_eq, b_eq=y, bounds=bounds, method="highs")
    return res.x[: k + 1]


def main() -> None:
    task = load_task("formation_energy")
    stack = load_property_model("formation_energy")
    amounts = {}
    for split in ("val", "test"):
        batch = parse_formulas(getattr(task, split)["formula"].tolist())
        batch.raise_first()
        amounts[split] = batch.amounts
    y = {s: getattr(task, s)["y"].to_numpy() for s in ("val", "test")}
    names = list(stack.components)
    preds = {s: [part_predictions(stack.components[c], c, s, amounts[s]) for c in names]
             for s in ("val", "test")}
    shipped = np.array([stack.weights[c] for c in names])

    def mae(w, s, b=0.0):
        return float(np.abs(b + sum(wi * p for wi, p in zip(w, preds[s], strict=True)) - y[s]).mean())

    print(f"parts {names}")
    print(f"shipped weights {shipped}: val {mae(shipped, 'val'):.5f} test {mae(shipped, 'test'):.5f}")
    for step in (0.05, 0.02, 0.01):
        w, v = stack_weights(preds["val"], y["val"], step=step)
        print(f"grid {step}: weights {np.round(w, 2)} val {v:.5f} test {mae(w, 'test'):.5f}")
    coef = lad(np.column_stack(preds["val"]), y["val"])
    print(f"LAD linear + intercept: {np.round(coef, 4)} val {mae(coef[1:], 'val', coef[0]):.5f} "
          f"test {mae(coef[1:], 'test', coef[0]):.5f}")


if __name__ == "__main__":
    main()
