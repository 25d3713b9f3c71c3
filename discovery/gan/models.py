"""The composition WGAN's networks: the paper's generator and the embedding critic.

Generator (paper, Table 3): z[128] -> Dense(5*4*256) -> [5, 4, 256] -> ConvT(128, 5x5, (2,2))
-> [11, 8] -> ConvT(64, 3x3, (2,1)) -> [22, 8] -> ConvT(32, 3x3, (2,1)) -> [43, 8] ->
ConvT(1, 3x3, (2,1)) -> [85, 8], batch norm + ReLU between, sigmoid out. Keras' transposed
convolutions overshoot these sizes by a row or two; a crop lands on them exactly.

The pre-sigmoid output (layer ``logits``) doubles as the count logits of a categorical over
{absent, 1..8} per element with the absent logit fixed at 0: its most likely class is the
slot whose sigmoid exceeds 0.5, which is exactly the codec's ``argmax`` decoding rule.

Critic (the authors' code): T = tanh(E W + b) with E = I_85, C = sum_rows((X^T T) * A), A's
row k filled with k (equations 5/6) -- the count-weighted sum of element embeddings -- then
Dense 128-64-32-1 with ReLU. Optionally (``count_features``) the MLP also sees how many
elements the composition has and how many occur 1..8 times, which C alone hides,
(``matrix_width``) a dense path over the whole 85x8 matrix, which can tell a soft or
multi-slot output from a real one-hot composition (C, being linear in X, cannot), and
(``minibatch_std``) how varied the batch is. T still comes from the embedding path.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

from discovery.elements import MAX_COUNT, N_ELEMENTS

LATENT_DIM = 128


@keras.saving.register_keras_serializable(package="discovery")
class AtomEmbedding(layers.Layer):
    """Equation 5: C = sum_rows((X^T T) * A), T = tanh(W + b) (E = I_85)."""

    def __init__(self, dim: int = 128, **kwargs):
        super().__init__(**kwargs)
        self.dim = dim

    def build(self, input_shape):
        self.w = self.add_weight(name="W", shape=(N_ELEMENTS, self.dim), initializer="glorot_uniform")
        self.b = self.add_weight(name="b", shape=(self.dim,), initializer="zeros")

    def embedding(self):
        """T [85, d]."""
        return ops.tanh(self.w + self.b)

    def call(self, x):
        t = self.embedding()
        xt = ops.einsum("bek,ed->bkd", x, t)  # X^T T: [B, 8, d]
        a = ops.arange(1, MAX_COUNT + 1, dtype=xt.dtype)[None, :, None]  # A: row k filled with k
        return ops.sum(xt * a, axis=1)

    def get_config(self):
        return {**super().get_config(), "dim": self.dim}


@keras.saving.register_keras_serializable(package="discovery")
class CountFeatures(layers.Layer):
    """How many elements occur k times (k = 1..8) and the number of elements."""

    def call(self, x):
        hist = ops.sum(x, axis=1)  # [B, 8]
        return ops.concatenate([hist, ops.sum(hist, axis=1, keepdims=True)], axis=1)


@keras.saving.register_keras_serializable(package="discovery")
class MinibatchStd(layers.Layer):
    """Appends the batch's mean feature standard deviation to every row (Karras et al. 2018).

    A critic that sees how varied a batch is can penalise a generator that collapses onto a
    few compositions, which a per-sample critic cannot tell from a good one.
    """

    def call(self, h):
        spread = ops.mean(ops.sqrt(ops.var(h, axis=0) + 1e-8))
        return ops.concatenate([h, ops.ones_like(h[:, :1]) * spread], axis=1)


def build_generator(variant: str = "paper", logit_bias: float = -6.0) -> keras.Model:
    """The generator z -> probabilities [85, 8, 1]; ``variant`` 'paper' (Table 3) or 'slim'.

    ``logit_bias`` initialises the output bias so that elements start absent: with the
    count logits near 0 every element would start present in the categorical view.
    """
    if variant == "paper":
        dense, filters, first_kernel = (5, 4, 256), (128, 64, 32), 5
    elif variant == "slim":  # the authors' code's smaller generator
        dense, filters, first_kernel = (6, 4, 128), (64, 32, 16), 5
    else:
        raise ValueError(f"unknown generator variant {variant!r}; use 'paper' or 'slim'")
    z = keras.Input((LATENT_DIM,), name="z")
    h = layers.Dense(int(np.prod(dense)), use_bias=False)(z)
    h = layers.ReLU()(layers.BatchNormalization()(h))
    h = layers.Reshape(dense)(h)
    h = layers.Conv2DTranspose(filters[0], first_kernel, strides=(2, 2), padding="valid",
                               use_bias=False)(h)
    rows, cols = h.shape[1], h.shape[2]
    h = layers.Cropping2D(((0, rows - 11), (0, cols - 8)))(h)  # -> [11, 8]
    h = layers.ReLU()(layers.BatchNormalization()(h))
    for f, target in zip((filters[1], filters[2]), (22, 43), strict=True):
        h = layers.Conv2DTranspose(f, 3, strides=(2, 1), padding="same", use_bias=False)(h)
        h = layers.Cropping2D(((0, h.shape[1] - target), (0, 0)))(h)
        h = layers.ReLU()(layers.BatchNormalization()(h))
    h = layers.Conv2DTranspose(1, 3, strides=(2, 1), padding="same",
                               bias_initializer=keras.initializers.Constant(logit_bias))(h)
    h = layers.Cropping2D(((0, h.shape[1] - N_ELEMENTS), (0, 0)), name="logits")(h)
    out = layers.Activation("sigmoid", dtype="float32", name="probabilities")(h)
    return keras.Model(z, out, name=f"generator_{variant}")


def build_critic(embedding_dim: int = 128, count_features: bool = True,
                 minibatch_std: bool = False, matrix_width: int = 0) -> keras.Model:
    """The critic X [85, 8] -> score; its AtomEmbedding layer holds T."""
    x = keras.Input((N_ELEMENTS, MAX_COUNT), name="x")
    feats = [AtomEmbedding(embedding_dim, name="atom_embedding")(x)]
    if count_features:
        feats.append(CountFeatures(name="count_features")(x))
    if matrix_width:
        flat = layers.Flatten(name="matrix")(x)
        feats.append(layers.Dense(matrix_width, activation="relu", name="matrix_path")(flat))
    h = layers.Concatenate()(feats) if len(feats) > 1 else feats[0]
    if minibatch_std:
        h = MinibatchStd(name="minibatch_std")(h)
    for units in (128, 64, 32):
        h = layers.Dense(units, activation="relu")(h)
    score = layers.Dense(1, dtype="float32", name="score")(h)
    return keras.Model(x, score, name="critic")


def logits_model(generator: keras.Model) -> keras.Model:
    """z -> pre-sigmoid count logits [B, 85, 8] of a generator built here."""
    return keras.Model(generator.input, generator.get_layer("logits").output)


def atom_embedding(critic: keras.Model) -> np.ndarray:
    """The trained atom-embedding matrix T [85, d] of a critic."""
    return np.asarray(ops.convert_to_numpy(critic.get_layer("atom_embedding").embedding()))


def embedding_descriptor(amounts: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Equation 5 for amount vectors [N, 85] (fractional allowed): C = amounts @ T."""
    return np.asarray(amounts, dtype=np.float32) @ np.asarray(t, dtype=np.float32)
