"""Train the element-attention formation-energy model on Keras' JAX backend: for a GPU machine.

The CPU here trains a width-64, 2-block model (0.2M parameters) in about an hour: OQMD test MAE
0.0385 eV/atom. CrabNet's 0.0312 came from a width-512, 3-layer transformer (12M parameters with
this builder), days of training on two cores. The lent GPU machines carry JAX, not TensorFlow,
and take 64 MiB of files, so the work splits in three:

    # here: the benchmark's train/validation splits as fractions [N, 85] (no pandas/pymatgen there)
    python pipelines/train/train_attention_jax.py export --protocol oqmd --out .gpudata/oqmd_fe.npz
    # on the GPU machine (pipelines/train/train_attention_gpu.sh runs several sizes side by side):
    python pipelines/train/train_attention_jax.py train --data .gpudata/oqmd_fe.npz --out "$OUT/w256" \\
        --width 256 --blocks 3 --minutes 8 --seeds 0
    # here, under TensorFlow: a model folder that bench_stability.py and stack_property_model.py read
    python pipelines/train/train_attention_jax.py import --protocol oqmd --from runs/gpu/w256 \
        --name attention-w256
    python pipelines/bench/bench_stability.py --protocol oqmd --models attention-w256

The network, its training recipe (Adam, MAE loss, learning rate halved on a validation plateau,
early stopping with the best weights kept, a wall-clock budget) and the seeds are those of
``discovery.attention.AttentionRegressor``, as on the CPU; only the size differs. Each member is
saved without its optimizer state (a third of the bytes: the machine sends back at most 16 MiB a
file). Early stopping sees the validation split only; the test split never leaves this machine.
"""

from __future__ import annotations

import os
import sys

if sys.argv[1:2] == ["train"]:
    os.environ.setdefault("KERAS_BACKEND", "jax")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the package, uninstalled

SPLITS = ("train", "val")


def export(protocol: str, out: Path) -> None:
    """Write the protocol's train/validation splits (element fractions [N, 85] as float32, what
    the CPU trainer fits on; mostly zeros, so the file is ~3 MB compressed), targets, the shipped
    T and the data hash to ``out`` (an ``.npz``)."""
    from discovery.benchmarks import stability as bench
    from discovery.featurizers import OneHot, load_embedding
    from discovery.tasks import frames_sha256

    data = bench.protocol_data(protocol)
    feat = OneHot(amounts="fractions")
    arrays: dict[str, np.ndarray] = {"embedding": load_embedding(None).astype(np.float32)}
    for s in SPLITS:
        arrays[f"{s}_x"] = feat.transform(data[s]["formula"]).astype(np.float32)
        arrays[f"{s}_y"] = data[s]["y"].to_numpy(np.float32)
    meta = {"protocol": protocol, "sha256": frames_sha256(*(data[s] for s in ("train", "val", "test"))),
            "splits": {s: len(data[s]) for s in ("train", "val", "test")}}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial.npz")
    np.savez_compressed(tmp, meta=np.array(json.dumps(meta)), **arrays)
    tmp.replace(out)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB): " + ", ".join(
        f"{s} {len(arrays[f'{s}_y'])}" for s in SPLITS))


def train(args) -> None:
    """Train one member per seed (the budget shared equally), saving each as it finishes."""
    import keras

    from discovery.attention import AttentionRegressor
    from discovery.model_files import save_without_optimizer
    from discovery.regressors import predict_model

    d = np.load(args.data)
    need = ["meta", "embedding", *(f"{s}_{a}" for s in SPLITS for a in "xy")]
    if missing := [k for k in need if k not in d.files]:
        raise SystemExit(f"error: --data {str(args.data)!r} lacks {', '.join(missing)}: export it again")
    meta = json.loads(str(d["meta"]))
    x = {s: d[f"{s}_x"] for s in SPLITS}
    y = {s: d[f"{s}_y"] for s in SPLITS}
    if args.limit:  # a smoke test: the first rows only
        x, y = {s: v[: args.limit] for s, v in x.items()}, {s: v[: args.limit] for s, v in y.items()}
    try:
        seeds = [int(s) for s in args.seeds.split(",")]
    except ValueError:
        raise SystemExit(f"error: --seeds must be comma-separated integers, got {args.seeds!r}") from None
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    config = {k: getattr(args, k) for k in ("width", "heads", "blocks", "ff", "learning_rate", "batch_size",
                                            "max_epochs", "patience", "lr_patience", "schedule")}
    config["head_widths"] = [int(w) for w in args.head_widths.split(",")]
    import jax

    card = {"protocol": meta["protocol"], "data": {"sha256": meta["sha256"]}, "splits": meta["splits"],
            "config": config, "backend": keras.backend.backend(),
            "device": f"{jax.devices()[0].device_kind} ({jax.devices()[0]})",  # e.g. NVIDIA H200 (cuda:0)
            "limit": args.limit, "members": [],
            "init_from": str(args.init_from) if args.init_from else None}
    for i, seed in enumerate(seeds):
        t0 = time.perf_counter()
        reg = AttentionRegressor(embedding=d["embedding"], seed=seed, max_minutes=args.minutes / len(seeds),
                                 checkpoint_dir=out / f"ckpt_{i}" if args.checkpoints else None,
                                init_from=args.init_from,
                                 verbose=2 if args.verbose else 0,
                                 **{**config, "head_widths": tuple(config["head_widths"])})
        reg.fit(x["train"], y["train"], x["val"], y["val"])
        save_without_optimizer(reg.model_, out / f"member_{i}.keras")
        val_mae = float(np.abs(predict_model(reg.model_, x["val"]) - y["val"]).mean())
        rates = [float(f"{v:.4g}") for v in reg.history_.get("learning_rate", ())]  # the schedule run
        card["members"].append({"seed": seed, "epochs": len(reg.history_.get("loss", [])),
                                "best_epoch": reg.best_epoch_, "val_mae": val_mae,
                                "learning_rates": rates,
                                "wall_seconds": round(time.perf_counter() - t0, 1)})
        (out / "train.json").write_text(json.dumps(card, indent=2) + "\n")
        print(json.dumps(card["members"][-1]), flush=True)


def import_members(protocol: str, src: Path, name: str, runs: Path,
                   weights_dtype: str = "float32") -> Path:
    """Wrap ``src``'s members as a benchmark model folder ``runs/<protocol>/<name>`` (the card
    records the GPU training); refuses members trained on other data or on a subset. With
    ``weights_dtype="float16"`` the weights are stored at half the bytes (so a width-256 member
    fits the shipped-weights budget); the card records what that does on the validation split."""
    import keras

    import discovery.attention  # noqa: F401  (registers the attention layers)
    from discovery.benchmarks import stability as bench
    from discovery.featurizers import OneHot
    from discovery.model_files import weights_rounding, write_card
    from discovery.properties import PropertyModel
    from discovery.regressors import Ensemble
    from discovery.tasks import frames_sha256

    if not bench.IMPORTED.fullmatch(name):
        raise SystemExit(f"error: name {name!r} must look like attention-<tag> (not attention-sN)")
    card_file = src / "train.json"
    if not card_file.is_file():
        raise SystemExit(f"error: {str(card_file)!r} not found: not a train_attention_jax.py output folder")
    try:
        card = json.loads(card_file.read_text())
        card["protocol"], card["data"]["sha256"], card["members"], card["device"]  # noqa: B018
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise SystemExit(f"error: {str(card_file)!r} is malformed ({exc!r})") from None
    if card["protocol"] != protocol:
        raise SystemExit(f"error: {str(src)!r} was trained for protocol {card['protocol']!r}, "
                         f"not {protocol!r}")
    if card.get("limit"):
        raise SystemExit(f"error: {str(src)!r} was trained on the first {card['limit']} rows only (--limit)")
    data = bench.protocol_data(protocol)
    if card["data"]["sha256"] != frames_sha256(*(data[s] for s in ("train", "val", "test"))):
        raise SystemExit(f"error: {str(src)!r} was trained on other data than this machine's "
                         f"{protocol} splits")
    files = [src / f"member_{i}.keras" for i in range(len(card["members"]))]
    missing = [str(f) for f in files if not f.is_file()] or ([] if files else [str(src / "member_0.keras")])
    if missing:
        raise SystemExit(f"error: member file {missing[0]!r} missing")
    ens = Ensemble([keras.models.load_model(f) for f in files], weights_dtype)
    model = PropertyModel("formation_energy", "eV/atom", OneHot(amounts="fractions"), ens)
    info = {"trained_on": card["device"], "backend": card["backend"], "config": card["config"],
            "best_epochs": [m["best_epoch"] for m in card["members"]],
            "epochs": [m["epochs"] for m in card["members"]],
            "wall_seconds": round(sum(m["wall_seconds"] for m in card["members"]), 1),
            "members": len(files)}
    dest = runs / protocol / name
    bench.save_trained(model, dest, name, info, data)
    if weights_dtype != "float32":  # what the rounding does, measured on the validation split
        x_val = OneHot(amounts="fractions").transform(data["val"]["formula"])
        y_val = data["val"]["y"].to_numpy()
        before = ens.predict(x_val)[0]
        after = PropertyModel.load(dest).ensemble.predict(x_val)[0]
        saved = json.loads((dest / "card.json").read_text())
        rounding = weights_rounding(before, after, y_val, weights_dtype)
        saved["training"]["weights_rounding"] = rounding
        write_card(dest, saved)
        print(f"{weights_dtype} weights: {rounding}")
    return dest


def main() -> None:
    from discovery.attention import SCHEDULES  # Keras, on the backend chosen above
    from discovery.model_files import WEIGHTS_DTYPES

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    ex = sub.add_parser("export", help="write the splits as element fractions (here)")
    ex.add_argument("--protocol", choices=["oqmd", "bartel"], default="oqmd")
    ex.add_argument("--out", type=Path, required=True)
    tr = sub.add_parser("train", help="train members on Keras' JAX backend (the GPU machine)")
    tr.add_argument("--data", type=Path, required=True)
    tr.add_argument("--out", required=True, help="folder for member_N.keras and train.json")
    tr.add_argument("--seeds", default="0", help="one member per seed, comma-separated")
    tr.add_argument("--minutes", type=float, default=8.0, help="wall-clock budget for all members")
    tr.add_argument("--width", type=int, default=256)
    tr.add_argument("--heads", type=int, default=4)
    tr.add_argument("--blocks", type=int, default=3)
    tr.add_argument("--ff", type=int, default=512)
    tr.add_argument("--head-widths", default="512,256,128")
    tr.add_argument("--learning-rate", type=float, default=5e-4)
    tr.add_argument("--batch-size", type=int, default=512)
    tr.add_argument("--max-epochs", type=int, default=300)
    tr.add_argument("--patience", type=int, default=20)
    tr.add_argument("--lr-patience", type=int, default=8)
    tr.add_argument("--schedule", choices=SCHEDULES, default="plateau",
                    help="cosine: anneal over --max-epochs or --minutes, whichever ends first")
    tr.add_argument("--limit", type=int, default=0, help="train on the first N rows only (smoke tests)")
    tr.add_argument("--checkpoints", action="store_true", help="save each epoch and resume from it")
    tr.add_argument("--init-from", type=Path, default=None,
                    help="a trained member .keras of the same size: a warm restart (snapshot-ensemble "
                         "member) instead of a fresh start; a few epochs on a CPU")
    tr.add_argument("--verbose", action="store_true")
    im = sub.add_parser("import", help="wrap trained members as a benchmark model folder (here)")
    im.add_argument("--protocol", choices=["oqmd", "bartel"], default="oqmd")
    im.add_argument("--from", dest="src", type=Path, required=True)
    im.add_argument("--name", required=True, help="attention-<tag>: the model's name in bench_stability.py")
    im.add_argument("--runs", type=Path, default=Path("runs/bench_stability"))
    im.add_argument("--weights-dtype", choices=WEIGHTS_DTYPES, default="float32",
                    help="float16: half the bytes, computed in float32 (the card records the effect)")
    args = ap.parse_args()
    if args.cmd == "export":
        export(args.protocol, args.out)
    elif args.cmd == "train":
        if args.data.suffix != ".npz" or not args.data.is_file():
            raise SystemExit(f"error: --data {str(args.data)!r} is not an exported .npz")
        if args.init_from is not None and (args.init_from.suffix != ".keras" or not args.init_from.is_file()):
            raise SystemExit(f"error: --init-from {str(args.init_from)!r} is not a trained .keras member")
        if args.limit < 0 or args.minutes <= 0:
            raise SystemExit(f"error: --limit must be >= 0 and --minutes > 0, "
                             f"got {args.limit} and {args.minutes}")
        train(args)
    else:
        print(f"wrote {import_members(args.protocol, args.src, args.name, args.runs, args.weights_dtype)}")


if __name__ == "__main__":
    main()
