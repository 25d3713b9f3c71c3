"""Train one more network for the language model's beam search (resumable).

    python pipelines/train/train_lm_member.py --data mp --seed 1 --budget-min 20
    python pipelines/train/train_lm_member.py --data union --seed 1 --budget-min 20
    python pipelines/train/train_lm_member.py --data mp --seed 1 --init runs/lm_members/union_s1_u256
    python pipelines/train/train_lm_member.py --data union --seed 1 --order reverse --budget-min 12

``--order reverse`` trains on the reversed element order (``lm_tokens.REVERSE_COLUMNS``):
such a network rescores the beam (``CompositionLM.with_reverse``) instead of searching it.

Same network and training as ``train_lm.py`` (GRU over canonical token sequences, early
stopping on a seeded 5% of the training rows, the best network kept), on
``generator_split(DATA)``'s training rows only (the MP validation split never enters).
``--init`` fine-tunes a trained member's network (learning rate 5e-4, as ``train_lm.py``'s
``set@base``). Checkpoints live in ``RUN_ROOT/<name>/`` (``last/``, ``best/``, ``log.csv``;
run again to resume); the trained network is saved as a complete CompositionLM directory,
``RUN_ROOT/<name>/model``, that ``select_lm_decoding.py --members`` takes.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from discovery.generation.autoregressive import DEFAULTS, CompositionLM
from discovery.generation.lm_tokens import REVERSE_COLUMNS
from discovery.generation.lm_train import train
from discovery.generation.splits import SOURCES, generator_split
from discovery.runtime import set_threads


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", choices=SOURCES, default="mp")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--units", type=int, default=256)
    ap.add_argument("--order", choices=["canonical", "reverse"], default="canonical")
    ap.add_argument("--init", type=Path, help="a member directory (of the same order) to fine-tune")
    ap.add_argument("--budget-min", type=float, default=20.0)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--run-root", type=Path, default=Path("runs/lm_members"))
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    set_threads(args.threads)
    name = f"{args.data}_s{args.seed}_u{args.units}" + ("_rev" if args.order == "reverse" else "")
    name += f"_from_{args.init.name}" if args.init else ""
    run = args.run_root / name
    init = None
    if args.init is not None:
        init = args.init / "model" / "model.keras"
        if not init.is_file():
            raise SystemExit(f"error: --init {str(args.init)!r} holds no trained member ({init} is missing)")
        init_card = json.loads((args.init / "model" / "card.json").read_text())
        init_order = init_card.get("element_order", "canonical")
        if init_order != args.order:
            raise SystemExit(f"error: --init {str(args.init)!r} reads elements in {init_order} order, "
                             f"not {args.order}")
    tr, _ = generator_split(args.data)
    if args.order == "reverse":
        tr = tr[:, REVERSE_COLUMNS]
    lr = 5e-4 if init else DEFAULTS["learning_rate"]
    lm = CompositionLM(units=args.units, epochs=args.epochs, learning_rate=lr)
    data_name = f"generator_split('{args.data}') train"
    data_name += ", reversed element order" if args.order == "reverse" else ""
    data_name += f", initialised from {args.init.name}" if init else ""
    summary = train(lm, tr, seed=args.seed, data_name=data_name, run_dir=run, resume=True,
                    budget_s=args.budget_min * 60, log=lambda s: print(f"[{name}] {s}", flush=True),
                    init_from=init)
    lm.card["element_order"] = args.order  # a reverse network only rescores; load refuses to sample it
    lm.save(run / "model")
    print(json.dumps({"member": str(run / "model"), **summary}))


if __name__ == "__main__":
    main()
