"""Generator report: Markdown + PNGs under pipelines/reports/.

    python pipelines/bench/gan_report.py [--model discovery/models/gan] [--log runs/gan_slim/log.csv]
                                   [--n 100000 --n-large 1000000]

Measures, in one run: critic validation-loss curve (paper's Fig. 4a), charge-neutral and
EN-balanced rates of the training set vs generated samples (Fig. 5b), unique and novel
rates, element-frequency and number-of-elements distributions, sampling throughput and its
ratio to this CPU's float32 matmul throughput, and recovery of held-out real compositions
against the enhanced-random baseline.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from discovery.data import load_gan_formulas  # noqa: E402
from discovery.elements import ELEMENTS  # noqa: E402
from discovery.encoding import composition_keys, count_patterns, parse_formulas  # noqa: E402
from discovery.filters.chemistry import smact_screen  # noqa: E402
from discovery.gan.config import split_indices  # noqa: E402
from discovery.gan.sampler import SHIPPED_GAN_DIR, CompositionSampler  # noqa: E402
from discovery.generation.baselines import EnhancedRandom  # noqa: E402
from discovery.known import KnownMaterials  # noqa: E402

REPORTS = Path(__file__).resolve().parents[1] / "reports"


def generator_flops(model) -> int:
    """Multiply-adds x 2 per sample of the Dense and transposed-convolution layers."""
    total = 0
    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "Dense":
            total += 2 * layer.kernel.shape[0] * layer.kernel.shape[1]
        elif kind == "Conv2DTranspose":
            h, w, c_in = layer.input.shape[1:]
            kh, kw, c_out, _ = layer.kernel.shape
            total += 2 * h * w * c_in * kh * kw * c_out
    return int(total)


def matmul_gflops() -> float:
    import tensorflow as tf

    a = tf.random.normal([4096, 4096])
    b = tf.random.normal([4096, 4096])
    tf.matmul(a, b).numpy()
    t0 = time.perf_counter()
    for _ in range(3):
        tf.matmul(a, b).numpy()
    return 2 * 4096**3 * 3 / (time.perf_counter() - t0) / 1e9


def throughput(sampler: CompositionSampler, batch: int = 8192, seconds: float = 20.0) -> float:
    import tensorflow as tf

    z = np.random.default_rng(0).standard_normal((batch, 128)).astype(np.float32)
    fwd = tf.function(lambda t: sampler.generator(t, training=False))
    fwd(z)
    t0, n = time.perf_counter(), 0
    while time.perf_counter() - t0 < seconds:
        fwd(z).numpy()
        n += batch
    return n / (time.perf_counter() - t0)


def sampler_throughput(sampler: CompositionSampler, n: int = 100_000) -> float:
    """Samples/s of the sampler as ``discover run`` uses it: fast inference and decoding."""
    sampler.sample_counts(8192, seed=1)  # trace
    t0 = time.perf_counter()
    sampler.sample_counts(n, seed=2)
    return n / (time.perf_counter() - t0)


def pattern_shares(counts: np.ndarray) -> pd.Series:
    """Share (%) of each sorted count pattern, e.g. '2-1-1' for X2YZ, most common first."""
    return 100 * pd.Series(count_patterns(counts)).value_counts(normalize=True)


def pattern_table(columns: dict[str, np.ndarray], top: int = 6) -> pd.DataFrame:
    """Each column's ``top`` patterns (union over columns) and, per column, all the rest."""
    shares = pd.DataFrame({name: pattern_shares(c) for name, c in columns.items()}).fillna(0.0)
    keep = sorted({p for name in shares for p in shares[name].nlargest(top).index},
                  key=lambda p: -shares.loc[p].iloc[0])
    table = shares.loc[keep]
    return pd.concat([table, (100 - table.sum()).to_frame("other").T])


def stats(counts: np.ndarray, known: KnownMaterials, holdout: np.ndarray, train_keys: np.ndarray) -> dict:
    n = len(counts)
    n_el = (counts > 0).sum(1)
    ok = counts[n_el >= 2]
    keys = composition_keys(ok)
    uniq, first = np.unique(keys, return_index=True)
    novel = ~known.contains_keys(uniq)
    in_train = np.isin(uniq, train_keys)
    cn, en = smact_screen(ok)
    recovered = np.isin(uniq, holdout)
    return {
        "samples": n,
        "compounds (>=2 elements) %": 100 * len(ok) / n,
        "unique %": 100 * len(uniq) / n,
        "novel % of unique": 100 * novel.mean(),
        "re-proposed training compositions": int(in_train.sum()),
        "charge-neutral %": 100 * cn.mean(),
        "EN-balanced %": 100 * en.mean(),
        "held-out recovered": int(recovered.sum()),
        "held-out recovered % of split": 100 * recovered.sum() / len(holdout),
        "held-out recovered % of novel proposals": 100 * recovered.sum() / max(novel.sum(), 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, default=SHIPPED_GAN_DIR)
    ap.add_argument("--log", type=Path, default=None, help="training log.csv for the loss curve")
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--n-large", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=REPORTS)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    sampler = CompositionSampler.load(args.model)
    card = sampler.card
    split_seed = card.get("hyperparameters", {}).get("seed", 0)
    train_all = parse_formulas(load_gan_formulas()["formula"].tolist()).amounts.astype(np.int64)
    tr, va = split_indices(len(train_all), 0.1, split_seed)
    train, val = train_all[tr], train_all[va]
    holdout = np.unique(composition_keys(val))
    train_keys = np.unique(composition_keys(train))
    known = KnownMaterials.default()
    baseline = EnhancedRandom().fit(train)

    rows, timings = {}, {}
    cn_tr, en_tr = smact_screen(train)
    rows["training split"] = {"samples": len(train), "charge-neutral %": 100 * cn_tr.mean(),
                              "EN-balanced %": 100 * en_tr.mean()}
    sizes = [args.n] + ([args.n_large] if args.n_large > args.n else [])
    gen_counts = {}
    for n in sizes:
        t0 = time.perf_counter()
        gen_counts[n] = sampler.sample_counts(n, args.seed)
        timings[f"generator {n:,}"] = time.perf_counter() - t0
        rows[f"generator, {n:,} samples"] = stats(gen_counts[n], known, holdout, train_keys)
        rows[f"enhanced random, {n:,} samples"] = stats(baseline.sample_counts(n, args.seed), known,
                                                        holdout, train_keys)
    table = pd.DataFrame(rows).T

    # Distributions: number of elements and element frequencies, generated vs training.
    g = gen_counts[args.n]
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(14, 8))
    ks = np.arange(0, 9)
    gen_nel = np.bincount((g > 0).sum(1), minlength=86)[:9] / len(g)
    tr_nel = np.bincount((train > 0).sum(1), minlength=86)[:9] / len(train)
    a1.bar(ks - 0.2, 100 * tr_nel, 0.4, label="training")
    a1.bar(ks + 0.2, 100 * gen_nel, 0.4, label="generated")
    a1.set_xlabel("number of elements")
    a1.set_ylabel("% of compositions")
    a1.legend()
    x = np.arange(len(ELEMENTS))
    a2.bar(x - 0.2, 100 * (train > 0).mean(0), 0.4, label="training")
    a2.bar(x + 0.2, 100 * (g > 0).mean(0), 0.4, label="generated")
    a2.set_xticks(x, ELEMENTS, fontsize=6, rotation=90)
    a2.set_ylabel("% of compositions containing")
    a2.legend()
    fig.tight_layout()
    fig.savefig(args.out / "gan_distributions.png", dpi=110)
    plt.close(fig)

    curve = None
    if args.log and args.log.is_file():
        curve = pd.read_csv(args.log)
        # The training log judges 10,000 samples per evaluation: the baseline at the same size.
        eval_n = int(curve["samples"].iloc[-1])
        base_eval = stats(baseline.sample_counts(eval_n, args.seed), known, holdout, train_keys)
        fig, (ax, bx) = plt.subplots(1, 2, figsize=(13, 4))
        ax.plot(curve["step"], curve["val_critic_loss"], "o-")
        ax.set_xlabel("iteration")
        ax.set_ylabel("critic loss on the 10% split (eq. 4)")
        for col, label in (("holdout_recovered_pct", "held-out recovered %"),
                           ("unique_pct", "unique % / 10"), ("novel_of_unique_pct", "novel % of unique / 10"),
                           ("elements_5plus_pct", "5+ elements % / 10")):
            scale = 1.0 if col == "holdout_recovered_pct" else 0.1
            bx.plot(curve["step"], scale * curve[col], "o-", label=label)
        bx.axhline(base_eval["held-out recovered % of split"], color="k", ls="--",
                   label=f"enhanced random, recovered % ({eval_n:,} samples)")
        bx.set_xlabel("iteration")
        bx.set_title(f"quality per evaluation ({eval_n:,} samples)")
        bx.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(args.out / "gan_critic_loss.png", dpi=110)
        plt.close(fig)

    patterns = pattern_table({"training": train, f"generated ({args.n:,})": g,
                              f"enhanced random ({args.n:,})": baseline.sample_counts(args.n, args.seed)})

    flops = generator_flops(sampler.generator)
    sps = throughput(sampler)
    gflops = matmul_gflops()
    perf = {"samples/s at batch 8192": sps,
            "samples/s, sampler as discover run uses it (decoded)": sampler_throughput(sampler),
            "MFLOP per sample": flops / 1e6,
            "achieved GFLOP/s": sps * flops / 1e9, "tf.matmul 4096x4096 GFLOP/s": gflops,
            "ratio to matmul": sps * flops / 1e9 / gflops}

    md = [f"# Generator report: `{card.get('version', args.model)}`", "",
          f"Command: `python pipelines/bench/gan_report.py --model {args.model} --n {args.n} "
          f"--n-large {args.n_large}" + (f" --log {args.log}" if args.log else "") + "`", "",
          f"Iterations trained: {card.get('iterations')}; wall time {card.get('wall_seconds', 0):.0f} s; "
          f"decoding rule: `{card.get('decode_rule')}`. Held-out split: the seeded 10% of "
          f"oqmd_gan_formulas.csv ({len(holdout):,} compositions) the generator never saw.", "",
          "## Quality", "", table.to_markdown(floatfmt=".2f"), "",
          "## Sampling speed (this CPU)", "", pd.Series(perf).to_frame("value").to_markdown(floatfmt=".3g"),
          "", "## Distributions", "", "![distributions](gan_distributions.png)", "",
          "Count patterns (a composition's counts, sorted; '2-1-1' is X2YZ): % of compositions", "",
          patterns.to_markdown(floatfmt=".1f"), ""]
    if curve is not None:
        md += ["## Training curve: critic loss on the validation split and quality per evaluation", "",
               "![critic loss](gan_critic_loss.png)", "",
               f"Enhanced-random baseline at the log's {eval_n:,} samples: recovers "
               f"{base_eval['held-out recovered % of split']:.2f}% of the held-out split, "
               f"unique {base_eval['unique %']:.1f}%.", "",
               curve.to_markdown(index=False, floatfmt=".3g"), ""]
    md += ["Timings: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()), ""]
    (args.out / "gan_report.md").write_text("\n".join(md))
    (args.out / "gan_report.json").write_text(json.dumps(
        {"quality": rows, "performance": perf, "card": card}, indent=2, default=float))
    print("\n".join(md))


if __name__ == "__main__":
    main()
