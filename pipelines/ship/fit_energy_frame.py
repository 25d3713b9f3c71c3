"""Fit the per-element shifts that move relaxed formation energies into OQMD's frame and ship
them (``discovery.structure.frame``), for one energy of ``frame.ENERGIES``:

    python pipelines/ship/fit_energy_frame.py --energy chgnet   # CHGNet's ΔHf alone
    python pipelines/ship/fit_energy_frame.py --energy mean     # mean of CHGNet's and SevenNet-0's

Reads the formation section of ``pipelines/reports/bench_structures.json`` (ΔHf of known compounds
relaxed from templates, and OQMD's ΔHf from crabnet's tables), fits ridge shifts on its known
compounds that have the energy (OQMD's ΔHf within ``KNOWN_E_HULL`` of OQMD's hull; relaxations
off by more than 1 eV/atom are left out) and records the out-of-fold MAE (``shift_cv``, 10-fold,
seeded) as the estimate of what the shifts leave on new compounds.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from discovery.structure.frame import (
    ENERGIES,
    KNOWN_E_HULL,
    OUTLIER,
    RIDGE,
    Frame,
    energy_of,
    fit_shifts,
    shift_cv,
)

REPORT = Path(__file__).resolve().parents[1] / "reports" / "bench_structures.json"
WHAT = {"chgnet": ("CHGNet ΔHf", "CHGNet 0.3.0 (chgnet 0.4.2)"),
        "mean": ("(CHGNet ΔHf + SevenNet-0 ΔHf) / 2, each against its own elemental references",
                 "CHGNet 0.3.0 (chgnet 0.4.2) and SevenNet-0 (sevenn 0.13.0)")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--energy", choices=sorted(ENERGIES), default="chgnet")
    ap.add_argument("--report", type=Path, default=REPORT)
    ap.add_argument("--ridge", type=float, default=RIDGE)
    ap.add_argument("--out", type=Path, help="default: the energy's folder under discovery/models/")
    args = ap.parse_args()
    try:
        section = json.loads(args.report.read_text())["formation"]
    except (OSError, ValueError, KeyError) as exc:
        raise SystemExit(f"{args.report}: no formation section to fit on ({exc})") from None
    if any("oqmd_e_hull" not in r for r in section["rows"]):
        raise SystemExit(f"{args.report}: formation rows without oqmd_e_hull; rewrite the section with "
                         "`python pipelines/bench/bench_structures.py --sections formation --collect`")
    with_energy = [(r, e) for r in section["rows"]
                   if (e := energy_of(args.energy, r["chgnet"], r.get("rerank"))) is not None]
    rows = [(r["formula"], e - r["oqmd"]) for r, e in with_energy if r["oqmd_e_hull"] <= KNOWN_E_HULL]
    if len(rows) < 20:
        raise SystemExit(f"{args.report}: {len(rows)} compounds with a {args.energy} energy; "
                         "at least 20 are needed")
    formulas = [f for f, _ in rows]
    error = np.array([e for _, e in rows])
    shifts = fit_shifts(formulas, error, args.ridge)
    cv = shift_cv(formulas, error, args.ridge)
    what, model = WHAT[args.energy]
    card = {"what": f"per-element shifts δ (eV/atom of the element): ΔHf in OQMD's frame = {what} − Σ x δ",
            "energy": args.energy, "model": model,
            "fitted_on": f"{int((np.abs(error) < OUTLIER).sum())} of the {len(rows)} known compounds (OQMD "
                         f"ΔHf within {KNOWN_E_HULL} eV/atom of OQMD's hull; {len(with_energy)} with the "
                         f"energy) of {args.report.name} (formation section: settings "
                         f"{section.get('settings')}); |error| ≥ {OUTLIER} eV/atom left out",
            "ridge": args.ridge, "mae_before": round(float(np.abs(error).mean()), 4),
            "median_abs_error_before": round(float(np.median(np.abs(error))), 4),
            "mae_out_of_fold": cv["mae"], "median_abs_error_out_of_fold": cv["median_abs_error"],
            "mae_out_of_fold_without_exploded": cv["mae_without_exploded"],
            "command": f"python pipelines/ship/fit_energy_frame.py --energy {args.energy}"}
    out = args.out or ENERGIES[args.energy]
    Frame(shifts, card).save(out)
    print(f"{len(shifts)} element shifts from {len(rows)} known compounds -> {out / 'card.json'}; "
          f"MAE {card['mae_before']} -> {cv['mae']} out of fold "
          f"({cv['mae_without_exploded']} without exploded relaxations)")


if __name__ == "__main__":
    main()
