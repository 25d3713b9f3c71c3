"""Process-wide runtime settings."""

from __future__ import annotations


def set_threads(threads: int) -> None:
    """Limit TensorFlow to ``threads`` intra-op threads (0 leaves its default: all cores).

    Must run before TensorFlow executes its first op in this process.
    """
    if threads:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
