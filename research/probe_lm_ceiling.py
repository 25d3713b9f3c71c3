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
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import tensorflow as tf

from discovery.benchmarks.generators import evaluation_sets, training_keys
from discovery.encoding import composition_keys
from discovery.generation.lm_sampler import NEG, FoldedGRU, gru_weights
from discovery.generation.lm_shards import build_shards
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
    args = ap.parse_args()
    sets = evaluation_sets()
    skip = training_keys("lm")
    _, val = generator_split("mp")
    val = val[np.isin(composition_keys(val), sets["holdout"])]
    lm = load_generator("lm")
    t0 = time.perf_counter()
    old_head, _, _ = lm._search_head(1, None)
    n_old = int((~np.isin(composition_keys(old_head[:100_000]), sets["known"])).sum())
    print(f"head without skipping ({time.perf_counter() - t0:.0f} s): its first 100,000 hold {n_old:,} novel")
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
    for t in (float(x) for x in args.temps.split(",")):
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
