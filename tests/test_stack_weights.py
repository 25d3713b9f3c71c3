"""The stability benchmark's stack: weights chosen on validation data recover a known mix."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "pipelines"))
from bench_stability import stack_weights  # noqa: E402


def test_stack_weights_find_the_mix_that_cancels_errors():
    rng = np.random.default_rng(0)
    y = rng.normal(size=500)
    noise = rng.normal(size=500)
    a, b, c = y + noise, y - noise / 3, y + rng.normal(size=500)  # 0.25 a + 0.75 b == y exactly
    w, mae = stack_weights([a, b, c], y)
    np.testing.assert_allclose(w, [0.25, 0.75, 0.0])
    assert mae < 1e-12 and w.sum() == 1.0
    w1, _ = stack_weights([c, y], y)
    np.testing.assert_allclose(w1, [0.0, 1.0])
