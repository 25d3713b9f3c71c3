"""In-graph ancestral sampling from a GRU composition language model.

The whole decoding loop runs inside one ``tf.function``: a ``tf.while_loop`` over elements
(one element step and one count step per iteration) that stops once every row has emitted
EOS. Two exact rewrites of the Keras network make a step cheap on a CPU: the embedding and
the GRU input kernel are folded into one table (token -> input projection), and the output
layer and the recurrent kernel share one matmul on the hidden state. Noise is stateless
(Gumbel-max on ``stateless_random_uniform`` folded in by step), so a block's samples depend
only on its seed.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from discovery.elements import N_ELEMENTS
from discovery.generation.lm_tokens import CNT0, EL0, EL_LAST, EOS, GRAMMAR, MAX_ELEMENTS, RANK_TO_COL, VOCAB


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


class GRUSampler:
    """Samples token-level compositions as count vectors, a fixed-size block per call."""

    def __init__(self, weights: dict[str, np.ndarray], top_p: float | None = None):
        self.x_table = tf.constant(weights["x_table"])
        self.h_mat = tf.constant(weights["h_mat"])
        self.h_bias = tf.constant(weights["h_bias"])
        self.units = int(weights["h_mat"].shape[0])
        self.top_p = top_p
        self.grammar = tf.constant(GRAMMAR)
        self.rank_to_col = tf.constant(RANK_TO_COL, dtype=tf.int32)
        self._fn = tf.function(self._sample, reduce_retracing=True, autograph=False)

    def _gru(self, x_proj: tf.Tensor, h_proj: tf.Tensor, h: tf.Tensor) -> tf.Tensor:
        xz, xr, xh = tf.split(x_proj, 3, axis=1)
        hz, hr, hh = tf.split(h_proj, 3, axis=1)
        z = tf.sigmoid(xz + hz)
        r = tf.sigmoid(xr + hr)
        return z * h + (1.0 - z) * tf.tanh(xh + r * hh)

    def _pick(self, logits, allowed, temperature, seed, step):
        logits = tf.where(allowed, logits / temperature, -1e30)
        if self.top_p is not None and self.top_p < 1.0:
            srt = tf.sort(logits, axis=1, direction="DESCENDING")
            cum = tf.cumsum(tf.nn.softmax(srt, axis=1), axis=1, exclusive=True)
            kept = tf.where(cum < self.top_p, srt, 1e30)
            cutoff = tf.reduce_min(kept, axis=1, keepdims=True)
            logits = tf.where(logits >= cutoff, logits, -1e30)
        step_seed = seed + tf.stack([tf.constant(0, tf.int64), tf.cast(step, tf.int64)])
        u = tf.random.stateless_uniform(tf.shape(logits), seed=step_seed, minval=1e-12, maxval=1.0)
        return tf.argmax(logits - tf.math.log(-tf.math.log(u)), axis=1, output_type=tf.int32)

    def _sample(self, rows: tf.Tensor, seed: tf.Tensor, temperature: tf.Tensor) -> tf.Tensor:
        """Count vectors int32 [rows, 85] for a stateless seed int64 [2]."""
        h0 = tf.zeros([rows, self.units])
        proj0 = tf.matmul(h0, self.h_mat) + self.h_bias
        h0 = self._gru(tf.gather(self.x_table, tf.fill([rows], 1)), proj0[:, VOCAB:], h0)  # BOS
        state = (tf.constant(0), h0, tf.fill([rows], EL0 - 1), tf.zeros([rows], tf.bool),
                 tf.zeros([rows, N_ELEMENTS], tf.int32))

        def cond(i, h, prev, done, counts):
            return (i < MAX_ELEMENTS) & ~tf.reduce_all(done)

        def body(i, h, prev, done, counts):
            proj = tf.matmul(h, self.h_mat) + self.h_bias
            allowed = tf.gather(self.grammar[2 * i], prev)
            el = self._pick(proj[:, :VOCAB], allowed, temperature, seed, 2 * i)
            done = done | (el == EOS)
            h = self._gru(tf.gather(self.x_table, el), proj[:, VOCAB:], h)
            proj = tf.matmul(h, self.h_mat) + self.h_bias
            allowed = tf.gather(self.grammar[2 * i + 1], el)
            cnt = self._pick(proj[:, :VOCAB], allowed, temperature, seed, 2 * i + 1)
            h = self._gru(tf.gather(self.x_table, cnt), proj[:, VOCAB:], h)
            col = tf.gather(self.rank_to_col, tf.clip_by_value(el - EL0, 0, EL_LAST - EL0))
            add = tf.one_hot(col, N_ELEMENTS, dtype=tf.int32) * (cnt - CNT0 + 1)[:, None]
            counts = counts + tf.where(done[:, None], 0, add)
            return i + 1, h, tf.where(done, prev, el), done, counts

        out = tf.while_loop(cond, body, state, maximum_iterations=MAX_ELEMENTS)
        return out[-1]

    def block(self, rows: int, seed: np.ndarray, temperature: float) -> np.ndarray:
        """int8 count vectors [rows, 85] for one block; depends only on (rows, seed, temperature)."""
        out = self._fn(tf.constant(rows), tf.constant(seed, dtype=tf.int64),
                       tf.constant(temperature, dtype=tf.float32))
        return out.numpy().astype(np.int8)
