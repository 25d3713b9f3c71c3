"""Codec speed: decode 1,000,000 probability matrices to counts, and counts to formulas.

    python pipelines/bench/bench_codec.py [--n 1000000] [--chunk 100000]

Inputs are random sigmoid-like matrices (mostly near 0, a few slots above 0.5), so rows
carry 2-4 elements like generator output. Prints rows/s per stage.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from discovery.encoding import composition_keys, counts_to_formulas, decode_counts


def fake_probabilities(n: int, rng: np.random.Generator) -> np.ndarray:
    p = rng.random((n, 85, 8), dtype=np.float32) * 0.3
    rows = np.repeat(np.arange(n), 3)
    p[rows, rng.integers(0, 85, 3 * n), rng.integers(0, 5, 3 * n)] = 0.9
    return p


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--chunk", type=int, default=100_000)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    chunk = fake_probabilities(args.chunk, rng)
    t_dec = t_fmt = t_key = 0.0
    for _ in range(args.n // args.chunk):
        t0 = time.perf_counter()
        counts = decode_counts(chunk)
        t1 = time.perf_counter()
        formulas = counts_to_formulas(counts)
        t2 = time.perf_counter()
        composition_keys(counts)
        t3 = time.perf_counter()
        t_dec, t_fmt, t_key = t_dec + t1 - t0, t_fmt + t2 - t1, t_key + t3 - t2
    n = args.n // args.chunk * args.chunk
    print(f"rows: {n:,}  example: {formulas[:3]}")
    print(f"decode probabilities -> counts: {t_dec:.2f} s ({n / t_dec:,.0f} rows/s)")
    print(f"counts -> formula strings:      {t_fmt:.2f} s ({n / t_fmt:,.0f} rows/s)")
    print(f"counts -> reduced keys:         {t_key:.2f} s ({n / t_key:,.0f} rows/s)")


if __name__ == "__main__":
    main()
