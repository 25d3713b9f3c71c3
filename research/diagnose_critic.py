"""Can the embedding critic tell real compositions from a given kind of fake?

Trains a fresh critic alone (WGAN-GP, the training recipe's loss) against fixed fakes and
reports, on held-out rows, its Wasserstein estimate E f(real) - E f(fake) and the ROC AUC
of its scores. Fakes:
- ``enhanced_random``: the baseline generators must beat (right marginals, no correlations);
- ``plus_one``: real compositions with one extra element (tests: does it see how many
  elements a composition has?);
- ``shipped``: samples of the shipped generator.
A critic that cannot separate a kind of fake cannot teach a generator to avoid it.

    python research/diagnose_critic.py --steps 1500

For scale, a gradient-boosted classifier on the same rows (counts, presence and how many
elements occur k times) gives the AUC a flexible model reaches on each kind of fake.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

FAKES = ("enhanced_random", "plus_one", "shipped")
CRITICS = {  # name -> (learning rate, count features, whole-matrix path)
    "paper_lr1e-4": (1e-4, False, False),
    "counts_lr1e-4": (1e-4, True, False),
    "counts_lr1e-3": (1e-3, True, False),
    "counts_matrix_lr1e-3": (1e-3, True, True),
}


def plus_one(counts: np.ndarray, element_p: np.ndarray, seed: int) -> np.ndarray:
    """Each row with one more element (drawn by training frequency) at count 1-3."""
    rng = np.random.default_rng(seed)
    out = counts.copy()
    todo = np.arange(len(out))
    while len(todo):
        e = rng.choice(len(element_p), size=len(todo), p=element_p)
        free = out[todo, e] == 0
        out[todo[free], e[free]] = rng.integers(1, 4, size=free.sum())
        todo = todo[~free]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--critics", default=",".join(CRITICS))
    ap.add_argument("--fakes", default=",".join(FAKES))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path("pipelines/reports/gan_variants/critic_diagnostics.md"))
    args = ap.parse_args()
    for given, known in ((args.critics, CRITICS), (args.fakes, FAKES)):
        bad = [v for v in given.split(",") if v not in known]
        if bad:
            ap.error(f"unknown {bad[0]!r}; choose from {', '.join(known)}")
    from discovery.runtime import set_threads

    set_threads(args.threads)
    import keras
    import tensorflow as tf
    from sklearn.metrics import roc_auc_score

    from discovery.data import load_gan_formulas
    from discovery.encoding import counts_to_matrix, decode_counts
    from discovery.gan.config import split_indices
    from discovery.gan.models import build_critic
    from discovery.gan.sampler import CompositionSampler
    from discovery.gan.train import critic_loss, one_hot_dataset
    from discovery.generation.baselines import EnhancedRandom

    x = one_hot_dataset(load_gan_formulas()["formula"].tolist())
    tr, va = split_indices(len(x), 0.1, 0)
    x_tr, x_va = x[tr], x[va][:5000]
    c_tr = decode_counts(x_tr, "argmax")
    element_p = (c_tr > 0).sum(0) / (c_tr > 0).sum()
    rng = np.random.default_rng(0)

    def fake(kind: str, n: int, seed: int) -> np.ndarray:
        if kind == "enhanced_random":
            return EnhancedRandom().fit(c_tr).sample_counts(n, seed)
        if kind == "plus_one":
            pool = c_tr if seed % 2 else decode_counts(x[va], "argmax")
            return plus_one(pool[np.random.default_rng(seed).integers(0, len(pool), n)], element_p, seed)
        return CompositionSampler.load().sample_counts(n, seed)

    checkpoints = sorted({min(args.steps, s) for s in (100, 500, args.steps)})
    lines = [f"# Critic alone vs fixed fakes ({args.steps} WGAN-GP steps, batch 256, Adam betas 0.5/0.9)", "",
             "Wasserstein estimate W = E f(real) - E f(fake) and ROC AUC of the critic's scores on 5,000 "
             "held-out real (validation split) and 5,000 held-out fakes. Critics: embedding path (T, d=128) "
             "+ MLP 128-64-32; 'counts' adds the element-count features; 'matrix' adds a Dense(256) path on "
             "the flattened 85x8 matrix.", "",
             "| critic | fakes | " + " | ".join(f"W @{s} | AUC @{s}" for s in checkpoints) + " | s |",
             "|---|---|" + "---|---|" * len(checkpoints) + "---|"]
    from sklearn.ensemble import HistGradientBoostingClassifier

    def table_features(m: np.ndarray) -> np.ndarray:
        counts = decode_counts(m, "argmax")
        hist = m.sum(axis=1)
        return np.hstack([counts, hist, hist.sum(axis=1, keepdims=True)])

    fakes = {kind: (counts_to_matrix(fake(kind, 60_000, 1)).astype(np.float32),
                    counts_to_matrix(fake(kind, 5_000, 2)).astype(np.float32))
             for kind in args.fakes.split(",")}
    for kind, (f_tr, f_va) in fakes.items():
        r_tr = x_tr[np.random.default_rng(3).integers(0, len(x_tr), 60_000)]
        clf = HistGradientBoostingClassifier(random_state=0).fit(
            table_features(np.concatenate([r_tr, f_tr])), np.r_[np.ones(len(r_tr)), np.zeros(len(f_tr))])
        p = clf.predict_proba(table_features(np.concatenate([x_va, f_va])))[:, 1]
        auc = roc_auc_score(np.r_[np.ones(len(x_va)), np.zeros(len(f_va))], p)
        cells = ["", f"{auc:.3f}"] * len(checkpoints)
        lines.append(f"| gradient boosting (reference) | {kind} | " + " | ".join(cells) + " | |")
        print(lines[-1], flush=True)
    for cname in args.critics.split(","):
        lr, counts, matrix = CRITICS[cname]
        for kind, (f_tr, f_va) in fakes.items():
            keras.utils.set_random_seed(0)
            critic = build_critic(128, counts, matrix_width=256 if matrix else 0)
            opt = keras.optimizers.Adam(lr, 0.5, 0.9)

            @tf.function
            def step(real, fk, eps, critic=critic, opt=opt):
                with tf.GradientTape() as tape:
                    loss = critic_loss(critic, real, fk, eps, gp_weight=10.0)
                grads = tape.gradient(loss, critic.trainable_variables)
                opt.apply_gradients(zip(grads, critic.trainable_variables, strict=True))

            t0, cells = time.time(), []
            for s in range(1, args.steps + 1):
                step(tf.constant(x_tr[rng.integers(0, len(x_tr), 256)]),
                     tf.constant(f_tr[rng.integers(0, len(f_tr), 256)]),
                     tf.constant(rng.random((256, 1, 1), dtype=np.float32)))
                if s in checkpoints:
                    sr = critic.predict(x_va, verbose=0, batch_size=2500)[:, 0]
                    sf = critic.predict(f_va, verbose=0, batch_size=2500)[:, 0]
                    auc = roc_auc_score(np.r_[np.ones(len(sr)), np.zeros(len(sf))], np.r_[sr, sf])
                    cells += [f"{sr.mean() - sf.mean():.3f}", f"{auc:.3f}"]
            lines.append(f"| {cname} | {kind} | " + " | ".join(cells) + f" | {time.time() - t0:.0f} |")
            print(lines[-1], flush=True)
    lines += ["", f"`python research/diagnose_critic.py --steps {args.steps} --critics {args.critics} "
              f"--fakes {args.fakes}`"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
