"""Fit the per-element shifts that move CHGNet's formation energies into OQMD's frame and ship
them as ``discovery/models/chgnet_frame/card.json`` (``discovery.structure.frame``).

    python pipelines/ship/fit_chgnet_frame.py            # from bench_structures.py's formation rows

Reads the formation section of ``pipelines/reports/bench_structures.json`` (CHGNet ΔHf of known
compounds relaxed from templates, and OQMD's ΔHf from crabnet's tables), fits ridge shifts on all
of them (relaxations off by more than 1 eV/atom are left out) and records the out-of-fold MAE
(``shift_cv``, 10-fold, seeded) as the estimate of what the shifts leave on new compounds.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from discovery.structure.frame import FRAME_DIR, OUTLIER, RIDGE, Frame, fit_shifts, shift_cv

REPORT = Path(__file__).resolve().parents[1] / "reports" / "bench_structures.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--report", type=Path, default=REPORT)
    ap.add_argument("--ridge", type=float, default=RIDGE)
    ap.add_argument("--out", type=Path, default=FRAME_DIR)
    args = ap.parse_args()
    try:
        section = json.loads(args.report.read_text())["formation"]
    except (OSError, ValueError, KeyError) as exc:
        raise SystemExit(f"{args.report}: no formation section to fit on ({exc})") from None
    rows = [r for r in section["rows"] if r["chgnet"] is not None]
    if len(rows) < 20:
        raise SystemExit(f"{args.report}: {len(rows)} compounds with an energy; at least 20 are needed")
    formulas = [r["formula"] for r in rows]
    error = np.array([r["chgnet"] - r["oqmd"] for r in rows])
    shifts = fit_shifts(formulas, error, args.ridge)
    cv = shift_cv(formulas, error, args.ridge)
    card = {"what": "per-element shifts δ (eV/atom of the element): ΔHf in OQMD's frame = CHGNet ΔHf − Σ x δ",
            "model": "CHGNet 0.3.0 (chgnet 0.4.2)",
            "fitted_on": f"{int((np.abs(error) < OUTLIER).sum())} of {len(rows)} compounds of "
                         f"{args.report.name} (formation section: settings {section.get('settings')}); "
                         f"|CHGNet − OQMD| ≥ {OUTLIER} eV/atom left out",
            "ridge": args.ridge, "mae_before": round(float(np.abs(error).mean()), 4),
            "median_abs_error_before": round(float(np.median(np.abs(error))), 4),
            "mae_out_of_fold": cv["mae"], "median_abs_error_out_of_fold": cv["median_abs_error"],
            "mae_out_of_fold_without_exploded": cv["mae_without_exploded"],
            "command": "python pipelines/ship/fit_chgnet_frame.py"}
    Frame(shifts, card).save(args.out)
    print(f"{len(shifts)} element shifts from {len(rows)} compounds -> {args.out / 'card.json'}; "
          f"MAE {card['mae_before']} -> {cv['mae']} out of fold "
          f"({cv['mae_without_exploded']} without exploded relaxations)")


if __name__ == "__main__":
    main()
