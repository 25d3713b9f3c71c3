"""The WGAN's training configuration and its seeded train/validation split.

Free of TensorFlow, so trainers on other Keras backends (``pipelines/train/train_gan_jax.py``)
share the same configuration, split and run-directory format.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class GanConfig:
    generator: str = "paper"  # 'paper' (Table 3) or 'slim'
    # 'gumbel': straight-through Gumbel-softmax over {absent, 1..8} (samples the categorical);
    # 'st_argmax': straight-through on its mode (deterministic in z); 'sigmoid': soft output.
    output: str = "gumbel"
    tau: float = 1.0
    logit_bias: float = -6.0
    embedding_dim: int = 128
    count_features: bool = True
    minibatch_std: bool = False  # critic sees the batch's spread (against mode collapse)
    matrix_width: int = 0  # > 0: the critic also has a dense path over the whole matrix
    loss: str = "gp"  # 'gp' or 'clip'
    batch_size: int = 256
    n_critic: int = 5
    lr_generator: float = 1e-4
    lr_critic: float = 1e-4
    beta_1: float = 0.5
    beta_2: float = 0.9
    gp_weight: float = 10.0
    clip: float = 0.01
    seed: int = 0
    val_fraction: float = 0.1
    iterations: int = 10_000
    eval_every: int = 250
    eval_samples: int = 10_000
    checkpoint_minutes: float = 5.0

    def __post_init__(self):
        from discovery.errors import ConfigError

        choices = {"generator": ("paper", "slim"), "output": ("gumbel", "st_argmax", "sigmoid"),
                   "loss": ("gp", "clip")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(f"unknown {name} {getattr(self, name)!r}; use one of {', '.join(allowed)}")
        if self.matrix_width < 0:
            raise ConfigError(f"matrix_width must be >= 0, got {self.matrix_width}")
        for name in ("batch_size", "n_critic", "iterations", "eval_every", "eval_samples"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")

    @classmethod
    def paper_setting(cls, **kw) -> GanConfig:
        """The paper's stated setting: weight clipping, RMSProp, lr 1e-2 for both nets."""
        return cls(loss="clip", lr_generator=1e-2, lr_critic=1e-2, **kw)


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded train/validation row indices."""
    perm = np.random.default_rng(seed).permutation(n)
    n_val = int(round(n * val_fraction))
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])
