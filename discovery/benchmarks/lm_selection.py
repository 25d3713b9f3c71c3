"""Judging and choosing the language model's sampling settings on the MP validation split
(``pipelines/train/train_lm.py`` and ``pipelines/select/select_lm_sampling.py``)."""

from __future__ import annotations

import time

import numpy as np

from discovery.errors import ConfigError
from discovery.filters.chemistry import smact_screen
from discovery.generation.metrics import recovery_metrics

EVAL_SEED = 1
SAMPLING_MODES = ("plain", "distinct")


def quality(lm, n: int, train_keys: np.ndarray, val_keys: np.ndarray,
            train_shares: tuple[float, float] | None = None, known_keys: np.ndarray | None = None) -> dict:
    """Recovery metrics of n samples of ``lm`` (a CompositionLM; seed 1), before and after the
    CN+EN screen, and speed."""
    lm.sample_counts(lm.hparams["block"], seed=(EVAL_SEED, 99))  # trace outside the timing
    t0 = time.perf_counter()
    counts = lm.sample_counts(n, seed=EVAL_SEED)
    rate = n / (time.perf_counter() - t0)
    m = recovery_metrics(counts, train_keys, val_keys)
    out = {k: round(v, 3) if isinstance(v, float) else v for k, v in m.items()}
    out["samples_per_s"] = round(rate)
    if train_shares is not None:
        cn, en = smact_screen(counts)
        ok = cn & en
        after = recovery_metrics(counts[ok], train_keys, val_keys)
        out.update(cn_pct=round(100 * cn.mean(), 2), en_pct=round(100 * ok.mean(), 2),
                   train_cn_pct=round(train_shares[0], 2), train_en_pct=round(train_shares[1], 2),
                   precision_screened_pct=round(after["precision_pct"], 3),
                   yield_screened_per_100k=round(1e5 * after["holdout_hits"] / n, 1))
    if known_keys is not None:  # one novelty reference for every variant: the union training set
        ref = recovery_metrics(counts, known_keys, val_keys)
        out["precision_vs_union_pct"] = round(ref["precision_pct"], 3)
    return out


def parse_sweep(temperatures: str, sampling: str) -> tuple[list[float], list[str]]:
    """The --temperatures and --sampling lists; a one-line ConfigError naming a bad value."""
    temps = []
    for t in temperatures.split(","):
        try:
            temps.append(float(t))
        except ValueError:
            raise ConfigError(f"--temperatures {t!r} is not a number") from None
        if not temps[-1] > 0:
            raise ConfigError(f"--temperatures {t!r} must be > 0")
    modes = sampling.split(",")
    bad = [m for m in modes if m not in SAMPLING_MODES]
    if bad:
        raise ConfigError(f"--sampling {bad[0]!r}: use {' or '.join(SAMPLING_MODES)}")
    return temps, modes


def select(rows: list[dict]) -> dict:
    """Highest yield; yields within two Poisson standard errors of the best (2 sqrt(hits)) are
    a tie, and the tie goes to the highest precision after the CN+EN screen."""
    best = max(r["yield_per_100k"] for r in rows)
    hits = best * rows[0]["samples"] / 1e5
    tied = [r for r in rows if r["yield_per_100k"] >= best - 2 * np.sqrt(hits) * 1e5 / rows[0]["samples"]]
    return max(tied, key=lambda r: (r["precision_screened_pct"], r["yield_per_100k"]))


def screen_shares(counts: np.ndarray) -> tuple[float, float]:
    """Percent of ``counts`` that are charge neutral, and charge neutral and EN balanced."""
    cn, en = smact_screen(counts)
    return 100 * cn.mean(), 100 * (cn & en).mean()
