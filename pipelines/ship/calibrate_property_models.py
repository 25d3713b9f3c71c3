"""Fit each shipped property model's applicability domain and σ calibration on its validation
split, and the Tc model's report rule (superconductor-like or not), and record them in the cards.

    python pipelines/ship/calibrate_property_models.py                  # all three properties
    python pipelines/ship/calibrate_property_models.py --properties tc
    python pipelines/ship/calibrate_property_models.py --keep-tc-rule  # domains only, Tc rule as shipped

The test splits are not read here: ``pipelines/bench/bench_calibration.py`` reports on them.
Predictions on the validation split are cached under ``runs/calib/`` (keyed by model version).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from discovery.domain import ApplicabilityDomain
from discovery.domain_classifier import DomainClassifier
from discovery.encoding import parse_formulas
from discovery.featurizers import GanEmbedding
from discovery.properties import MODELS_DIR, PROPERTY_UNITS, PropertyModel
from discovery.tasks import load_task

CACHE = Path("runs/calib")
TC_NEGATIVE_GAP = 0.5  # eV: MP compositions with at least this DFT band gap are not superconductors


def amounts_of(frame) -> np.ndarray:
    batch = parse_formulas(frame["formula"].tolist())
    batch.raise_first()
    return batch.amounts


def val_predictions(prop: str, model, task) -> tuple[np.ndarray, np.ndarray]:
    """(mean, raw std) on the validation split, cached by model version."""
    version = str(model.card.get("version", ""))
    path = CACHE / f"{prop}_val.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as z:
            if str(z["version"]) == version and len(z["mean"]) == len(task.val):
                return z["mean"], z["std"]
    mean, std = model.predict_amounts(amounts_of(task.val))
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(path, mean=mean, std=std, version=version)
    return mean, std


def fraction_keys(a: np.ndarray) -> np.ndarray:
    f = np.round(a / a.sum(axis=1, keepdims=True), 4)
    return np.array([r.tobytes() for r in f])


def fit_tc_rule(model_dir: Path, tc_task, seed: int) -> dict:
    """Superconductor-like (SuperCon) against insulators (MP band gap >= 0.5 eV), T features."""
    gap = load_task("bandgap")
    pos, pos_val = amounts_of(tc_task.train), amounts_of(tc_task.val)
    known = set(fraction_keys(np.concatenate([pos, pos_val])))
    negs = []
    for frame in (gap.train, gap.val):
        a = amounts_of(frame[frame["y"] >= TC_NEGATIVE_GAP])
        negs.append(a[~np.isin(fraction_keys(a), list(known))])
    feat = GanEmbedding(model_dir / "tmlp" / "T.npy", amounts="fractions")
    clf = DomainClassifier(feat, seed=seed).fit(pos, negs[0], pos_val, negs[1])
    entry = clf.save(model_dir)
    entry["featurizer"] = {"name": "gan_embedding", "T": "tmlp/T.npy", "amounts": "fractions"}
    entry["negatives"] = (f"mp_bandgap.csv rows with a DFT band gap >= {TC_NEGATIVE_GAP} eV (train and "
                          "validation splits of load_task('bandgap')), compositions also in SuperCon removed")
    return entry


def e_hull_floor(quantile: float = 0.02) -> dict:
    """How far below the hull of the others known compounds lie: per element count, the
    ``quantile`` of the leave-one-out decomposition energy of the shipped known phases (OQMD,
    each phase on the hull of all others). A predicted e_hull below it is rarer than that
    among known compounds: more likely a model or hull error than a discovery."""
    from discovery.stability import default_hulls

    hulls = default_hulls()
    if hulls is None:
        raise SystemExit("e_hull floor needs the known phases: run `discover data fetch`")
    amounts = hulls.amounts()
    d = hulls.energies - hulls.leave_one_out_hull_energy(amounts, hulls.energies)
    n = (amounts > 0).sum(axis=1)
    ok = np.isfinite(d)
    by, counts = {}, {}
    for k in range(2, 9):
        rows = ok & (n >= k) if k == 5 else ok & (n == k)  # 5 or more elements pooled (few phases)
        if k > 5:
            by[str(k)], counts[str(k)] = by["5"], counts["5"]
            continue
        by[str(k)], counts[str(k)] = float(np.quantile(d[rows], quantile)), int(rows.sum())
    return {"quantile": quantile, "by_elements": by, "phases": counts,
            "source": "leave-one-out decomposition energies of the shipped known phases (OQMD)"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--properties", default="bandgap,formation_energy,tc")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep-tc-rule", action="store_true",
                    help="keep the shipped Tc report rule (tc/reported_where.keras); refit the domains")
    args = ap.parse_args()
    props = args.properties.split(",")
    bad = [p for p in props if p not in PROPERTY_UNITS]
    if bad:
        raise SystemExit(f"--properties: unknown property {bad[0]!r}; use {', '.join(PROPERTY_UNITS)}")
    for prop in props:
        d = MODELS_DIR / prop
        task = load_task(prop)
        model = PropertyModel.load(d)
        mean, std = val_predictions(prop, model, task)
        dom = ApplicabilityDomain.fit(amounts_of(task.train), amounts_of(task.val),
                                      mean - task.val["y"].to_numpy(), std)
        card = json.loads((d / "card.json").read_text())
        card["applicability"] = {**dom.save(d),
                                 "command": "python pipelines/ship/calibrate_property_models.py"}
        if prop == "tc" and not (args.keep_tc_rule and "reported_where" in card):
            card["reported_where"] = fit_tc_rule(d, task, args.seed)
        if prop == "formation_energy":
            card["applicability"]["e_hull_floor"] = e_hull_floor()
        (d / "card.json").write_text(json.dumps(card, indent=2, default=float))
        v = dom.validation
        rule = card.get("reported_where", {}).get("val", {})
        print(f"{prop}: flagged {v['flagged_share']:.3f} of validation, MAE out/in {v['mae_ratio']:.2f}, "
              f"within 1σ {v['within_1sigma']:.3f}, 2σ {v['within_2sigma']:.3f}"
              + (f"; Tc rule keeps {rule['positives_kept']:.3f} of SuperCon val, "
                 f"{rule['negatives_kept']:.3f} of insulators" if rule else ""))


if __name__ == "__main__":
    main()
