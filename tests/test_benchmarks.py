"""discovery.benchmarks: the logic the scripts under pipelines/ share (generator benchmark,
language-model sampling choice, stability benchmark data and model folders)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from discovery.benchmarks import generators, lm_selection, stability
from discovery.encoding import composition_keys, parse_formulas
from discovery.errors import ConfigError


def counts_of(formulas: list[str]) -> np.ndarray:
    return parse_formulas(formulas).amounts.astype(np.int64)


class FixedGenerator:
    """Hands out the same formulas every time; records what it was asked."""

    def __init__(self, formulas: list[str]):
        self.counts = counts_of(formulas)
        self.calls: list[tuple] = []

    def sample_counts(self, n, seed, skip=None):
        self.calls.append((n, seed, skip))
        return np.resize(self.counts, (n, self.counts.shape[1]))


def test_bench_one_judges_the_samples_against_known_and_held_out():
    known = composition_keys(counts_of(["NaCl", "MgO"]))
    holdout = composition_keys(counts_of(["GaN", "ZnS"]))
    sets = {"known": known, "holdout": holdout, "train": counts_of(["NaCl", "MgO"])}
    gen = FixedGenerator(["NaCl", "GaN", "Fe2O3", "Fe"])
    skip = np.array([1, 2], dtype=np.uint64)
    r = generators.bench_one(gen, 8, seed=3, sets=sets, skip=skip)
    assert gen.calls == [(8, 3, skip)]
    assert r["holdout_hits"] == 1 and r["novel"] == 2  # GaN, Fe2O3 new; GaN held out; Fe no compound
    assert r["samples_per_s"] > 0 and r["seconds"] >= 0
    assert {"cn_pct", "en_pct", "pattern_distance_pts", "precision_pct"} <= set(r)


def test_evaluation_sets_keep_oqmd_out_of_the_held_out_set(training_data):
    sets = generators.evaluation_sets()
    assert sets["validation"] >= len(sets["holdout"]) > 0
    assert not np.isin(sets["holdout"], sets["known"]).any()
    assert (np.diff(sets["known"].astype(np.float64)) > 0).all()  # sorted, unique
    lm = generators.training_keys("lm")
    assert np.isin(composition_keys(sets["train"]), lm).all()  # the union holds the MP training split


def test_parse_sweep_and_its_one_line_errors():
    assert lm_selection.parse_sweep("0.5,1", "plain,distinct") == ([0.5, 1.0], ["plain", "distinct"])
    with pytest.raises(ConfigError, match="--temperatures 'x' is not a number"):
        lm_selection.parse_sweep("0.5,x", "plain")
    with pytest.raises(ConfigError, match="--temperatures '0' must be > 0"):
        lm_selection.parse_sweep("0", "plain")
    with pytest.raises(ConfigError, match="--sampling 'greedy': use plain or distinct"):
        lm_selection.parse_sweep("1", "plain,greedy")


def test_select_takes_the_highest_yield_and_breaks_ties_by_screened_precision():
    def row(name, yield_, precision):
        return {"name": name, "samples": 100_000, "yield_per_100k": yield_,
                "precision_screened_pct": precision}

    # best 2,500 hits per 100k samples: two Poisson errors are 100
    rows = [row("most", 2_500, 5.0), row("near", 2_420, 6.0), row("far", 2_300, 9.0)]
    assert lm_selection.select(rows)["name"] == "near"
    rows[1]["yield_per_100k"] = 2_390
    assert lm_selection.select(rows)["name"] == "most"


def test_screen_shares_are_percentages_of_the_rows():
    cn, cn_en = lm_selection.screen_shares(counts_of(["NaCl", "MgO", "NaCl2", "Fe2O3"]))
    assert (cn, cn_en) == (75.0, 75.0)  # NaCl2 is not charge neutral


def test_stability_protocols_and_model_names(monkeypatch):
    frames = {s: pd.DataFrame({"formula": ["NaCl"], "y": [-2.0]}) for s in stability.SPLITS}
    monkeypatch.setattr(stability, "oqmd_data", lambda: frames)
    monkeypatch.setattr(stability, "bartel_data", lambda: {})
    assert stability.protocol_data("oqmd") is frames and stability.protocol_data("bartel") == {}
    assert stability.SEEDED.fullmatch("attention-s2") and not stability.IMPORTED.fullmatch("attention-s2")
    assert stability.IMPORTED.fullmatch("attention-w256") and not stability.SEEDED.fullmatch("attention-w256")


def test_save_trained_writes_the_card_stack_property_model_checks(tmp_path):
    from discovery.tasks import frames_sha256

    class Model:
        def save(self, directory, card):
            directory.mkdir(parents=True)
            (directory / "card.json").write_text(json.dumps(card))

    data = {s: pd.DataFrame({"formula": ["NaCl", "MgO"][: i + 1], "y": [1.0, 2.0][: i + 1]})
            for i, s in enumerate(stability.SPLITS)}
    stability.save_trained(Model(), tmp_path / "m", "attention-x", {"epochs": 3}, data)
    card = json.loads((tmp_path / "m" / "card.json").read_text())
    assert card == {"version": "bench-attention-x", "training": {"epochs": 3},
                    "data": {"sha256": frames_sha256(*data.values())},
                    "splits": {"train": 1, "val": 2, "test": 2}}
