"""Seconds per training epoch of the attention formation-energy model at several sizes on this
machine: 30 steps at batch 512 (after a compiling epoch) scaled to OQMD's 239,187 training rows
(468 steps). What a larger model would cost on a CPU, on either Keras backend.

    KERAS_BACKEND=jax python research/probe_attention_epoch_time.py [w64b2 w128b3 w256b3 w512b3]
    KERAS_BACKEND=tensorflow python research/probe_attention_epoch_time.py
"""

import sys
import time
from pathlib import Path

import keras
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from discovery.attention import build_attention_model  # noqa: E402

SIZES = {"w64b2": dict(width=64, blocks=2, ff=128, head_widths=(256, 128, 64)),  # shipped
         "w128b3": dict(width=128, blocks=3, ff=512, head_widths=(512, 256, 128)),
         "w256b3": dict(width=256, blocks=3, ff=512, head_widths=(512, 256, 128)),
         "w512b3": dict(width=512, blocks=3, ff=2048, head_widths=(1024, 512, 256, 128))}  # CrabNet-sized
STEPS, BATCH, EPOCH_STEPS = 30, 512, 468

rng = np.random.default_rng(0)
x = np.zeros((BATCH * STEPS, 85), np.float32)
for row in x:
    els = rng.choice(85, rng.integers(2, 6), replace=False)
    row[els] = rng.random(len(els))
y = rng.normal(size=len(x)).astype(np.float32)
t = rng.normal(size=(85, 128)).astype(np.float32)
for name in sys.argv[1:] or SIZES:
    m = build_attention_model(t, 0.0, 1.0, **SIZES[name])
    m.compile(optimizer=keras.optimizers.Adam(5e-4), loss="mae")
    m.fit(x[: BATCH * 5], y[: BATCH * 5], batch_size=BATCH, epochs=1, verbose=0)  # compile
    t0 = time.perf_counter()
    m.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)
    per_step = (time.perf_counter() - t0) / STEPS
    print(f"{keras.backend.backend()} {name}: {m.count_params():,} parameters, {per_step * 1e3:.0f} ms/step, "
          f"{per_step * EPOCH_STEPS:.0f} s/epoch", flush=True)
