"""Probe: what ranking a row costs, per shipped property model and stack part, and whether
bfloat16 inference of the formation-energy stack's width-256 part would make it cheaper.

The ranking of a 1e6 run is the run's critical path (issue 25): band gap on every novel
composition, formation energy and Tc on those meeting the target. This times each model's
``predict_amounts`` (CPU µs per row, process time, both cores) on a run's candidates, and, with
``--bf16``, the width-256 part cloned with Keras' ``mixed_bfloat16`` policy on its Dense,
attention and normalisation layers (variables kept float32): CPU µs per row and validation MAE
against float32 (8 element tokens per row for both: the plain model, not ``Ensemble``'s
per-count graph).

    DISCOVERY_DATA=../shared/data python research/probe_rank_cost.py \
        --candidates runs/demo/ehull.csv [--bf16] [--xla]

Measured 2026-12-07 on 38,712 candidates of `make demo` (3.87 elements per row): band gap 50.7,
formation energy 170.7 (parts: three width-64 at 15.7-16.1 each, width-256 123.9), Tc 26.3
(tmlp 7.0, magpie_mlp 13.3) µs CPU per row. bfloat16: 245.5 against 251.2 µs per row (no
gain: the casts around each layer eat the faster matmul) and validation MAE 0.03810 against
0.03794 eV/atom (mean change 0.0020, largest 0.050): not kept. XLA (``--xla``): 92.0 against 122.4
µs CPU per row (1.33x; largest change 2.6e-6), but each input shape compiles anew (0.74 s), and
a run's batches come in many sizes per element count (rows grouped by count, ~100-1,000 per
chunk): fixed tiles would pad away the gain, so not kept either.

Band gap in bfloat16 (``--bf16``: its five MLPs with their Dense layers in ``mixed_bfloat16``,
2,048-row chunks; the one model where the CPU's bf16 dot products pay, its 1024-512 layers
being large matmuls). Measured 2026-12-07: 21.0-22.3 against 37.1-38.0 µs CPU per row,
validation MAE 0.38953 against 0.38949 eV, mean change 0.0042 eV, largest 0.135.
In the 1e6 run (a worktree of 03413c5 loading the band-gap members so; ``bench_run.py --cli
--side-by-side``, one invocation, head cached) its first run's rank thread took 103.4 s
against 107.6 s, but the wall time did not follow: 133.1 and 143.8 s against 137.5 s for the float32 code
(32074b2, before issue 25: 134.0 and 127.6 s), and 56 more rows met the target (319,426). Not
kept: no measurable gain, and a CPU without bf16 dot products would compute another model.
"""

from __future__ import annotations

import argparse
import copy
import time

import numpy as np
import pandas as pd

from discovery.encoding import parse_formulas
from discovery.properties import MODELS_DIR, load_property_model

BF16_LAYERS = ("Dense", "MultiHeadAttention", "LayerNormalization")


def amounts_of(formulas: list[str]) -> np.ndarray:
    batch = parse_formulas(formulas)
    batch.raise_first()
    return batch.amounts


def cpu_us_per_row(fn, a: np.ndarray) -> float:
    fn(a[:2000])  # traces the graphs
    t0 = time.process_time()
    fn(a)
    return (time.process_time() - t0) / len(a) * 1e6


def to_bf16(model, layers: tuple[str, ...] = BF16_LAYERS):
    """A copy of ``model`` whose ``layers`` (class names) compute in bfloat16 (variables float32)."""
    cfg = copy.deepcopy(model.get_config())
    for layer in cfg["layers"]:
        if layer["class_name"] in layers:
            layer["config"]["dtype"] = {"module": "keras", "class_name": "DTypePolicy",
                                        "config": {"name": "mixed_bfloat16"}, "registered_name": None}
    clone = model.__class__.from_config(cfg)
    clone.set_weights(model.get_weights())
    src, dst = model.get_layer("to_target_units"), clone.get_layer("to_target_units")
    dst.scale, dst.offset = src.scale, src.offset
    return clone


def to_bf16_dense(model):
    """A copy of ``model`` whose Dense layers compute in bfloat16 (variables float32)."""
    return to_bf16(model, ("Dense",))


def bandgap_bf16_probe() -> None:
    """The band-gap ensemble (5 MLPs) with float32 and with bfloat16 Dense layers."""
    import tensorflow as tf

    from discovery.regressors import load_keras_model
    from discovery.tasks import load_task

    task = load_task("bandgap")
    a = amounts_of(task.val["formula"].tolist()).astype(np.float32)
    x = a / a.sum(axis=1, keepdims=True)  # the model's featurizer: element fractions
    y = task.val["y"].to_numpy()
    members = [load_keras_model(MODELS_DIR / "bandgap" / f"member_{i}.keras") for i in range(5)]
    ref = None
    for name, ms in (("float32", members), ("bfloat16 Dense", [to_bf16_dense(m) for m in members])):
        f = tf.function(lambda t, ms=ms: tf.stack([tf.reshape(m(t, training=False), [-1]) for m in ms]),
                        input_signature=[tf.TensorSpec([None, x.shape[1]], tf.float32)])

        def pred(v, f=f):
            return np.concatenate([np.asarray(f(v[i:i + 2048]), np.float32).mean(0)
                                   for i in range(0, len(v), 2048)])
        us = cpu_us_per_row(pred, np.resize(x, (40_000, x.shape[1])))
        p = pred(x)
        ref = p if ref is None else ref
        d = np.abs(p - ref)
        print(f"band gap, {name}: {us:.1f} µs CPU per row, validation MAE {np.abs(p - y).mean():.5f}, "
              f"change against float32: mean {d.mean():.4f}, largest {d.max():.3f}")


def bf16_probe() -> None:
    import tensorflow as tf

    import discovery.attention  # noqa: F401  (registers the attention layers)
    from discovery.regressors import load_keras_model
    from discovery.tasks import load_task

    task = load_task("formation_energy")
    a = amounts_of(task.val["formula"].tolist()).astype(np.float32)
    y = task.val["y"].to_numpy()
    m32 = load_keras_model(MODELS_DIR / "formation_energy" / "attention-w256" / "member_0.keras")
    ref = None
    for name, m in (("float32", m32), ("mixed_bfloat16", to_bf16(m32))):
        f = tf.function(lambda t, m=m: m(t, training=False),
                        input_signature=[tf.TensorSpec([None, a.shape[1]], tf.float32)])

        def pred(x, f=f):
            return np.concatenate([np.asarray(f(x[i:i + 8192]), np.float32).ravel()
                                   for i in range(0, len(x), 8192)])
        us = cpu_us_per_row(pred, a)
        p = pred(a)
        ref = p if ref is None else ref
        d = np.abs(p - ref)
        print(f"width-256 part, {name}: {us:.1f} µs CPU per row, validation MAE {np.abs(p - y).mean():.5f}, "
              f"change against float32: mean {d.mean():.5f}, largest {d.max():.4f}")


def xla_probe(a: np.ndarray) -> None:
    """The width-256 part as a plain graph and compiled with XLA (``jit_compile``), on 4-element
    rows in fixed batches of 4,096 (XLA compiles once per input shape)."""
    import tensorflow as tf

    import discovery.attention  # noqa: F401
    from discovery.regressors import load_keras_model

    a = a[(a > 0).sum(axis=1) == 4].astype(np.float32)
    a = np.resize(a, (16384, a.shape[1]))
    x = a / a.sum(axis=1, keepdims=True)
    m = load_keras_model(MODELS_DIR / "formation_energy" / "attention-w256" / "member_0.keras")
    for layer in m.layers:
        if getattr(layer, "element_tokens", False):
            layer.max_tokens = 4
    ref = None
    for jit in (False, True):
        spec = [tf.TensorSpec([4096, x.shape[1]], tf.float32)]
        f = tf.function(lambda t: m(t, training=False), input_signature=spec, jit_compile=jit)
        t0 = time.perf_counter()
        f(x[:4096])
        first = time.perf_counter() - t0
        c0 = time.process_time()
        p = np.concatenate([np.asarray(f(x[i:i + 4096])).ravel() for i in range(0, len(x), 4096)])
        us = (time.process_time() - c0) / len(x) * 1e6
        ref = p if ref is None else ref
        print(f"width-256 part, {'XLA' if jit else 'graph'}: first call {first:.2f} s, "
              f"{us:.1f} µs CPU per row, largest change {np.abs(p - ref).max():.2g}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--candidates", required=True, help="a discover run CSV")
    ap.add_argument("--rows", type=int, default=40_000)
    ap.add_argument("--bf16", action="store_true")
    ap.add_argument("--xla", action="store_true")
    args = ap.parse_args()
    try:
        frame = pd.read_csv(args.candidates, keep_default_na=False, usecols=["formula"])
        a = amounts_of(frame["formula"].tolist()[: args.rows])
    except (OSError, ValueError, pd.errors.ParserError) as exc:  # CompositionError is a ValueError
        why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SystemExit(f"--candidates {args.candidates!r}: not a discover run CSV with formulas "
                         f"({why})") from None
    if len(a) == 0:
        raise SystemExit(f"--candidates {args.candidates!r}: no rows")
    print(f"{len(a):,} rows, {(a > 0).sum(axis=1).mean():.2f} elements per row")
    for prop in ("bandgap", "formation_energy", "tc"):
        model = load_property_model(prop)
        print(f"{prop}: {cpu_us_per_row(model.predict_amounts, a):.1f} µs CPU per row")
        for name, part in getattr(model, "components", {}).items():
            if model.weights[name] > 0:
                print(f"    {name}: {cpu_us_per_row(part.predict_amounts, a):.1f}")
    if args.bf16:
        bandgap_bf16_probe()
        bf16_probe()
    if args.xla:
        xla_probe(a)


if __name__ == "__main__":
    main()
