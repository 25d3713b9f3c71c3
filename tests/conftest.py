"""Shared fixtures: the shared data folder and the fetched crabnet cache."""

from __future__ import annotations

import os

import pytest

from discovery.data import cache_dir, shared_data_dir


@pytest.fixture(scope="session")
def shared_dir():
    d = shared_data_dir(required=False)
    if d is None:
        pytest.fail("shared data not found: set DISCOVERY_DATA (CI places ../shared beside the clone)")
    return d


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
