"""Stochastic beam search over the GRU composition language model (or an ensemble).

Ancestral sampling spends most of its draws re-drawing the same likely compositions, and
the order it emits them in has little to do with how likely they are. Beam search keeps the
k most likely prefixes at every token and returns the k most likely compositions it finds,
most likely first. With a temperature T > 0 it is stochastic beam search (Kool, van Hoof
and Welling, ICML 2019): every prefix carries a Gumbel-perturbed log probability under the
model at T (each token's distribution softmax(logits / T)), children inherit their
parent's value truncated at its maximum, and the k largest survive;
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
from discovery.generation.lm_tokens import CNT0, EL0, EOS, GRAMMAR, MAX_ELEMENTS, RANK_TO_COL, VOCAB


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

    Memory stays at one [k, units] float32 array per network, plus one while a network's
    states are updated, whatever k: the beam's state lives in numpy arrays, a step scores
    the unfinished rows ``chunk`` at a time and merges each chunk's best children into a
    running top-k (compiled), then advances each network's states for the kept rows, again
    ``chunk`` at a time.
    """

    def __init__(self, weights: dict | list[dict], chunk: int = 8192):
        self.members = as_members(weights)
        self.chunk = int(chunk)
        self.grammar = tf.constant(GRAMMAR)
        self._scores = {}
        self._advance = tf.function(self._advance_rows, reduce_retracing=True, autograph=False)
        self._merge = tf.function(self._merge_top, reduce_retracing=True, autograph=False)

    def _score_rows(self, k, table, hs, prev, phi, psi, g, ban, first, seed, temperature, stochastic: bool):
        """Best children (at most k) of a chunk of unfinished rows (their states ``hs``, one
        [C, units] per network): (value, log p, tempered log p, id), id = (the row's position
        among the unfinished ones, ``first`` + i) × VOCAB + token. A row with ``ban`` set may
        not end here (its composition is in the skip set): its EOS child is dropped, the
        others keep their probabilities."""
        allowed = tf.gather(table, prev)  # [C, VOCAB]: this step's grammar, by the previous element
        logits = ensemble_logits([m.logits(h) for m, h in zip(self.members, hs, strict=True)], allowed)
        phi_c = tf.where(allowed, phi[:, None] + tf.nn.log_softmax(logits, axis=1), NEG)
        if stochastic:  # Gumbels located at the log probability of the distribution at T
            psi_c = tf.where(allowed, psi[:, None] + tf.nn.log_softmax(logits / temperature, axis=1), NEG)
            u = tf.random.stateless_uniform(tf.shape(phi_c), seed=seed, minval=1e-12, maxval=1.0)
            gumbel = tf.where(allowed, psi_c - tf.math.log(-tf.math.log(u)), NEG)
            top = tf.reduce_max(gumbel, axis=1, keepdims=True)
            gc = tf.where(allowed, truncated_gumbel(gumbel, top, g[:, None]), NEG)
        else:
            psi_c = gc = phi_c
        gc = tf.where(ban[:, None] & (tf.range(VOCAB) == EOS)[None, :], NEG, gc)
        flat = tf.reshape(gc, [-1])
        val, pos = tf.math.top_k(flat, tf.minimum(k, tf.reduce_sum(tf.cast(flat > NEG / 2, tf.int32))))
        return (val, tf.gather(tf.reshape(phi_c, [-1]), pos), tf.gather(tf.reshape(psi_c, [-1]), pos),
                pos + first * VOCAB)

    @staticmethod
    def _merge_top(k, a, b):
        """The k best of two (value, log p, tempered log p, id) candidate sets."""
        val, *rest = (tf.concat([x, y], 0) for x, y in zip(a, b, strict=True))
        best_val, pos = tf.math.top_k(val, tf.minimum(k, tf.size(val)))
        return (best_val, *(tf.gather(x, pos) for x in rest))

    def _score_fn(self, stochastic: bool):
        if stochastic not in self._scores:  # one compiled function per mode, whatever the step
            def fn(*args, stochastic=stochastic):
                return self._score_rows(*args, stochastic=stochastic)
            self._scores[stochastic] = tf.function(fn, reduce_retracing=True, autograph=False)
        return self._scores[stochastic]

    @staticmethod
    def _advance_rows(x_table, w_rec, b_rec, tok, h):
        """GRU states after feeding ``tok`` to rows ``h`` (one network's folded weights)."""
        xz, xr, xh = tf.split(tf.gather(x_table, tok), 3, axis=1)
        hz, hr, hh = tf.split(tf.matmul(h, w_rec) + b_rec, 3, axis=1)
        z = tf.sigmoid(xz + hz)
        r = tf.sigmoid(xr + hr)
        return z * h + (1.0 - z) * tf.tanh(xh + r * hh)

    def _advanced(self, m, h: np.ndarray, parent: np.ndarray, tok: np.ndarray, live: np.ndarray):
        """One network's states of the kept rows: an unfinished parent's after its child's
        token, a finished row's as it was (the GRU runs on the former only)."""
        out = np.empty((len(parent), h.shape[1]), dtype=np.float32)
        for i in range(0, len(parent), self.chunk):
            rows = h[parent[i:i + self.chunk]]
            go = np.flatnonzero(live[i:i + self.chunk])
            if len(go):
                new = self._advance(m.x_table, m.w_rec, m.b_rec, tok[i:i + self.chunk][go], rows[go])
                rows[go] = new.numpy()
            out[i:i + self.chunk] = rows
        return out

    def search(self, k: int, seed: np.ndarray, temperature: float = 0.0,
               skip: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(count vectors int8 [k', 85], log probabilities float [k']), best first (by log
        probability at T = 0, by perturbed value at T > 0); k' < k only when the grammar
        admits fewer sequences. Depends only on (k, seed, temperature, chunk, skip).

        ``skip`` (sorted unique uint64 composition keys): a sequence whose composition is in
        it is never finished (the beam keeps searching with its slot); ``self.skipped`` is then
        how many such finished sequences were dropped and ``self.skipped_counts`` their count
        vectors (the most likely skipped compositions: ``lm_shards`` cuts them out of the draws)."""
        from discovery.encoding import composition_keys
        from discovery.generation.base import in_sorted

        self.skipped, skipped_parts = 0, []
        if k < 1 or not temperature >= 0:
            raise ValueError(f"need k >= 1 and temperature >= 0, got k={k}, temperature={temperature}")
        hs = [m.start(1).numpy() for m in self.members]
        prev = np.array([EL0 - 1], dtype=np.int32)
        done = np.zeros(1, dtype=bool)
        counts = np.zeros((1, N_ELEMENTS), dtype=np.int8)
        phi = np.zeros(1, dtype=np.float32)  # log p of the prefix
        psi = np.zeros(1, dtype=np.float32)  # its log p at the temperature (T > 0)
        g = np.zeros(1, dtype=np.float32)  # its perturbed value
        seed = np.asarray(seed, dtype=np.int64)
        stochastic = temperature > 0
        kk, temp = tf.constant(k), tf.constant(max(temperature, 1e-6), tf.float32)
        for step in range(2 * MAX_ELEMENTS + 1):
            if done.all():
                break
            live, fin = np.flatnonzero(~done), np.flatnonzero(done)
            n_live = len(live)
            best = (tf.constant((g if stochastic else phi)[fin]), tf.constant(phi[fin]),  # a finished
                    tf.constant(psi[fin]), tf.constant(n_live * VOCAB + np.arange(len(fin), dtype=np.int32)))
            for c, i in enumerate(range(0, n_live, self.chunk)):
                rows = live[i:i + self.chunk]
                step_seed = tf.constant(seed + np.array([c << 20, step], dtype=np.int64))
                ban = np.zeros(len(rows), dtype=bool)
                if skip is not None and step % 2 == 0 and step >= 4:  # EOS allowed: is it skipped?
                    ban = in_sorted(skip, composition_keys(counts[rows]))
                    self.skipped += int(ban.sum())
                    skipped_parts.append(counts[rows[ban]])
                rows_in = ([h[rows] for h in hs], prev[rows], phi[rows], psi[rows], g[rows], ban)
                score = self._score_fn(stochastic)
                part = score(kk, self.grammar[step], *rows_in, tf.constant(i), step_seed, temp)
                best = self._merge(kk, best, part)  # (row: itself)
            g, phi, psi, ids = (t.numpy() for t in best)
            from_live = ids < n_live * VOCAB
            tok = np.where(from_live, ids % VOCAB, EOS).astype(np.int32)
            parent = np.where(from_live, live[np.where(from_live, ids // VOCAB, 0)],
                              np.r_[fin, 0][np.where(from_live, 0, ids - n_live * VOCAB)])
            counts, prev_p = counts[parent], prev[parent]
            if step % 2 == 0:  # element step: remember the element (its count follows)
                done = ~from_live | (tok == EOS)
                prev = np.where(done, prev_p, tok).astype(np.int32)
            else:  # count step: add the count at the element chosen one step before
                done = ~from_live
                r = np.flatnonzero(from_live)
                counts[r, RANK_TO_COL[prev_p[r] - EL0]] = tok[r] - CNT0 + 1
                prev = prev_p
            for j, m in enumerate(self.members):  # one network at a time: old states freed as we go
                hs[j] = self._advanced(m, hs[j], parent, tok, from_live)
        self.skipped_counts = (np.concatenate(skipped_parts) if skipped_parts
                               else np.zeros((0, N_ELEMENTS), dtype=np.int8))
        return counts, phi
