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
from discovery.generation.lm_shards import _extend, _log_softmax_rows
from discovery.generation.lm_tokens import CNT0, EL0, EOS, GRAMMAR, MAX_ELEMENTS, RANK_TO_COL, VOCAB

_M1, _M2, _GOLDEN = 0xBF58476D1CE4E5B9, 0x94D049BB133111EB, 0x9E3779B97F4A7C15  # splitmix64


def _mix(z: tf.Tensor) -> tf.Tensor:
    """splitmix64's finaliser on uint64 tensors (wrapping arithmetic)."""
    u64 = tf.uint64
    z = z + tf.constant(_GOLDEN, u64)
    z = tf.bitwise.bitwise_xor(z, tf.bitwise.right_shift(z, tf.constant(30, u64))) * tf.constant(_M1, u64)
    z = tf.bitwise.bitwise_xor(z, tf.bitwise.right_shift(z, tf.constant(27, u64))) * tf.constant(_M2, u64)
    return tf.bitwise.bitwise_xor(z, tf.bitwise.right_shift(z, tf.constant(31, u64)))


def _mix_np(z: np.ndarray) -> np.ndarray:
    """``_mix`` in numpy (the same bits)."""
    z = np.asarray(z, dtype=np.uint64) + np.uint64(_GOLDEN)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(_M1)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(_M2)
    return z ^ (z >> np.uint64(31))


def _uniform_np(z: np.ndarray) -> np.ndarray:
    """Uniforms in (0, 1) from the top 23 bits of uint64 hashes (as ``_node_uniforms``)."""
    return ((z >> np.uint64(41)).astype(np.float64) + 0.5) * 2.0 ** -23


def _seed_key(seed: np.ndarray) -> np.uint64:
    """One uint64 from a stateless seed int64 [2]."""
    a, b = np.asarray(seed, dtype=np.int64).astype(np.uint64)[:2]
    return _mix_np(_mix_np(np.array([a])) ^ b)[0]


def _node_uniforms(key: tf.Tensor, hsh: tf.Tensor) -> tf.Tensor:
    """Uniforms in (0, 1) [C, VOCAB] for the children of rows whose prefixes hash to ``hsh``
    [C] (uint64): a function of (key, prefix, token) alone, so a sequence's perturbed value
    does not depend on the beam's width, its chunks or the row's place in it, and the k best
    of a search are (bans aside) the first k of a wider one."""
    tokens = tf.constant(np.arange(VOCAB, dtype=np.uint64))
    z = _mix(_mix(tf.bitwise.bitwise_xor(hsh, key))[:, None] + tokens[None, :])
    return (tf.cast(tf.bitwise.right_shift(z, tf.constant(41, tf.uint64)), tf.float32) + 0.5) * 2.0 ** -23


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
        self.weights = [weights] if isinstance(weights, dict) else list(weights)
        self.chunk = int(chunk)
        self.grammar = tf.constant(GRAMMAR)
        self._scores = {}
        self._advance = tf.function(self._advance_rows, reduce_retracing=True, autograph=False)
        self._merge = tf.function(self._merge_top, reduce_retracing=True, autograph=False)

    def _score_rows(self, k, table, hs, prev, phi, psi, g, ban, allow, hsh, first, key, temperature,
                    stochastic: bool):
        """Best children (at most k) of a chunk of unfinished rows (their states ``hs``, one
        [C, units] per network): (value, log p, tempered log p, id), id = (the row's position
        among the unfinished ones, ``first`` + i) × VOCAB + token. A row with ``ban`` set may
        not end here (its composition is in the skip set): its EOS child is dropped, the
        others keep their probabilities. ``allow`` [C, VOCAB]: the tokens a row may take
        besides the grammar (a root's cell, ``search(roots=...)``; all True after it)."""
        allowed = tf.gather(table, prev) & allow  # [C, VOCAB]: this step's grammar, by the previous element
        logits = ensemble_logits([m.logits(h) for m, h in zip(self.members, hs, strict=True)], allowed)
        phi_c = tf.where(allowed, phi[:, None] + tf.nn.log_softmax(logits, axis=1), NEG)
        if stochastic:  # Gumbels located at the log probability of the distribution at T
            psi_c = tf.where(allowed, psi[:, None] + tf.nn.log_softmax(logits / temperature, axis=1), NEG)
            u = _node_uniforms(key, hsh)  # a node's noise: a function of its prefix, not its place
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
               skip: np.ndarray | None = None, exclude: np.ndarray | None = None,
               roots=None) -> tuple[np.ndarray, np.ndarray]:
        """(count vectors int8 [k', 85], log probabilities float [k']), best first (by log
        probability at T = 0, by perturbed value at T > 0); k' < k only when the grammar
        admits fewer sequences. Depends only on (k, seed, temperature, chunk, skip, exclude,
        roots).

        ``skip`` (sorted unique uint64 composition keys): a sequence whose composition is in
        it is never finished (the beam keeps searching with its slot); ``self.skipped`` is then
        how many such finished sequences were dropped and ``self.skipped_counts`` their count
        vectors (the most likely skipped compositions: ``lm_shards`` cuts them out of the draws).
        ``exclude`` (sorted keys) is left out the same way without being counted, and so is a
        multiple of a composition (A2B2: AB has its own sequence) when ``exclude`` is given.

        ``roots`` (``lm_shards.Prefixes``: a shard's cells) starts the search from those cells
        instead of from BOS: every sequence then continues a cell's prefix with a token its cell
        allows, and at T > 0 the search draws k sequences without replacement from the model
        restricted to the cells. Rows of different prefix lengths share the beam (a row waits,
        carried like a finished one, until the step reaches its length): the k best perturbed
        values are kept whatever order the nodes are expanded in. That is exact when nothing is
        banned; a banned ending leaves its ancestors' values as they were, so with ``skip`` or
        ``exclude`` the k kept are the k best of the rest only nearly (a wider search can keep
        one a narrower search lost)."""
        from discovery.encoding import composition_keys, reduce_counts
        from discovery.generation.base import in_sorted

        self.skipped, skipped_parts = 0, []
        if k < 1 or not temperature >= 0:
            raise ValueError(f"need k >= 1 and temperature >= 0, got k={k}, temperature={temperature}")
        seed = np.asarray(seed, dtype=np.int64)
        key = _seed_key(seed)
        stochastic = temperature > 0
        kk, temp = tf.constant(k), tf.constant(max(temperature, 1e-6), tf.float32)
        if roots is None:
            hs = [m.start(1).numpy() for m in self.members]
            prev = np.array([EL0 - 1], dtype=np.int32)
            counts = np.zeros((1, N_ELEMENTS), dtype=np.int8)
            phi = np.zeros(1, dtype=np.float32)  # log p of the prefix
            psi = np.zeros(1, dtype=np.float32)  # its log p at the temperature (T > 0)
            g = np.zeros(1, dtype=np.float32)  # its perturbed value
            depth = np.zeros(1, dtype=np.int64)  # tokens after BOS: the step that expands the row
            allow = np.ones((1, VOCAB), dtype=bool)
            hsh = np.zeros(1, dtype=np.uint64)  # the prefix's hash (``lm_shards._extend``)
        else:
            hs, prev, counts, phi, psi, g, depth, allow, hsh = self._roots(roots, k, key, temperature)
        done = np.zeros(len(prev), dtype=bool)
        for step in range(2 * MAX_ELEMENTS + 1):
            if done.all():
                break
            go = ~done & (depth == step)
            if not go.any():
                continue  # every unfinished row starts deeper
            live, held = np.flatnonzero(go), np.flatnonzero(~go)
            n_live = len(live)
            ids = n_live * VOCAB + np.arange(len(held), dtype=np.int32)
            best = (tf.constant((g if stochastic else phi)[held]), tf.constant(phi[held]),  # carried
                    tf.constant(psi[held]), tf.constant(ids))
            for i in range(0, n_live, self.chunk):
                rows = live[i:i + self.chunk]
                ban = np.zeros(len(rows), dtype=bool)
                if step % 2 == 0 and step >= 4:  # EOS allowed (by the grammar; a root's cell may not)
                    ends = allow[rows, EOS]
                    if skip is not None:
                        ban = ends & in_sorted(skip, composition_keys(counts[rows]))
                        self.skipped += int(ban.sum())
                        skipped_parts.append(counts[rows[ban]])
                    if exclude is not None:
                        c_rows = counts[rows]
                        ban = ban | ends & (in_sorted(exclude, composition_keys(c_rows))
                                            | (reduce_counts(c_rows) != c_rows).any(axis=1))
                rows_in = ([h[rows] for h in hs], prev[rows], phi[rows], psi[rows], g[rows], ban, allow[rows],
                           hsh[rows])
                score = self._score_fn(stochastic)
                part = score(kk, self.grammar[step], *rows_in, tf.constant(i), tf.constant(key), temp)
                best = self._merge(kk, best, part)  # (row: itself)
            g, phi, psi, ids = (t.numpy() for t in best)
            from_live = ids < n_live * VOCAB
            tok = np.where(from_live, ids % VOCAB, EOS).astype(np.int32)
            parent = np.where(from_live, live[np.where(from_live, ids // VOCAB, 0)],
                              np.r_[held, 0][np.where(from_live, 0, ids - n_live * VOCAB)])
            counts, prev_p, done_p = counts[parent], prev[parent], done[parent]
            if step % 2 == 0:  # element step: remember the element (its count follows)
                done = np.where(from_live, tok == EOS, done_p)
                prev = np.where(from_live & (tok != EOS), tok, prev_p).astype(np.int32)
            else:  # count step: add the count at the element chosen one step before
                done = np.where(from_live, False, done_p)
                r = np.flatnonzero(from_live)
                counts[r, RANK_TO_COL[prev_p[r] - EL0]] = tok[r] - CNT0 + 1
                prev = prev_p
            depth = np.where(from_live, step + 1, depth[parent])
            hsh = np.where(from_live, _extend(hsh[parent], tok), hsh[parent])
            allow = allow[parent]
            allow[from_live] = True
            for j, m in enumerate(self.members):  # one network at a time: old states freed as we go
                hs[j] = self._advanced(m, hs[j], parent, tok, from_live & (tok != EOS))  # ended: never read
        self.skipped_counts = (np.concatenate(skipped_parts) if skipped_parts
                               else np.zeros((0, N_ELEMENTS), dtype=np.int8))
        return counts, phi

    def _roots(self, roots, k: int, key: np.uint64, temperature: float) -> tuple:
        """The beam's first rows from cells (``roots``: tokens [R, L] (-1 after a prefix) and
        allow [R, VOCAB]), each cell's prefix fed to the networks (a prefix shared by several
        cells once). A root's log p is its cell's mass under the networks (the prefix's log p
        plus the log of its allowed tokens' share), at 1 and at T, so that its children, scored
        over the allowed tokens alone, get their own sequences' log p; at T > 0 its value is a
        Gumbel located at the mass at T. The k best are kept."""
        from scipy.special import logsumexp

        from discovery.generation.lm_shards import _NumpyGRU  # the roots' logits in numpy

        tokens = np.asarray(roots.tokens, dtype=np.int32)
        allow = np.asarray(roots.allow, dtype=bool)
        n = len(tokens)
        length = (tokens >= 0).sum(axis=1)
        nets = [_NumpyGRU(w) for w in self.weights]
        level = [net.start() for net in nets]  # states of this step's distinct prefixes
        node = np.zeros(n, dtype=np.int64)  # each row's prefix among them
        hs = [np.repeat(s, n, axis=0) for s in level]  # each row's state after its whole prefix
        hsh = np.zeros(n, dtype=np.uint64)
        prev = np.full(n, EL0 - 1, dtype=np.int32)
        counts = np.zeros((n, N_ELEMENTS), dtype=np.int8)
        phi, psi = np.zeros(n), np.zeros(n)  # the prefix's log p at 1 and at T, then the cell's
        t_eff = max(float(temperature), 1e-6)
        for step in range(int(length.max(initial=0)) + 1):
            act = np.flatnonzero(length >= step)  # rows whose prefix reaches this step
            table = GRAMMAR[step][prev[act]]
            node_logits = [net.logits(lv) for net, lv in zip(nets, level, strict=True)]
            logits = _ensemble_logits_np([x[node[act]] for x in node_logits], table)
            lp1 = _log_softmax_rows(logits, table, 1.0)
            lpt = lp1 if t_eff == 1.0 else _log_softmax_rows(logits, table, t_eff)
            end = np.flatnonzero(length[act] == step)  # the cell's own step: its allowed tokens' share
            if len(end):
                ok = table[end] & allow[act[end]]
                phi[act[end]] += logsumexp(np.where(ok, lp1[end], -np.inf), axis=1)
                psi[act[end]] += logsumexp(np.where(ok, lpt[end], -np.inf), axis=1)
                for h, lv in zip(hs, level, strict=True):
                    h[act[end]] = lv[node[act[end]]]
            go = np.flatnonzero(length[act] > step)
            if not len(go):
                break
            on = act[go]
            tok = tokens[on, step]
            phi[on] += lp1[go, tok]
            psi[on] += lpt[go, tok]
            if step % 2 == 0:
                prev[on] = tok
            else:
                counts[on, RANK_TO_COL[prev[on] - EL0]] = tok - CNT0 + 1
            hsh[on] = _extend(hsh[on], tok)
            _, first, inverse = np.unique(hsh[on], return_index=True, return_inverse=True)
            parents, feed = node[on[first]], tf.constant(tok[first])
            level = [self._advance(m.x_table, m.w_rec, m.b_rec, feed, tf.constant(lv[parents])).numpy()
                     for m, lv in zip(self.members, level, strict=True)]
            node[on] = inverse.reshape(-1)
        if temperature > 0:  # a cell's noise: its prefix's and its first allowed token's
            first_token = np.argmax(allow, axis=1).astype(np.uint64) + np.uint64(VOCAB)
            u = _uniform_np(_mix_np(_mix_np(hsh ^ key) + first_token))
            g = psi - np.log(-np.log(u))
        else:
            g = phi
        keep = np.sort(np.argsort(-g, kind="stable")[:k])
        return ([h[keep] for h in hs], prev[keep], counts[keep], phi[keep].astype(np.float32),
                psi[keep].astype(np.float32), g[keep].astype(np.float32), length[keep].astype(np.int64),
                allow[keep], hsh[keep])


def _ensemble_logits_np(logits: list[np.ndarray], allowed: np.ndarray) -> np.ndarray:
    """``lm_sampler.ensemble_logits`` in numpy (float64)."""
    if len(logits) == 1:
        return np.where(allowed, logits[0].astype(np.float64), NEG)
    logp = [_log_softmax_rows(x, allowed, 1.0) for x in logits]
    return np.where(allowed, sum(logp) / len(logp), NEG)
