"""Stochastic beam search over the GRU composition language model (or an ensemble).

Ancestral sampling spends most of its draws re-drawing the same likely compositions, and
the order it emits them in has little to do with how likely they are. Beam search keeps the
k most likely prefixes at every token and returns the k most likely compositions it finds,
most likely first. With a temperature T > 0 it is stochastic beam search (Kool, van Hoof
and Welling, ICML 2019): every prefix carries a Gumbel-perturbed log probability (at T),
children inherit their parent's value truncated at its maximum, and the k largest survive;
that draws k sequences *without replacement* from the model at T, exactly, and T -> 0 is
plain beam search.

One step is one token (an element, or the count after it) with the grammar masks of
``lm_tokens``; a finished sequence (EOS) stays in the beam with its value and competes with
the unfinished ones. The per-token distribution is ``lm_sampler.ensemble_logits`` (one
network, or a product of experts), log-softmaxed.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from discovery.elements import N_ELEMENTS
from discovery.generation.lm_sampler import NEG, as_members, ensemble_logits
from discovery.generation.lm_tokens import CNT0, EL0, EL_LAST, EOS, GRAMMAR, MAX_ELEMENTS, RANK_TO_COL, VOCAB


def _log1mexp(x: tf.Tensor) -> tf.Tensor:
    """log(1 - exp(x)) for x < 0, stable at both ends."""
    x = tf.minimum(x, -1e-30)
    return tf.where(x > -0.6931, tf.math.log(-tf.math.expm1(x)), tf.math.log1p(-tf.exp(x)))


def truncated_gumbel(g_child: tf.Tensor, z: tf.Tensor, g_parent: tf.Tensor) -> tf.Tensor:
    """Kool et al.'s truncation (their eq. 23, stable form): Gumbels ``g_child`` [B, C] with
    row maximum ``z`` [B, 1], conditioned on their maximum being ``g_parent`` [B, 1]."""
    v = g_parent - g_child + _log1mexp(g_child - z)
    return g_parent - tf.nn.relu(v) - tf.math.log1p(tf.exp(-tf.abs(v)))


class GRUBeamSearch:
    """The k best compositions per call (``lm_sampler.gru_weights`` of one or more networks).

    Memory stays bounded by a few [k, units] states, whatever k: a step scores the
    unfinished rows ``chunk`` at a time and merges each chunk's best children into a running
    top-k (``_score``), then advances each network's states for the kept rows, again in
    chunks (``_advance``).
    """

    def __init__(self, weights: dict | list[dict], chunk: int = 8192):
        self.members = as_members(weights)
        self.chunk = int(chunk)
        self.grammar = tf.constant(GRAMMAR)
        self.rank_to_col = tf.constant(RANK_TO_COL, dtype=tf.int32)
        self._scores = {}
        self._advance = tf.function(self._advance_rows, reduce_retracing=True, autograph=False)
        self._merge = tf.function(self._merge_top, reduce_retracing=True, autograph=False)

    def _score_rows(self, k, hs, rows, prev, phi, g, first, seed, temperature, step: int, stochastic: bool):
        """Best children of unfinished ``rows`` (at most k): (value, log p, id), id = (position
        of the row among the unfinished ones, from ``first``) × VOCAB + token."""
        allowed = tf.gather(self.grammar[step], tf.gather(prev, rows))  # [C, VOCAB]
        logits = [m.logits(tf.gather(h, rows)) for m, h in zip(self.members, hs, strict=True)]
        logp = tf.nn.log_softmax(ensemble_logits(logits, allowed), axis=1)
        phi_c = tf.where(allowed, tf.gather(phi, rows)[:, None] + logp, NEG)
        if stochastic:
            u = tf.random.stateless_uniform(tf.shape(phi_c), seed=seed, minval=1e-12, maxval=1.0)
            gumbel = tf.where(allowed, phi_c / temperature - tf.math.log(-tf.math.log(u)), NEG)
            top = tf.reduce_max(gumbel, axis=1, keepdims=True)
            gc = tf.where(allowed, truncated_gumbel(gumbel, top, tf.gather(g, rows)[:, None]), NEG)
        else:
            gc = phi_c
        flat = tf.reshape(gc, [-1])
        val, pos = tf.math.top_k(flat, tf.minimum(k, tf.size(flat)))
        return val, tf.gather(tf.reshape(phi_c, [-1]), pos), pos + first * VOCAB

    @staticmethod
    def _merge_top(k, a, b):
        """The k best of two (value, log p, id) candidate sets."""
        val, phi, ids = (tf.concat([x, y], 0) for x, y in zip(a, b, strict=True))
        best_val, pos = tf.math.top_k(val, tf.minimum(k, tf.size(val)))
        return best_val, tf.gather(phi, pos), tf.gather(ids, pos)

    def _score_fn(self, step: int, stochastic: bool):
        key = (step, stochastic)
        if key not in self._scores:
            def fn(*args, step=step, stochastic=stochastic):
                return self._score_rows(*args, step=step, stochastic=stochastic)
            self._scores[key] = tf.function(fn, reduce_retracing=True, autograph=False)
        return self._scores[key]

    def _advance_rows(self, x_table, w_rec, b_rec, tok, h):
        """GRU states after feeding ``tok`` to rows ``h`` (one network's folded weights)."""
        xz, xr, xh = tf.split(tf.gather(x_table, tok), 3, axis=1)
        hz, hr, hh = tf.split(tf.matmul(h, w_rec) + b_rec, 3, axis=1)
        z = tf.sigmoid(xz + hz)
        r = tf.sigmoid(xr + hr)
        return z * h + (1.0 - z) * tf.tanh(xh + r * hh)

    def _advanced(self, m, h, parent, tok, from_live) -> tf.Tensor:
        """One network's kept states: an unfinished parent's after its child's token, a
        finished row's as it was; the GRU runs on the former only, in chunks."""
        kept = tf.gather(h, parent)
        sel = tf.cast(tf.where(from_live)[:, 0], tf.int32)
        n = int(sel.shape[0])
        if n == 0:
            return kept
        parts = [self._advance(m.x_table, m.w_rec, m.b_rec, tf.gather(tok, sel[i:i + self.chunk]),
                               tf.gather(kept, sel[i:i + self.chunk])) for i in range(0, n, self.chunk)]
        new = tf.concat(parts, 0) if len(parts) > 1 else parts[0]
        return tf.tensor_scatter_nd_update(kept, sel[:, None], new)

    def search(self, k: int, seed: np.ndarray, temperature: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """(count vectors int8 [k', 85], log probabilities float [k']), best first (by log
        probability at T = 0, by perturbed value at T > 0); k' < k only when the grammar
        admits fewer sequences. Depends only on (k, seed, temperature, chunk)."""
        if k < 1 or not temperature >= 0:
            raise ValueError(f"need k >= 1 and temperature >= 0, got k={k}, temperature={temperature}")
        hs = [m.start(1) for m in self.members]
        prev = tf.constant([EL0 - 1], tf.int32)
        done = tf.zeros([1], tf.bool)
        counts = tf.zeros([1, N_ELEMENTS], tf.int32)
        phi = g = tf.zeros([1])
        seed = np.asarray(seed, dtype=np.int64)
        stochastic = temperature > 0
        kk, temp = tf.constant(k), tf.constant(max(temperature, 1e-6), tf.float32)
        for step in range(2 * MAX_ELEMENTS + 1):
            if bool(tf.reduce_all(done)):
                break
            live = tf.cast(tf.where(~done)[:, 0], tf.int32)
            fin = tf.cast(tf.where(done)[:, 0], tf.int32)
            n_live = int(live.shape[0])
            best = (tf.gather(g if stochastic else phi, fin), tf.gather(phi, fin), n_live * VOCAB + tf.range(
                tf.size(fin)))  # a finished row's one child: itself
            for c, i in enumerate(range(0, n_live, self.chunk)):
                step_seed = tf.constant(seed + np.array([c, step], dtype=np.int64) * np.array([1 << 20, 1]))
                part = self._score_fn(step, stochastic)(kk, hs, live[i:i + self.chunk], prev, phi, g,
                                                        tf.constant(i), step_seed, temp)
                best = self._merge(kk, best, part)
            g, phi, ids = best
            from_live = ids < n_live * VOCAB
            li = tf.where(from_live, ids // VOCAB, 0)
            tok = tf.where(from_live, ids % VOCAB, EOS)
            di = tf.where(from_live, 0, ids - n_live * VOCAB)  # row among the finished ones
            parent = tf.where(from_live, tf.gather(live, li), tf.gather(tf.concat([fin, [0]], 0), di))
            counts = tf.gather(counts, parent)
            prev_p = tf.gather(prev, parent)
            if step % 2 == 0:  # element step: remember the element (its count follows)
                done = ~from_live | (tok == EOS)
                prev = tf.where(done, prev_p, tok)
            else:  # count step: add the count at the element chosen one step before
                done = ~from_live
                col = tf.gather(self.rank_to_col, tf.clip_by_value(prev_p - EL0, 0, EL_LAST - EL0))
                counts = counts + tf.where(from_live[:, None], tf.one_hot(col, N_ELEMENTS, dtype=tf.int32)
                                           * (tok - CNT0 + 1)[:, None], 0)
                prev = prev_p
            for j, m in enumerate(self.members):  # one network at a time: old states freed as we go
                hs[j] = self._advanced(m, hs[j], parent, tok, from_live)
        return counts.numpy().astype(np.int8), phi.numpy()
