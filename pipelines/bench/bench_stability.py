"""Stability from composition: formation energy, decomposition energy and stable/unstable calls.

Two protocols (results in pipelines/reports/bench_stability.{json,md}, one row per protocol ×
model; finished rows are kept, so the benchmark continues across sessions):

- ``bartel`` (Bartel et al., npj Comput. Mater. 6, 97 (2020), data ``CritExam__Ef/Ed`` in the
  crabnet wheel): train on the train split (validation split for early stopping), predict the
  test compositions' E_f, place each on the hull of all *other* compositions' DFT E_f, and score
  E_f MAE, decomposition-energy (ΔHd) MAE, stability precision / recall / F1 / accuracy at
  ΔHd ≤ 0 and the discovery acceleration factor (precision ÷ share of stable ones).
- ``oqmd``: the hull of crabnet's OQMD training split (DFT, |ΔHf| > 5 eV/atom dropped), the test
  compositions placed on it with predicted and with DFT energies, the same metrics.

Models: ``shipped`` (the shipped formation-energy ensemble; OQMD-trained, so OQMD protocol
only), ``tmlp`` (the shipped recipe: MLP with T fine-tuned, fractions in), ``attention``
(discovery.attention, element tokens on T), ``magpie-gbt`` (Magpie features + scikit-learn's
gradient-boosted trees), ``magpie-mlp`` (Magpie features + an MLP ensemble, 512-256-128-64),
``attention-sN`` (another attention model, seed + N), ``attention-<tag>`` (one trained on a GPU
by ``pipelines/train/train_attention_jax.py`` and imported under --runs), ``stack``
(the ``--stack`` models averaged, weights chosen on the validation split). Trained models are
kept under --runs and reused.

    python pipelines/bench/bench_stability.py --protocol oqmd --models shipped
    python pipelines/bench/bench_stability.py --protocol bartel --models tmlp,magpie-gbt --members 2
    python pipelines/bench/bench_stability.py --protocol bartel --models attention --members 2 --budget-min 40
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from discovery.benchmarks.stability import IMPORTED, SEEDED, protocol_data, save_trained
from discovery.encoding import parse_formulas
from discovery.featurizers import OneHot, load_embedding
from discovery.regressors import Ensemble, regression_metrics
from discovery.runtime import set_threads
from discovery.stability import PhaseHulls, plausible_formation_energies, stability_metrics
from discovery.stacking import stack_weights

REPORTS = Path("pipelines/reports")
MODELS = ("shipped", "tmlp", "attention", "magpie-gbt", "magpie-mlp", "stack")
PUBLISHED = [  # Bartel et al. 2020, Table 1 / Fig. 2 (composition-only models, MP)
    {"model": "Magpie (published)", "ef_mae": 0.13, "ed_mae": 0.12, "f1": 0.57},
    {"model": "ElemNet (published)", "ef_mae": 0.10, "ed_mae": 0.10, "f1": 0.60},
    {"model": "Roost (published)", "ef_mae": 0.06, "ed_mae": 0.06, "f1": 0.72},
]


def train_model(name: str, data: dict[str, pd.DataFrame], args, run_dir: Path):
    """A fitted predictor ``f(formulas) -> E_f``; trained once and kept under ``run_dir``."""
    from discovery.properties import PropertyModel, load_property_model

    if name == "shipped":
        model = load_property_model("formation_energy")
        info = {"card": model.card.get("version")}
        return lambda f: model.predict_amounts(parse_formulas(f).amounts)[0], info
    if name == "stack":  # component models averaged with weights fit on the validation split
        parts = [train_model(m, data, args, run_dir) for m in args.stack.split(",")]
        ok = plausible_formation_energies(data["val"]["y"])  # the same data-error rule as the test rows
        val, y_val = data["val"]["formula"][ok].tolist(), data["val"]["y"].to_numpy()[ok]
        w, val_mae = stack_weights([f(val) for f, _ in parts], y_val)
        return (lambda f: sum(wi * g(f) for wi, (g, _) in zip(w, parts, strict=True)),
                {"components": args.stack, "weights": w.tolist(), "val_mae": val_mae,
                 **{m: info for m, (_, info) in zip(args.stack.split(","), parts, strict=True)}})
    if name == "magpie-gbt":
        from discovery.featurizers import Magpie
        from discovery.regressors import GBTRegressor

        feat = Magpie()
        gbt = GBTRegressor(seed=args.seed).fit(feat.transform(data["train"]["formula"]), data["train"]["y"],
                                               feat.transform(data["val"]["formula"]), data["val"]["y"])
        return lambda f: gbt.predict(feat.transform(f)), {"trees": gbt.best_trees_, "val_mae": gbt.val_mae_}
    member_dir = run_dir / name
    card_file = member_dir / "card.json"
    if card_file.is_file():
        model = PropertyModel.load(member_dir)
        info = json.loads(card_file.read_text()).get("training", {})
    else:
        from discovery.featurizers import Magpie

        feat = Magpie() if name == "magpie-mlp" else OneHot(amounts="fractions")
        x = {s: feat.transform(data[s]["formula"]) for s in ("train", "val")}
        y = {s: data[s]["y"].to_numpy() for s in ("train", "val")}
        t = load_embedding(None)
        t0 = time.perf_counter()
        if name == "tmlp":
            ens = Ensemble.fit(x["train"], y["train"], x["val"], y["val"], k=args.members, seed=args.seed,
                               max_epochs=args.max_epochs, batch_size=1024, lr_patience=10, patience=30,
                               embedding=t)
        elif name == "magpie-mlp":  # the Magpie half of the shipped stacks (stack_property_model.py)
            ens = Ensemble.fit(x["train"], y["train"], x["val"], y["val"], k=args.members, seed=args.seed,
                               max_epochs=args.max_epochs, batch_size=1024, lr_patience=10, patience=30,
                               hidden=(512, 256, 128, 64))
        elif name == "attention" or SEEDED.fullmatch(name):
            from discovery.attention import AttentionRegressor

            regs = []
            offset = int(name[len("attention-s"):]) if name != "attention" else 0
            for i in range(args.members):
                r = AttentionRegressor(embedding=t, width=args.width, blocks=args.blocks, ff=2 * args.width,
                                       batch_size=args.batch_size, max_epochs=args.max_epochs,
                                       seed=args.seed + offset * args.members + i,
                                       max_minutes=args.budget_min / args.members,
                                       checkpoint_dir=run_dir / f"{name}_ckpt_{i}")
                regs.append(r.fit(x["train"], y["train"], x["val"], y["val"]))
            ens = Ensemble([r.model_ for r in regs])
            ens.fit_info = {"best_epochs": [r.best_epoch_ for r in regs],
                            "epochs": [len(r.history_.get("loss", [])) for r in regs]}
        elif IMPORTED.fullmatch(name):
            raise SystemExit(f"error: no trained model {str(member_dir)!r}; train it on a GPU with "
                             "pipelines/train/train_attention_jax.py and import it there first")
        else:
            raise SystemExit(f"error: unknown model {name!r}; use shipped, tmlp, attention, attention-sN, "
                             "magpie-mlp, magpie-gbt or stack")
        info = {**ens.fit_info, "wall_seconds": round(time.perf_counter() - t0, 1), "members": args.members}
        model = PropertyModel("formation_energy", "eV/atom", feat, ens)
        save_trained(model, member_dir, name, info, data)
    return lambda f: model.predict_amounts(parse_formulas(f).amounts)[0], info


def evaluate(protocol: str, name: str, args) -> dict:
    data = protocol_data(protocol)
    test = data["test"]
    keep = plausible_formation_energies(test["y"])  # the OQMD test split holds 4 data errors
    x_test = parse_formulas(test["formula"].tolist()).amounts[keep]
    true = test["y"].to_numpy()[keep]
    t0 = time.perf_counter()
    if protocol == "bartel":
        every = pd.concat([data[s] for s in ("train", "val", "test")], ignore_index=True)
        hulls = PhaseHulls.from_table(every, column="y", source="CritExam train+val+test")
        hull = hulls.leave_one_out_hull_energy(x_test, true)
        check = np.abs((true - hull) - test["ed_bartel"].to_numpy()[keep])
        extra = {"ed_vs_bartel_mean_abs": float(check.mean()), "ed_vs_bartel_max_abs": float(check.max())}
    else:
        hulls = PhaseHulls.from_table(data["train"], column="y", source="OQMD train")
        extra = {"test_outliers_dropped": int((~keep).sum()), "hull_source": hulls.sources}
        hull = hulls.hull_energy(x_test)
    hull_seconds = time.perf_counter() - t0
    predict, info = train_model(name, data, args, Path(args.runs) / protocol)
    pred_all = predict(test["formula"].tolist())
    ef_all = regression_metrics(test["y"].to_numpy(), pred_all)
    pred = pred_all[keep]
    row = {"protocol": protocol, "model": name, **stability_metrics(true, pred, hull),
           "ef_mae_all_test": ef_all["mae"], "ef_rmse_all_test": ef_all["rmse"],
           "hull_seconds": round(hull_seconds, 1), "training": info, **extra}
    if protocol == "bartel":
        # Bartel et al.'s own protocol: every competing phase's energy predicted as well, so
        # errors of the compound and of its competitors can cancel (or not)
        predicted = every.assign(y=predict(every["formula"].tolist()))
        ml = PhaseHulls.from_table(predicted, column="y", source="CritExam, predicted")
        m = stability_metrics(true, pred, hull, hull_pred=ml.leave_one_out_hull_energy(x_test, pred))
        row["ml_hull"] = {k: m[k] for k in ("ed_mae", "precision", "recall", "f1", "accuracy", "daf")}
    return row


def write_report(rows: list[dict], commands: list[str]) -> None:
    REPORTS.mkdir(parents=True, exist_ok=True)
    (REPORTS / "bench_stability.json").write_text(json.dumps(rows, indent=2, default=float) + "\n")
    lines = ["# Stability from composition (`pipelines/bench/bench_stability.py`)", "",
             "Decomposition energy ΔHd = E_f − (hull of the other known phases at the same composition);",
             "stable means ΔHd ≤ 0. DAF: precision ÷ share of stable compounds. 'all stable' is the F1",
             "of calling every compound stable. With the competitors' DFT energies (the issue's protocol)",
             "a test compound's ΔHd error is its E_f error; rows marked 'every phase predicted' follow",
             "Bartel et al., who put every compound of the chemical space at its predicted energy.", ""]
    for protocol, title in (("bartel", "Bartel protocol (CritExam, MP, 12,753 test compositions)"),
                            ("oqmd", "OQMD protocol (hull of the crabnet train split; test placed on it)")):
        sel = [r for r in rows if r["protocol"] == protocol]
        if not sel and protocol != "bartel":
            continue
        lines += [f"## {title}", "",
                  "| model | E_f MAE | ΔHd MAE | precision | recall | F1 | accuracy | DAF | stable share | "
                  "F1 all stable |", "|---|---|---|---|---|---|---|---|---|---|"]
        for r in sel:
            lines.append(f"| {r['model']} | {r['ef_mae']:.4f} | {r['ed_mae']:.4f} | {r['precision']:.3f} | "
                         f"{r['recall']:.3f} | {r['f1']:.3f} | {r['accuracy']:.3f} | {r['daf']:.2f} | "
                         f"{r['stable_share']:.3f} | {r['f1_all_stable']:.3f} |")
        if protocol == "bartel":
            for r in sel:
                if "ml_hull" in r:
                    m = r["ml_hull"]
                    lines.append(f"| {r['model']}, every phase predicted | {r['ef_mae']:.4f} | "
                                 f"{m['ed_mae']:.4f} | {m['precision']:.3f} | {m['recall']:.3f} | "
                                 f"{m['f1']:.3f} | {m['accuracy']:.3f} | {m['daf']:.2f} | | |")
            for p in PUBLISHED:
                lines.append(f"| {p['model']} | {p['ef_mae']:.2f} | {p['ed_mae']:.2f} | | | {p['f1']:.2f} "
                             "| | | | |")
            chk = [r for r in sel if "ed_vs_bartel_mean_abs" in r]
            if chk:
                lines += ["", f"Our leave-one-out hull reproduces Bartel's DFT ΔHd (CritExam__Ed) to "
                              f"{chk[0]['ed_vs_bartel_mean_abs']:.1e} eV/atom on average "
                              f"(max {chk[0]['ed_vs_bartel_max_abs']:.1e})."]
        for r in sel:
            t = r.get("training", {})
            if r["model"] == "stack" and "weights" in t:
                mix = " + ".join(f"{w:.2f} × {m}" for w, m in zip(t["weights"], t["components"].split(","),
                                                                   strict=True))
                lines += ["", f"stack = {mix} (weights with the lowest validation MAE, "
                              f"{t['val_mae']:.4f} eV/atom; grid 0.05)."]
        lines.append("")
    lines += ["Commands:", "", *[f"    {c}" for c in commands], ""]
    (REPORTS / "bench_stability.md").write_text("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--protocol", choices=["bartel", "oqmd"], required=True)
    ap.add_argument("--models", default="tmlp")
    ap.add_argument("--members", type=int, default=2)
    ap.add_argument("--max-epochs", type=int, default=300)
    ap.add_argument("--budget-min", type=float, default=60.0, help="attention: wall-clock minutes in all")
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--blocks", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--stack", default="tmlp,attention", help="components of the 'stack' model")
    ap.add_argument("--runs", default="runs/bench_stability")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--force", action="store_true", help="recompute rows already in the report")
    args = ap.parse_args()
    set_threads(args.threads)
    out = REPORTS / "bench_stability.json"
    rows = json.loads(out.read_text()) if out.is_file() else []
    cmd_file = REPORTS / "bench_stability_commands.txt"
    commands = cmd_file.read_text().splitlines() if cmd_file.is_file() else []
    import sys

    cmd = "python pipelines/bench/bench_stability.py " + " ".join(sys.argv[1:])
    models = args.models.split(",")
    if "stack" in args.stack.split(","):
        raise SystemExit("error: --stack lists the stack's components; 'stack' cannot be one of them")
    unknown = [m for m in models + args.stack.split(",")
               if (m not in MODELS and not SEEDED.fullmatch(m) and not IMPORTED.fullmatch(m))
               or (m == "shipped" and args.protocol != "oqmd")]
    if unknown:
        raise SystemExit(f"error: model {unknown[0]!r} is not for protocol {args.protocol!r}; use "
                         f"{', '.join(m for m in MODELS if m != 'shipped' or args.protocol == 'oqmd')}")
    for name in models:
        if not args.force and any(r["protocol"] == args.protocol and r["model"] == name for r in rows):
            print(f"{args.protocol}/{name}: already in {out} (--force recomputes)")
            continue
        row = evaluate(args.protocol, name, args)
        rows = [r for r in rows if not (r["protocol"] == args.protocol and r["model"] == name)] + [row]
        if cmd not in commands:
            commands.append(cmd)
        cmd_file.write_text("\n".join(commands) + "\n")
        write_report(rows, commands)
        print(json.dumps({k: v for k, v in row.items() if k != "training"}, default=float))


if __name__ == "__main__":
    main()
