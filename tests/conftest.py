"""Shared fixtures: the shared data folder (or its small cuts under tests/data) and the fetched
crabnet cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from discovery.data import cache_dir, shared_data_dir

FIXTURE_DATA = Path(__file__).resolve().parent / "data" / "shared"
"""Small cuts of the shared CSVs (tests/data/README.md names their sources)."""


def _full_data() -> Path | None:
    d = shared_data_dir(required=False)
    return d if d is not None and (d / "oqmd_gan_formulas.csv").is_file() else None


def pytest_configure(config):
    config.addinivalue_line("markers", "data: reads training data or depends on ../shared (.ci/run reruns "
                                       "these with it hidden)")


def pytest_collection_modifyitems(config, items):
    """Mark the tests that read training data (``-m data``: what .ci/run reruns with it hidden)."""
    for item in items:
        if {"shared_dir", "training_data"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.data)


@pytest.fixture(scope="session")
def shared_dir():
    """The full shared data, for tests that compare against the whole data sets; skipped (with
    the reason) where it is absent, a failure where DISCOVERY_REQUIRE_DATA=1 (CI's data run)."""
    d = _full_data()
    if d is None:
        why = ("full shared data not found (../shared/data beside the checkout, or DISCOVERY_DATA): "
               "this test compares against the whole data sets")
        if os.environ.get("DISCOVERY_REQUIRE_DATA") == "1":
            pytest.fail(why)
        pytest.skip(why)
    return d


def use_training_data(monkeypatch: pytest.MonkeyPatch) -> Path:
    """The full shared data when it is there, else the fixtures under tests/data/shared (and
    DISCOVERY_DATA pointed at them, through ``monkeypatch``)."""
    d = _full_data()
    if d is None:
        monkeypatch.setenv("DISCOVERY_DATA", str(FIXTURE_DATA))
        return FIXTURE_DATA
    return d


@pytest.fixture
def training_data(monkeypatch):
    """A folder of training CSVs that the loaders read: see :func:`use_training_data`."""
    return use_training_data(monkeypatch)


@pytest.fixture(scope="session")
def crabnet_cache():
    """The fetched crabnet tables; CI fetches them in .ci/run, so absence there is a failure."""
    manifest = cache_dir() / "crabnet" / "manifest.json"
    if not manifest.is_file():
        if os.environ.get("CI"):
            pytest.fail("crabnet tables not fetched: .ci/run must run `discover data fetch`")
        pytest.skip("crabnet tables not fetched (run `discover data fetch`)")
    return cache_dir()

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
