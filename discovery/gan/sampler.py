"""Sampling compositions from a trained generator, reproducibly and in bounded memory."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import keras
import numpy as np

from discovery.encoding import counts_to_formulas, decode_counts
from discovery.gan.io import ModelFileError, load_keras_model
from discovery.gan.models import LATENT_DIM

SHIPPED_GAN_DIR = Path(__file__).resolve().parent.parent / "models" / "gan"


class CompositionSampler:
    """Draws z ~ N(0, I) from a seeded stream, runs the generator, decodes counts.

    The draws for a seed form one stream whatever the batch size, so ``sample_counts(n)``
    equals the concatenation of smaller requests with the same seed.
    """

    def __init__(self, generator: keras.Model, decode_rule: str = "sample", card: dict | None = None):
        self.generator = generator
        self.decode_rule = decode_rule
        self.card = card or {}
        self._forward = None

    @classmethod
    def load(cls, model_dir: Path | str | None = None) -> CompositionSampler:
        """Load ``generator.keras`` and ``card.json`` (default: the shipped model)."""
        d = Path(model_dir) if model_dir else SHIPPED_GAN_DIR
        card_file = d / "card.json"
        if not card_file.is_file():
            raise ModelFileError(f"model card {str(card_file)!r} not found (no trained generator there)")
        try:
            card = json.loads(card_file.read_text())
        except json.JSONDecodeError as exc:
            raise ModelFileError(f"model card {str(card_file)!r} is not valid JSON ({exc})") from None
        gen = load_keras_model(d / "generator.keras")
        return cls(gen, card.get("decode_rule", "sample"), card)

    def _probabilities(self, z: np.ndarray) -> np.ndarray:
        if self._forward is None:
            import tensorflow as tf

            self._forward = tf.function(lambda t: self.generator(t, training=False),
                                        reduce_retracing=True)
        return np.asarray(self._forward(z))[..., 0]

    def iter_counts(self, n: int, seed: int | tuple[int, ...] = 0,
                    batch_size: int = 8192) -> Iterator[np.ndarray]:
        """Yield integer count batches [<=batch_size, 85] totalling n rows.

        ``seed`` may be a tuple, e.g. (run seed, partition index) for independent streams.
        """
        if n < 0:
            raise ValueError(f"number of samples must be >= 0, got {n}")
        base = list(seed) if isinstance(seed, tuple | list) else [seed]
        z_rng = np.random.default_rng([*base, 0])
        noise_rng = np.random.default_rng([*base, 1])
        done = 0
        while done < n:
            m = min(batch_size, n - done)
            z = z_rng.standard_normal((m, LATENT_DIM), dtype=np.float32)
            yield decode_counts(self._probabilities(z), self.decode_rule, noise_rng)
            done += m

    def sample_counts(self, n: int, seed: int | tuple[int, ...] = 0, batch_size: int = 8192) -> np.ndarray:
        parts = list(self.iter_counts(n, seed, batch_size))
        return np.concatenate(parts) if parts else np.zeros((0, 85), dtype=np.int8)

    def sample(self, n: int, seed: int = 0) -> list[str]:
        """n formulas (not deduplicated; '' where a sample has no element)."""
        return counts_to_formulas(self.sample_counts(n, seed))


_DEFAULT: CompositionSampler | None = None


def sample(n: int, seed: int = 0) -> list[str]:
    """n decoded formulas from the shipped generator; the same list for the same seed."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = CompositionSampler.load()
    return _DEFAULT.sample(n, seed)
