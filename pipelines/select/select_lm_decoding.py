"""Choose how the shipped language model decodes: ancestral sampling, or a beam search over
the shipped network alone or with further networks (a product of experts), optionally
rescored by reverse-order networks, and re-ship it.

    python pipelines/select/select_lm_decoding.py \
        --members runs/lm_members/mp_s1_u256,runs/lm_members/mp_s2_u256 \
        --reverse runs/lm_members/mp_s1_u256_rev --beam-widths 150000 --reverse-weights 0.25,0.5

Judged exactly as ``bench_generators.py`` judges every generator (the issue's benchmark): MP
validation split, 100,000 samples (seed 1), held-out = MP validation compositions not in
the OQMD set, novelty against MP training + OQMD. Ion substitution is measured in the same
run for the floors. Candidates: the shipped decoding as it is, and beam decoding at each
width with the shipped network alone, and with each leading subset of ``--members`` (in the
order given, so the list says which networks are worth their decoding time), each without
and with all ``--reverse`` networks rescoring at each ``--reverse-weights``. Rule (``select``):
among candidates whose yield is at least ``--yield-floor`` × ion substitution's and whose
speed is at least ``--min-rate`` samples/s, the fastest whose precision is within one
binomial standard error of the highest. The MP validation split is the only split used (it
picks, and it measures).
Writes the card and ``pipelines/reports/lm_decoding.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from discovery.atomic import atomic_write
from discovery.benchmarks.generators import bench_one, evaluation_sets
from discovery.generation.autoregressive import SHIPPED_LM_DIR, CompositionLM
from discovery.generation.registry import load_generator
from discovery.model_files import load_keras_model

REPORTS = Path(__file__).resolve().parents[1] / "reports"
COLS = ["decoding", "beam_width", "networks", "reverse_weight", "novel", "holdout_hits", "precision_pct",
        "precision_cnen_pct", "yield_per_100k", "yield_cnen_per_100k", "unique_pct", "cn_pct", "en_pct",
        "samples_per_s"]
EVAL_SEED = 1


def select(rows: list[dict], floor_yield: float, min_rate: float) -> dict:
    """Among rows meeting the floors (all rows if none does): the fastest whose precision is
    within one binomial standard error of the best's (a smaller difference is noise, and a
    cheaper decoding costs every run less time and memory)."""
    ok = [r for r in rows if r["yield_per_100k"] >= floor_yield and r["samples_per_s"] >= min_rate] or rows
    best = max(ok, key=lambda r: r["precision_pct"])
    p = best["precision_pct"] / 100
    se = 100 * (p * (1 - p) / max(best["novel"], 1)) ** 0.5
    near = [r for r in ok if r["precision_pct"] >= best["precision_pct"] - se]
    return max(near, key=lambda r: r["samples_per_s"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--members", default="", help="comma-separated train_lm_member.py run directories")
    ap.add_argument("--reverse", default="", help="comma-separated reverse-order member run directories")
    ap.add_argument("--reverse-weights", default="0.25,0.5")
    ap.add_argument("--beam-widths", default="100000,150000")
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--yield-floor", type=float, default=1.5, help="× ion substitution's yield")
    ap.add_argument("--min-rate", type=float, default=4000.0, help="samples/s")
    ap.add_argument("--model", type=Path, default=SHIPPED_LM_DIR)
    ap.add_argument("--report", type=Path, default=REPORTS / "lm_decoding.md")
    args = ap.parse_args()
    try:
        widths = [int(w) for w in args.beam_widths.split(",")]
        rev_weights = [float(w) for w in args.reverse_weights.split(",")]
    except ValueError:
        raise SystemExit(f"error: --beam-widths and --reverse-weights must be comma-separated numbers, "
                         f"got {args.beam_widths!r} and {args.reverse_weights!r}") from None
    member_dirs = [Path(m) for m in args.members.split(",") if m]
    reverse_dirs = [Path(m) for m in args.reverse.split(",") if m]
    for d, order in [*((d, "canonical") for d in member_dirs), *((d, "reverse") for d in reverse_dirs)]:
        card = d / "model" / "card.json"
        if not card.is_file():
            raise SystemExit(f"error: {str(d)!r} holds no trained member (no {card})")
        if json.loads(card.read_text()).get("element_order", "canonical") != order:
            raise SystemExit(f"error: {str(d)!r} is not a {order}-order network; give canonical ones to "
                             "--members and reverse ones to --reverse")
    base = CompositionLM.load(args.model)
    base.extra_models, base.reverse_models = [], []  # the shipped network alone; the rest chosen below
    members = [CompositionLM.load(d / "model") for d in member_dirs]
    reverse = [load_keras_model(d / "model" / "model.keras") for d in reverse_dirs]
    sets = evaluation_sets()

    def measure(gen, **extra) -> dict:
        gen.name = "lm"
        if isinstance(gen, CompositionLM):  # trace the sampler outside the timing; the beam is timed
            gen.sampler().block(gen.hparams["block"], gen.block_seed((EVAL_SEED, 99), 0), 1.0)
        else:
            gen.sample_counts(4096, seed=(EVAL_SEED, 99))
        m = bench_one(gen, args.n, EVAL_SEED, sets)
        row = {**extra, **{c: m[c] for c in COLS if c in m}}
        print(json.dumps(row, default=float), flush=True)
        return row

    sub = measure(load_generator("substitution"), decoding="ion substitution", beam_width="", networks=0,
                  reverse_weight="")
    rows = [measure(base.with_options(decoding="sample"), decoding="sample", beam_width="", networks=1,
                    reverse_weight="")]
    for w in widths:
        for k in range(len(members) + 1):
            gen = base.with_options(decoding="beam", beam_width=w)
            gen = gen.with_members([m.model for m in members[:k]])
            rows.append(measure(gen, decoding="beam", beam_width=w, networks=k + 1, reverse_weight=0.0))
            for rw in rev_weights if reverse else []:
                rescored = gen.with_options(reverse_weight=rw).with_reverse(reverse)
                rows.append(measure(rescored, decoding="beam", beam_width=w, networks=k + 1,
                                    reverse_weight=rw))
    floor = args.yield_floor * sub["yield_per_100k"]
    win = select(rows, floor, args.min_rate)
    beam = win["decoding"] == "beam"
    ship = base.with_options(decoding=win["decoding"], **({"beam_width": win["beam_width"],
                                                           "reverse_weight": win["reverse_weight"] or 0.25}
                                                          if beam else {}))
    ship = ship.with_members([m.model for m in members[: win["networks"] - 1]])
    if beam and win["reverse_weight"]:
        ship = ship.with_reverse(reverse)
    rule = (f"among decodings with yield >= {args.yield_floor} x ion substitution's ({floor:.0f}) and "
            f">= {args.min_rate:.0f} samples/s, the fastest whose precision on the MP validation split "
            f"({args.n} samples, seed {EVAL_SEED}, judged as bench_generators.py) is within one binomial "
            "standard error of the highest (select_lm_decoding.py)")
    ship.card = {**base.card, "decoding_selection": rule, "decoding_metrics": win,
                 "decoding_candidates": rows, "ion_substitution": sub,
                 "members": [{"dir": str(d), **m.card.get("training", {})}
                             for d, m in zip(member_dirs[: win["networks"] - 1], members, strict=False)],
                 "reverse_members": [{"dir": str(d), **json.loads((d / "model" / "card.json").read_text())
                                      .get("training", {})}
                                     for d in (reverse_dirs if beam and win["reverse_weight"] else [])]}
    ship.save(args.model)
    version = CompositionLM.load(args.model).card["version"]
    lines = ["# Language model: decoding", "",
             f"MP validation split, {args.n:,} samples, seed {EVAL_SEED}, judged as `bench_generators.py` "
             f"(held-out {len(sets['holdout']):,}; novelty against MP training + OQMD). Beam: the beam "
             "search's compositions, most likely first, then distinct draws from the shipped network; "
             "*networks*: the shipped one plus the first members of `--members`, searched as a product "
             "of experts; *reverse_weight* > 0: the beam's compositions reordered by (1 - w) x the search's "
             "log p + w x the reverse-order networks' mean log p. samples/s on this machine's 2 cores.", "",
             f"Members, in order: {', '.join(f'`{d}`' for d in member_dirs) or 'none'}. "
             f"Reverse-order networks: {', '.join(f'`{d}`' for d in reverse_dirs) or 'none'}.", "",
             "| " + " | ".join(COLS) + " |", "|" + "---|" * len(COLS)]
    def fmt(v) -> str:
        return f"{v:,}" if isinstance(v, int) else f"{v:,.2f}" if isinstance(v, float) else str(v)

    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in COLS) + " |" for r in [sub, *rows]]
    how = (f", width {win['beam_width']:,}, {win['networks']} networks, "
           f"reverse weight {win['reverse_weight']}" if beam else "")
    lines += ["", f"Rule: {rule}.", "", f"**Shipped**: {win['decoding']}{how} → `{version}`.",
              "", "```", "python " + " ".join(sys.argv), "```", ""]
    atomic_write(args.report, lambda p: p.write_text("\n".join(lines)))
    print("shipped", json.dumps({k: win[k] for k in ("decoding", "beam_width", "networks", "precision_pct")}))


if __name__ == "__main__":
    main()
