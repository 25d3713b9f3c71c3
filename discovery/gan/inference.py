"""A fast inference form of a trained generator: same function, fewer and cheaper CPU ops.

Two exact rewrites of the chain Dense/ConvTranspose -> [Crop] -> BatchNorm -> ReLU:
- batch norm in inference mode is a per-channel affine map, folded into the preceding
  layer's kernel and bias;
- a strided transposed convolution is computed as one ordinary convolution whose output
  channels hold the stride phases, then interleaved (the "sub-pixel" form). On this CPU
  TensorFlow's transposed convolution (a conv2d input gradient) runs at a third of the
  speed of the forward convolution that does the same arithmetic.
The crops that follow each transposed convolution become slices of the interleaved output.
"""

from __future__ import annotations

import math

import keras
import numpy as np


def _phase_kernel(kernel: np.ndarray, strides: tuple[int, int], pad_before: tuple[int, int]):
    """Keras ConvTranspose kernel [kh, kw, out, in] -> (conv kernel [th, tw, in, sh*sw*out],
    input padding before per dim, taps per dim)."""
    kh, kw, cout, cin = kernel.shape
    spans = []
    for size, s, pad in ((kh, strides[0], pad_before[0]), (kw, strides[1], pad_before[1])):
        d_lo = min(math.ceil((-p - pad) / s) for p in range(s))
        d_hi = max((size - 1 - p - pad) // s for p in range(s))
        spans.append((d_lo, d_hi))
    (lo_h, hi_h), (lo_w, hi_w) = spans
    th, tw = hi_h - lo_h + 1, hi_w - lo_w + 1
    sh, sw = strides
    g = np.zeros((th, tw, cin, sh, sw, cout), dtype=np.float32)
    for p in range(sh):
        for q in range(sw):
            for t in range(th):
                k = sh * (hi_h - t) + p + pad_before[0]
                if not 0 <= k < kh:
                    continue
                for u in range(tw):
                    m = sw * (hi_w - u) + q + pad_before[1]
                    if 0 <= m < kw:
                        g[t, u, :, p, q, :] = kernel[k, m].T
    return g.reshape(th, tw, cin, sh * sw * cout), (hi_h, hi_w), (th, tw)


class _SubPixelConvTranspose:
    """ConvTranspose (+ crop to the first ``out_hw`` rows/cols) as conv2d + interleave."""

    def __init__(self, layer: keras.layers.Conv2DTranspose, in_hw: tuple[int, int], out_hw: tuple[int, int]):
        kernel = np.asarray(layer.kernel.numpy(), dtype=np.float32)
        kh, kw = kernel.shape[:2]
        self.strides = tuple(layer.strides)
        if layer.padding == "valid":
            pad = (0, 0)
        else:  # 'same': TensorFlow pads (kernel - stride) in total, the smaller half before
            pad = tuple(max(k - s, 0) // 2 for k, s in zip((kh, kw), self.strides, strict=True))
        self.kernel, before, taps = _phase_kernel(kernel, self.strides, pad)
        self.bias = (np.asarray(layer.bias.numpy(), np.float32) if layer.use_bias
                     else np.zeros(kernel.shape[2], np.float32))
        self.out_hw = out_hw
        self.cout = kernel.shape[2]
        self.phase_hw = tuple(math.ceil(o / s) for o, s in zip(out_hw, self.strides, strict=True))
        self.pads = [(b, max(0, m + t - 1 - n - b))
                     for b, m, t, n in zip(before, self.phase_hw, taps, in_hw, strict=True)]

    def fold_affine(self, scale: np.ndarray, shift: np.ndarray) -> None:
        """Absorb y -> y * scale + shift (per output channel), e.g. a batch norm."""
        sh, sw = self.strides
        self.kernel = self.kernel * np.tile(scale, sh * sw)
        self.bias = self.bias * scale + shift

    def __call__(self, x):
        import tensorflow as tf

        x = tf.pad(x, [[0, 0], list(self.pads[0]), list(self.pads[1]), [0, 0]])
        y = tf.nn.conv2d(x, self.kernel, strides=1, padding="VALID")
        sh, sw = self.strides
        mh, mw = self.phase_hw
        b = tf.shape(y)[0]
        y = tf.reshape(y, [b, mh, mw, sh, sw, self.cout])
        y = tf.reshape(tf.transpose(y, [0, 1, 3, 2, 4, 5]), [b, mh * sh, mw * sw, self.cout])
        return y[:, : self.out_hw[0], : self.out_hw[1]] + self.bias


class _Dense:
    def __init__(self, layer: keras.layers.Dense):
        self.kernel = np.asarray(layer.kernel.numpy(), np.float32)
        self.bias = (np.asarray(layer.bias.numpy(), np.float32) if layer.use_bias
                     else np.zeros(self.kernel.shape[1], np.float32))

    def fold_affine(self, scale: np.ndarray, shift: np.ndarray) -> None:
        self.kernel = self.kernel * scale
        self.bias = self.bias * scale + shift

    def __call__(self, x):
        import tensorflow as tf

        return tf.matmul(x, self.kernel) + self.bias


def _bn_affine(layer: keras.layers.BatchNormalization) -> tuple[np.ndarray, np.ndarray]:
    mean = np.asarray(layer.moving_mean.numpy(), np.float32)
    var = np.asarray(layer.moving_variance.numpy(), np.float32)
    gamma = np.asarray(layer.gamma.numpy(), np.float32) if layer.scale else np.ones_like(mean)
    beta = np.asarray(layer.beta.numpy(), np.float32) if layer.center else np.zeros_like(mean)
    scale = gamma / np.sqrt(var + layer.epsilon)
    return scale, beta - mean * scale


def fast_logits(generator: keras.Model):
    """tf.function z [B, 128] -> count logits [B, 85, 8] equal to the generator's ``logits``
    layer (to float rounding), for a generator built by ``models.build_generator``."""
    import tensorflow as tf

    ops: list = []
    pending = None  # a transposed convolution waiting for its crop: [layer, output rows/cols]

    def finish():
        nonlocal pending
        if pending is not None:
            layer, out_hw = pending
            ops.append(_SubPixelConvTranspose(layer, tuple(layer.input.shape[1:3]), out_hw))
            pending = None

    for layer in generator.layers[1:]:
        name = type(layer).__name__
        if name == "Cropping2D" and pending is not None:
            pending[1] = tuple(layer.output.shape[1:3])
            continue
        finish()
        if name == "Dense":
            ops.append(_Dense(layer))
        elif name == "Conv2DTranspose":
            pending = [layer, tuple(layer.output.shape[1:3])]
        elif name == "BatchNormalization" and ops and hasattr(ops[-1], "fold_affine"):
            ops[-1].fold_affine(*_bn_affine(layer))
        elif name == "ReLU":
            ops.append("relu")
        elif name == "Reshape":
            ops.append(("reshape", tuple(layer.target_shape)))
        elif name == "Activation":  # the sigmoid after the logits
            break
        else:
            raise ValueError(f"fast_logits cannot rewrite layer {layer.name!r} ({name})")
    finish()

    @tf.function(reduce_retracing=True)
    def run(z):
        h = z
        for op in ops:
            if op == "relu":
                h = tf.nn.relu(h)
            elif isinstance(op, tuple):
                h = tf.reshape(h, [-1, *op[1]])
            else:
                h = op(h)
        return h[..., 0]

    return run

