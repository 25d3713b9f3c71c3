"""In-graph ancestral sampling from a GRU composition language model (or an ensemble of them).

The whole decoding loop runs inside one ``tf.function``: a ``tf.while_loop`` over elements
(one element step and one count step per iteration) that stops once every row has emitted
EOS. Two exact rewrites of the Keras network make a step cheap on a CPU: the embedding and
the GRU input kernel are folded into one table (token -> input projection), and the output
layer and the recurrent kernel share one matmul on the hidden state (``FoldedGRU``). Noise
is stateless (Gumbel-max on ``stateless_random_uniform`` folded in by step), so a block's
samples depend only on its seed.

Several networks (the beam search, ``lm_beam``) decode as a product of experts: each one's
grammar-masked log-softmax, averaged, is the next-token distribution (``ensemble_logits``);
ancestral sampling uses one network's raw logits.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from discovery.elements import N_ELEMENTS
from discovery.generation.lm_tokens import CNT0, EL0, EL_LAST, EOS, GRAMMAR, MAX_ELEMENTS, RANK_TO_COL, VOCAB

NEG = -1e30


def gru_weights(model) -> dict[str, np.ndarray]:
    """The folded weights of a network built by ``autoregressive.build_network``."""
    emb = model.get_layer("embedding").get_weights()[0]
    kernel, rec, bias = model.get_layer("gru").get_weights()
    w_out, b_out = model.get_layer("logits").get_weights()
    return {
        "x_table": (emb @ kernel + bias[0]).astype(np.float32),  # [VOCAB, 3h]
        "h_mat": np.concatenate([w_out, rec], axis=1).astype(np.float32),  # [h, VOCAB + 3h]
        "h_bias": np.concatenate([b_out, bias[1]]).astype(np.float32),
    }


class FoldedGRU:
    """One network's decoding step on folded weights. ``proj(h)`` is the next-token logits
    (``[:, :VOCAB]``) and the recurrent projection (``[:, VOCAB:]``) in one matmul;
    ``logits`` and ``recurrent`` compute either half alone (the beam search needs the
    logits of every row but the recurrent part only of the rows it keeps)."""

    def __init__(self, weights: dict[str, np.ndarray]):
        self.x_table = tf.constant(weights["x_table"])
        self.h_mat = tf.constant(weights["h_mat"])
        self.h_bias = tf.constant(weights["h_bias"])
        self.w_out, self.b_out = self.h_mat[:, :VOCAB], self.h_bias[:VOCAB]
        self.w_rec, self.b_rec = self.h_mat[:, VOCAB:], self.h_bias[VOCAB:]
        self.units = int(weights["h_mat"].shape[0])

    def proj(self, h: tf.Tensor) -> tf.Tensor:
        return tf.matmul(h, self.h_mat) + self.h_bias

    def logits(self, h: tf.Tensor) -> tf.Tensor:
        return tf.matmul(h, self.w_out) + self.b_out

    def recurrent(self, h: tf.Tensor) -> tf.Tensor:
        return tf.matmul(h, self.w_rec) + self.b_rec

    def step(self, tok: tf.Tensor, rec: tf.Tensor, h: tf.Tensor) -> tf.Tensor:
        """The hidden state after feeding ``tok`` [B] to rows with state ``h`` whose recurrent
        projection is ``rec`` (``proj(h)[:, VOCAB:]``)."""
        xz, xr, xh = tf.split(tf.gather(self.x_table, tok), 3, axis=1)
        hz, hr, hh = tf.split(rec, 3, axis=1)
        z = tf.sigmoid(xz + hz)
        r = tf.sigmoid(xr + hr)
        return z * h + (1.0 - z) * tf.tanh(xh + r * hh)

    def start(self, rows) -> tf.Tensor:
        """Hidden states [rows, units] after BOS."""
        h0 = tf.zeros([rows, self.units])
        return self.step(tf.fill([rows], 1), self.recurrent(h0), h0)


def as_members(weights: dict | list[dict]) -> list[FoldedGRU]:
    ws = [weights] if isinstance(weights, dict) else list(weights)
    if not ws:
        raise ValueError("need the weights of at least one network")
    return [FoldedGRU(w) for w in ws]


def ensemble_logits(logits: list[tf.Tensor], allowed: tf.Tensor) -> tf.Tensor:
    """Next-token logits [B, VOCAB] of the members' logits, grammar-masked: one network's own,
    or the mean of several networks' masked log-softmax (product of experts)."""
    if len(logits) == 1:
        return tf.where(allowed, logits[0], NEG)
    logp = [tf.nn.log_softmax(tf.where(allowed, x, NEG), axis=1) for x in logits]
    return tf.where(allowed, tf.add_n(logp) / len(logp), NEG)


def folded_log_probs(weights: dict[str, np.ndarray], tokens: np.ndarray, chunk: int = 16384) -> np.ndarray:
    """log p [N] of token sequences [N, SEQ_LEN] under one network (folded weights), the sum of
    its grammar-masked log-softmax over each sequence's tokens, as the Keras network gives it
    under teacher forcing (``tests/test_lm_beam.py`` checks the two agree), without Keras. Rows
    are sorted by length and scored ``chunk`` at a time, each chunk for as many steps as its
    longest row, so short rows cost little."""
    m = FoldedGRU(weights)
    tokens = np.asarray(tokens, dtype=np.int32)
    lengths = (tokens != 0).sum(axis=1)  # PAD = 0; BOS ... EOS
    order = np.argsort(-lengths, kind="stable")
    out = np.zeros(len(tokens), dtype=np.float32)
    grammar = tf.constant(GRAMMAR)
    for i in range(0, len(tokens), chunk):
        rows = order[i:i + chunk]
        tok = tf.constant(tokens[rows])
        n_steps = int(lengths[rows].max()) - 1
        out[rows] = _score_chunk(m, grammar, tok, n_steps).numpy()
    return out


@tf.function(reduce_retracing=True, autograph=False)
def _score_graph(x_table, h_mat, h_bias, grammar, tok, n_steps):
    """``_score_chunk`` in one graph (a while loop over the steps): the weights are arguments,
    so one trace serves every network and chunk."""
    rows = tf.shape(tok)[0]
    w_out, b_out, w_rec, b_rec = h_mat[:, :VOCAB], h_bias[:VOCAB], h_mat[:, VOCAB:], h_bias[VOCAB:]

    def step(y, h):
        xz, xr, xh = tf.split(tf.gather(x_table, y), 3, axis=1)
        hz, hr, hh = tf.split(tf.matmul(h, w_rec) + b_rec, 3, axis=1)
        z = tf.sigmoid(xz + hz)
        r = tf.sigmoid(xr + hr)
        return z * h + (1.0 - z) * tf.tanh(xh + r * hh)

    h0 = step(tf.fill([rows], 1), tf.zeros([rows, tf.shape(h_mat)[0]]))

    def body(t, h, total):
        prev = tf.where(t > 0, tok[:, tf.maximum(t - 1, 0)], 0)  # the token before the input (PAD at 0)
        y = tok[:, t + 1]
        allowed = tf.gather(tf.gather(grammar, t), prev)
        logp = tf.nn.log_softmax(tf.where(allowed, tf.matmul(h, w_out) + b_out, NEG), axis=1)
        total += tf.where(y != 0, tf.gather(logp, y, batch_dims=1), 0.0)
        return t + 1, step(y, h), total

    _, _, total = tf.while_loop(lambda t, h, total: t < n_steps, body,
                                (tf.constant(0), h0, tf.zeros([rows])))
    return total


def _score_chunk(m: FoldedGRU, grammar, tok, n_steps: int):
    return _score_graph(m.x_table, m.h_mat, m.h_bias, grammar, tok, tf.constant(n_steps))


class GRUSampler:
    """Samples token-level compositions as count vectors, a fixed-size block per call."""

    def __init__(self, weights: dict[str, np.ndarray], top_p: float | None = None):
        self.net = FoldedGRU(weights)
        self.top_p = top_p
        self.grammar = tf.constant(GRAMMAR)
        self.rank_to_col = tf.constant(RANK_TO_COL, dtype=tf.int32)
        self._fn = tf.function(self._sample, reduce_retracing=True, autograph=False)

    def _pick(self, logits, temperature, seed, step, forced, allow, plen, idx, rows):
        """The next token of the live rows ``idx`` of a block of ``rows``: the noise is drawn
        for the whole block and gathered, so a row's draw does not depend on which rows are
        still decoding."""
        # right after a row's prefix, only the tokens its cell allows (``lm_shards``)
        logits = tf.where(allow | (plen != step)[:, None], logits, NEG)
        logits = tf.where(logits > NEG / 2, logits / temperature, NEG)
        if self.top_p is not None and self.top_p < 1.0:
            srt = tf.sort(logits, axis=1, direction="DESCENDING")
            cum = tf.cumsum(tf.nn.softmax(srt, axis=1), axis=1, exclusive=True)
            kept = tf.where(cum < self.top_p, srt, 1e30)
            cutoff = tf.reduce_min(kept, axis=1, keepdims=True)
            logits = tf.where(logits >= cutoff, logits, NEG)
        step_seed = seed + tf.stack([tf.constant(0, tf.int64), tf.cast(step, tf.int64)])
        u = tf.random.stateless_uniform([rows, VOCAB], seed=step_seed, minval=1e-12, maxval=1.0)
        drawn = tf.argmax(logits - tf.math.log(-tf.math.log(tf.gather(u, idx))), axis=1, output_type=tf.int32)
        given = tf.gather(forced, step, axis=1)  # a prefix's token, or -1: draw
        return tf.where(given >= 0, given, drawn)

    def _sample(self, rows: tf.Tensor, seed: tf.Tensor, temperature: tf.Tensor,
                forced: tf.Tensor, allow: tf.Tensor) -> tf.Tensor:
        """Count vectors int32 [rows, 85] for a stateless seed int64 [2]; ``forced`` int32
        [rows, 2 * MAX_ELEMENTS] holds each row's prefix tokens (-1: drawn), ``allow`` bool
        [rows, VOCAB] the tokens allowed right after them.

        Rows that emitted EOS leave the loop's state (``idx`` holds the live rows), so a step
        costs what the rows still decoding cost: most compounds have three or four elements,
        and a block's longest row used to keep all of its rows decoding to the end."""
        plen = tf.reduce_sum(tf.cast(forced >= 0, tf.int32), axis=1)
        state = (tf.constant(0), self.net.start(rows), tf.fill([rows], EL0 - 1), tf.range(rows),
                 tf.zeros([rows, N_ELEMENTS], tf.int32))
        invariants = (tf.TensorShape([]), tf.TensorShape([None, self.net.units]), tf.TensorShape([None]),
                      tf.TensorShape([None]), tf.TensorShape([None, N_ELEMENTS]))

        def cond(i, h, prev, idx, counts):
            return (i < MAX_ELEMENTS) & (tf.size(idx) > 0)

        def body(i, h, prev, idx, counts):
            f, a, pl = tf.gather(forced, idx), tf.gather(allow, idx), tf.gather(plen, idx)
            proj = self.net.proj(h)
            logits = ensemble_logits([proj[:, :VOCAB]], tf.gather(self.grammar[2 * i], prev))
            el = self._pick(logits, temperature, seed, 2 * i, f, a, pl, idx, rows)
            live = el != EOS
            h = self.net.step(el, proj[:, VOCAB:], h)
            proj = self.net.proj(h)
            logits = ensemble_logits([proj[:, :VOCAB]], tf.gather(self.grammar[2 * i + 1], el))
            cnt = self._pick(logits, temperature, seed, 2 * i + 1, f, a, pl, idx, rows)
            h = self.net.step(cnt, proj[:, VOCAB:], h)
            col = tf.gather(self.rank_to_col, tf.clip_by_value(el - EL0, 0, EL_LAST - EL0))
            keep = tf.boolean_mask(idx, live)
            at = tf.stack([keep, tf.boolean_mask(col, live)], axis=1)
            counts = tf.tensor_scatter_nd_add(counts, at, tf.boolean_mask(cnt - CNT0 + 1, live))
            return i + 1, tf.boolean_mask(h, live), tf.boolean_mask(el, live), keep, counts

        out = tf.while_loop(cond, body, state, shape_invariants=invariants, maximum_iterations=MAX_ELEMENTS)
        return out[-1]

    def block(self, rows: int, seed: np.ndarray, temperature: float,
              prefixes=None) -> np.ndarray:
        """int8 count vectors [rows, 85] for one block; depends only on (rows, seed, temperature,
        prefixes). ``prefixes`` int [rows, L] (L <= 2 * MAX_ELEMENTS, -1 after a row's prefix):
        tokens each row starts with (grammatical prefixes); the rest is drawn. Or an
        ``lm_shards.Prefixes`` (tokens, allow): the token right after a row's prefix is drawn
        among those ``allow`` [rows, VOCAB] marks."""
        forced = np.full((rows, 2 * MAX_ELEMENTS), -1, dtype=np.int32)
        allow = np.ones((rows, VOCAB), dtype=bool)
        if prefixes is not None:
            tokens = getattr(prefixes, "tokens", prefixes)
            if getattr(prefixes, "allow", None) is not None:
                allow = prefixes.allow
            width = min(tokens.shape[1], 2 * MAX_ELEMENTS)
            forced[:, :width] = tokens[:, :width]
        out = self._fn(tf.constant(rows), tf.constant(seed, dtype=tf.int64),
                       tf.constant(temperature, dtype=tf.float32), tf.constant(forced), tf.constant(allow))
        return out.numpy().astype(np.int8)
