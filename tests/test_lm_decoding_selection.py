"""pipelines/select/select_lm_decoding.py's rule: floors first, then the fastest decoding whose
precision is within one binomial standard error of the best."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "pipelines" / "select" / "select_lm_decoding.py"


def _select():
    spec = importlib.util.spec_from_file_location("select_lm_decoding", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.select


def row(name, precision, novel=50_000, yield_=2_500.0, rate=6_000.0):
    return {"name": name, "precision_pct": precision, "novel": novel, "yield_per_100k": yield_,
            "samples_per_s": rate}


def test_ties_within_one_standard_error_go_to_the_fastest():
    select = _select()
    # best 5.44% of 50,000 novel: one standard error is 0.101 points
    rows = [row("best", 5.44, rate=4_700), row("near", 5.35, rate=6_900), row("far", 5.30, rate=9_000)]
    assert select(rows, floor_yield=1_600, min_rate=4_000)["name"] == "near"
    rows[1]["precision_pct"] = 5.33  # now more than one standard error below
    assert select(rows, floor_yield=1_600, min_rate=4_000)["name"] == "best"


def test_floors_exclude_slow_or_low_yield_decodings_unless_none_pass():
    select = _select()
    rows = [row("slow", 6.0, rate=3_000), row("thin", 5.7, yield_=1_000.0), row("ok", 5.0)]
    assert select(rows, floor_yield=1_600, min_rate=4_000)["name"] == "ok"
    assert select(rows[:2], floor_yield=1_600, min_rate=4_000)["name"] == "slow"  # none pass: best precision
