"""Choose the shipped language model's sampling mode and temperature on the MP validation
split, without retraining, and re-ship it (with beam decoding, ``select_lm_decoding.py``,
these are the draws that follow the beam; the decoding itself is kept as shipped).

    python pipelines/select/select_lm_sampling.py --temperatures 0.5,0.65,0.8,1.0 --sampling plain,distinct

The network in ``discovery/models/lm`` (trained by ``train_lm.py``) is sampled at ``--n``
samples (seed 1) per (temperature, mode) and judged as ``train_lm.py`` judges it: novelty
against everything it was trained on (the union training set), held-out = the MP validation
split. *plain* is ancestral sampling; *distinct* draws without repeats within a stream (and
raises the temperature when fewer than 30% of a 4,096-draw block are new). The rule is
``train_lm.select`` (highest yield, ties within two Poisson errors won by the precision after
the CN+EN screen). Writes the card and ``pipelines/reports/lm_sampling.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from discovery.atomic import atomic_write
from discovery.benchmarks.lm_selection import EVAL_SEED, parse_sweep, quality, screen_shares, select
from discovery.encoding import composition_keys
from discovery.errors import ConfigError
from discovery.generation.autoregressive import SHIPPED_LM_DIR, CompositionLM
from discovery.generation.splits import generator_split

REPORTS = Path(__file__).resolve().parents[1] / "reports"

COLS = ["temperature", "sampling", "precision_pct", "precision_screened_pct", "yield_per_100k",
        "yield_screened_per_100k", "unique_pct", "novel_pct", "cn_pct", "train_cn_pct", "en_pct",
        "train_en_pct", "samples_per_s"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--temperatures", default="0.5,0.65,0.8,1.0")
    ap.add_argument("--sampling", default="plain,distinct")
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--model", type=Path, default=SHIPPED_LM_DIR)
    ap.add_argument("--report", type=Path, default=REPORTS / "lm_sampling.md")
    args = ap.parse_args()
    try:
        temps, modes = parse_sweep(args.temperatures, args.sampling)
    except ConfigError as exc:
        sys.exit(f"error: {exc}")
    lm = CompositionLM.load(args.model)
    mp_train, mp_val = generator_split("mp")
    train_keys = composition_keys(generator_split("union")[0])  # the network saw union, then MP
    val_keys = composition_keys(mp_val)
    shares = screen_shares(mp_train)
    rows = []
    for t in temps:
        for mode in modes:
            draws = lm.with_options(temperature=t, distinct=mode == "distinct", decoding="sample")
            m = quality(draws, args.n, train_keys, val_keys, shares)
            rows.append({"temperature": t, "sampling": mode, **m})
            print(json.dumps(rows[-1]), flush=True)
    win = select(rows)
    ship = lm.with_options(temperature=win["temperature"], distinct=win["sampling"] == "distinct")
    rule = (f"highest yield on the MP validation split ({args.n} samples, seed {EVAL_SEED}) over "
            "temperature and sampling mode (select_lm_sampling.py); yields within 2 sqrt(hits) of the best "
            "are a tie, won by the higher precision after the CN+EN screen")
    ship.card = {**lm.card, "selection": rule, "metrics_mp_validation": win, "sampling_candidates": rows}
    ship.save(args.model)
    shipped_version = CompositionLM.load(args.model).card.get("version", "")
    lines = ["# Language model: sampling mode and temperature", "",
             f"Shipped network `{lm.card.get('version')}`, MP validation split ({len(val_keys):,}), "
             f"{args.n:,} samples, seed {EVAL_SEED}; novelty against the union training set. *distinct*: "
             "no composition twice in a stream; the temperature rises by 0.05 whenever fewer than 30% "
             "of a block's draws are new.", "",
             "| " + " | ".join(COLS) + " |", "|" + "---|" * len(COLS)]
    lines += ["| " + " | ".join(str(r.get(c, "")) for c in COLS) + " |" for r in rows]
    lines += ["", f"**Shipped**: temperature {win['temperature']}, {win['sampling']} sampling "
              f"→ `{shipped_version}`.", "", "```", "python " + " ".join(sys.argv), "```", ""]
    atomic_write(args.report, lambda p: p.write_text("\n".join(lines)))
    print("shipped", json.dumps({k: win[k] for k in ("temperature", "sampling", "yield_per_100k")}))


if __name__ == "__main__":
    main()
