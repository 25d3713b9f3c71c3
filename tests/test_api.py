"""The top-level Python API: discovery.sample and discovery.predict (issue 16 items 13, 14)."""

import warnings

import numpy as np
import pytest

import discovery
from discovery.encoding import CompositionError
from discovery.errors import ConfigError
from discovery.properties import PredictionWarning


def test_sample_never_returns_empty_formulas():
    a = discovery.sample(300, seed=0)
    assert len(a) == 300 and "" not in a
    assert discovery.sample(300, seed=0) == a  # same seed, same list
    assert discovery.sample(400, seed=0)[:300] == a  # a longer sample extends it
    assert discovery.sample(0, seed=0) == []


def test_predict_skip_reports_bad_rows_and_keeps_positions():
    with pytest.raises(CompositionError, match="'Xx'"):
        discovery.predict(["Fe2O3", "Xx"])
    with pytest.warns(PredictionWarning, match=r"skipped 2 of 4 formulas: row 1: 'Xx': .*row 3: ''"):
        df = discovery.predict(["Fe2O3", "Xx", "GaN", ""], errors="skip")
    assert df["formula"].tolist() == ["Fe2O3", "GaN"] and df.index.tolist() == [0, 2]
    assert [r[:2] for r in df.attrs["skipped_rows"]] == [(1, "Xx"), (3, "")]
    assert sum(df.attrs["skipped"].values()) == 2
    full = discovery.predict(["Fe2O3", "GaN"])
    num = [c for c in full.columns if c not in ("formula", "domain_note")]
    np.testing.assert_allclose(df[num].to_numpy(dtype=float), full[num].to_numpy(dtype=float), equal_nan=True)
    assert df["domain_note"].tolist() == full["domain_note"].tolist()
    with pytest.raises(ConfigError, match="errors must be 'raise' or 'skip', got 'ignore'"):
        discovery.predict(["Fe2O3"], errors="ignore")


def test_predict_skip_names_an_infinite_amount_instead_of_failing_the_batch():
    """Issue 26 item 9: pymatgen reads 'NaCl1e400' as an infinite amount of Cl."""
    with pytest.warns(PredictionWarning, match=r"row 1: 'NaCl1e400': amount inf of Cl is not a finite"):
        df = discovery.predict(["NaCl", "NaCl1e400", "Na1e308Cl1e308"], properties=("bandgap",),
                               errors="skip")
    assert df["formula"].tolist() == ["NaCl"] and np.isfinite(df["bandgap"]).all()
    assert df.attrs["skipped"] == {"non-finite amount": 2}
    with pytest.raises(CompositionError, match="'NaCl1e400': amount inf of Cl is not a finite number"):
        discovery.predict(["NaCl", "NaCl1e400"])


def test_predict_warns_beyond_the_training_data():
    with pytest.warns(PredictionWarning,
                      match=r"'NaCl100' lie beyond the training compositions of the bandgap"):
        df = discovery.predict(["NaCl", "NaCl100"])
    assert df.attrs["outside_training"]["bandgap"] == ["NaCl100"]
    assert "NaCl" not in sum(df.attrs["outside_training"].values(), [])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        discovery.predict(["Fe2O3", "GaN"])  # inside every model's data: no warning
