"""The shipped known-materials index: novelty needs no data on the machine (issue 16, item 9)."""

import json
import logging

import numpy as np
import pytest

from discovery.known import SHIPPED_META, KnownMaterials

pytestmark = pytest.mark.data  # what the index holds depends on the local data


@pytest.fixture
def bare_machine(tmp_path, monkeypatch):
    """No shared data and no fetched crabnet tables, as on a machine with only PyPI."""
    (tmp_path / "data").mkdir()
    monkeypatch.setenv("DISCOVERY_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("DISCOVERY_CACHE", str(tmp_path / "cache"))
    return tmp_path


def test_default_index_needs_no_data(bare_machine):
    km = KnownMaterials.default()
    meta = json.loads(SHIPPED_META.read_text())
    assert len(km) == meta["compositions"] > 390_000
    assert meta["sources"]["oqmd_gan_formulas"] == 251_368
    # Al2Te is in the GAN training set only: it came out novel without ../shared
    assert km.contains(["Al2Te", "Fe2O3", "NaN"]).all()
    assert km.describe()["added_locally"] == 0 and km.describe()["compositions"] == len(km)


def test_local_data_adds_nothing_to_the_shipped_index(crabnet_cache, shared_dir):
    full, shipped = KnownMaterials.default(), KnownMaterials.shipped()
    np.testing.assert_array_equal(full.keys, shipped.keys)
    assert full.origin["added_locally"] == 0 and "oqmd_gan_formulas" in full.origin["local_sources"]


def test_local_data_beyond_the_shipped_index_is_added(bare_machine):
    (bare_machine / "data" / "oqmd_gan_formulas.csv").write_text("formula\nXe7Pu8Ac5\nFe2O3\nNaN\n")
    km = KnownMaterials.default()
    assert km.origin["added_locally"] == 1 and km.contains(["Xe7Pu8Ac5", "Al2Te"]).all()


def test_smaller_index_warns_in_one_line(caplog):
    from discovery.pipeline import Pipeline

    with caplog.at_level(logging.WARNING, logger="discovery.known"):
        Pipeline(None, KnownMaterials.from_formulas(["Fe2O3", "Al2Te"]), {})
    (rec,) = caplog.records
    assert "lacks 400,213 of the shipped index's 400,215 compositions" in rec.getMessage()
    assert "\n" not in rec.getMessage()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="discovery.known"):
        Pipeline(None, KnownMaterials.shipped(), {})
    assert not caplog.records
