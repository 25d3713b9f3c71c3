"""Where the shipped LM's precision and recovery on the MP validation held-out set come from,
with its training set skipped (issue 25): the beam head's precision by depth, with and
without skipping, and the recovery ceiling of the draws after the head.

    python research/probe_lm_ceiling.py [--temps 0.8,1.0,1.2,1.5] [--draws 850000]

1. Precision by depth: held-out hits among the first k novel distinct compositions of the head
   (bench seed 1), for the head that skips the training set and the one that does not (the
   code before issue 25). Precision is hits / novel distinct, so the two are compared at the
   same number of novel compositions.
2. Ceiling: held-out compositions the token grammar can express (2..8 elements, counts 1..8),
   those in the head, and for the rest their log probability under the first network at each
   draw temperature T; the expected number that ``draws`` draws after the head find is
   sum(1 - exp(-draws * p_T(x) / M_T)), M_T the mass the draws sample from (the model at T
   without the head and the skipped compositions the shard tree cuts out; draws with
   replacement, so a slight underestimate for draws without repeats).
3. A wider beam instead: how many novel compositions (outside the training set and the head)
   have log p above tau under the first network at T = 1, estimated from 8 x 4,096 draws
   from the shards (importance weights M / p(x)), against how many held-out compositions
   outside the head do: the width a beam would need to reach them (approximate: the beam
   ranks by two networks and the reverse ones, this by the first network alone).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import tensorflow as tf

from discovery.benchmarks.generators import evaluation_sets, training_keys
from discovery.encoding import composition_keys, reduce_counts
from discovery.generation.base import in_sorted, seed_sequence
from discovery.generation.lm_sampler import NEG, FoldedGRU, folded_log_probs, gru_weights
from discovery.generation.lm_shards import build_shards, draw_prefixes
from discovery.generation.lm_tokens import GRAMMAR, MAX_ELEMENTS, counts_to_tokens
from discovery.generation.registry import load_generator
from discovery.generation.splits import generator_split


def tempered_log_probs(weights: dict, tokens: np.ndarray, temperature: float) -> np.ndarray:
    """log p_T of token sequences under one network, each token from softmax(logits / T)."""
    m = FoldedGRU(weights)
    tok = tf.constant(tokens)
    grammar = tf.constant(GRAMMAR)
    n = tok.shape[0]
    h, total, prev = m.start(n), tf.zeros([n]), tf.zeros([n], tf.int32)
    for t in range(tok.shape[1] - 1):
        x, y = tok[:, t], tok[:, t + 1]
        allowed = tf.gather(grammar[t], prev)
        logp = tf.nn.log_softmax(tf.where(allowed, m.logits(h) / temperature, NEG), axis=1)
        total += tf.where(y != 0, tf.gather(logp, y, batch_dims=1), 0.0)
        h = m.step(y, m.recurrent(h), h)
        prev = x
    return total.numpy().astype(np.float64)


def by_depth(head: np.ndarray, known: np.ndarray, holdout: np.ndarray, depths) -> list[str]:
    keys = composition_keys(head)
    novel = keys[~np.isin(keys, known)]
    _, first = np.unique(novel, return_index=True)
    novel = novel[np.sort(first)]
    hit = np.isin(novel, holdout)
    out = []
    for k in depths:
        if k <= len(novel):
            out.append(f"first {k:,} novel: {int(hit[:k].sum()):,} hits, {100 * hit[:k].mean():.2f}%")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--temps", default="0.8,1.0,1.2,1.5")
    ap.add_argument("--draws", type=int, default=850_000)
    ap.add_argument("--width-only", action="store_true", help="part 3 only")
    args = ap.parse_args()
    sets = evaluation_sets()
    skip = training_keys("lm")
    _, val = generator_split("mp")
    val = val[np.isin(composition_keys(val), sets["holdout"])]
    lm = load_generator("lm")
    n_old = 49_682  # the novel among the first 100,000 of the head without skipping (part 1)
    if not args.width_only:
        t0 = time.perf_counter()
        old_head, _, _ = lm._search_head(1, None)
        n_old = int((~np.isin(composition_keys(old_head[:100_000]), sets["known"])).sum())
        print(f"head without skipping ({time.perf_counter() - t0:.0f} s): its first 100,000 hold "
              f"{n_old:,} novel")
        for line in by_depth(old_head[:100_000], sets["known"], sets["holdout"], (25_000, 50_000, n_old)):
            print("  " + line)
    head, skipped, paths = lm._search_head(1, skip)
    print(f"head skipping the training set: {len(head):,} ({skipped:,} skipped compositions met)")
    for line in by_depth(head, sets["known"], sets["holdout"], (25_000, 50_000, n_old, 100_000, len(head))):
        print("  " + line)
    n_el = (val > 0).sum(axis=1)
    ok = (n_el >= 2) & (n_el <= MAX_ELEMENTS) & (val.max(axis=1) <= 8)
    hk = np.unique(composition_keys(head))
    in_head = np.isin(composition_keys(val), hk)
    print(f"held-out {len(val):,}: expressible {int(ok.sum()):,} ({100 * ok.mean():.1f}%), "
          f"in the head {int(in_head.sum()):,} ({100 * in_head.mean():.1f}%)")
    rest = ok & ~in_head
    tokens = counts_to_tokens(val[rest])
    w = gru_weights(lm.model)
    drop = np.union1d(hk, skip)
    shards = build_shards(w, 1.0, int(lm.hparams["shards"]), drop, paths)
    mass = float(np.exp(shards.log_mass).sum())
    sampler, drawn = lm.sampler(), []
    for b in range(8):
        pre = draw_prefixes(shards, (37 * b) % len(shards), np.random.default_rng(seed_sequence(9, b)), 4096)
        raw = sampler.block(4096, lm.block_seed(9, b), 1.0, pre)
        c = reduce_counts(raw)
        keys = composition_keys(c)
        fine = (c == raw).all(axis=1) & ~in_sorted(drop, keys)
        drawn.append(c[fine])
    drawn = np.concatenate(drawn)
    lp_draw = folded_log_probs(w, counts_to_tokens(drawn)).astype(np.float64)
    lp_hold = folded_log_probs(w, tokens).astype(np.float64)
    weight = mass / np.exp(lp_draw) / (8 * 4096)  # each draw stands for 1 / (D q(x)) compositions
    for tau in (-13.0, -14.0, -15.0, -16.0, -17.0, -18.0):
        n_above = float(weight[lp_draw > tau].sum())
        print(f"log p > {tau:.0f}: ~{n_above:,.0f} novel compositions outside the head (a beam ~"
              f"{len(head) + n_above:,.0f} wide); held-out outside the head above it: "
              f"{int((lp_hold > tau).sum()):,} -> recovery ~"
              f"{100 * (in_head.sum() + (lp_hold > tau).sum()) / len(val):.1f}%", flush=True)
    for t in (float(x) for x in ("" if args.width_only else args.temps).split(",") if x):
        lp = tempered_log_probs(w, tokens, t)
        shards = build_shards(w, t, int(lm.hparams["shards"]), drop, paths)
        mass = float(np.exp(shards.log_mass).sum())
        for d in (args.draws, 4 * args.draws):
            found = float((1 - np.exp(-d * np.exp(lp) / mass)).sum())
            total = int(in_head.sum()) + found
            print(f"T={t:.2f}: draws sample mass {mass:.3f}; {d:,} draws find ~{found:,.0f} of the "
                  f"{int(rest.sum()):,} outside the head: recovery ~{100 * total / len(val):.1f}% "
                  f"(log p_T quartiles {np.percentile(lp, [25, 50, 75]).round(1).tolist()})", flush=True)


if __name__ == "__main__":
    main()
