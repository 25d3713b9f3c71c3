"""The LM's beam head for a saved model: computed once by a child process, kept on disk, read
back whole; a change of options or skip set is another file."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from discovery.encoding import composition_keys
from discovery.generation import lm_head
from discovery.generation.registry import load_generator


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DISCOVERY_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(lm_head, "IN_PROCESS_MAX_WIDTH", 0)  # the child path for a quick, narrow beam
    return tmp_path / "cache" / "lm_heads"


def narrow():
    return load_generator("lm").with_options(beam_width=300, block=256)


def test_a_head_is_computed_once_by_a_child_and_read_back(cache, monkeypatch):
    lm = narrow()
    first = np.concatenate(list(lm.iter_slice(0, 600, 0)))  # head, then draws from the shards
    files = sorted(cache.glob("*.npz"))
    assert len(files) == 1

    def no_child(*args, **kwargs):
        raise AssertionError("the head was computed again")

    monkeypatch.setattr(subprocess, "run", no_child)
    again = np.concatenate(list(narrow().iter_slice(0, 600, 0)))  # a new process would read the file
    assert np.array_equal(first, again)
    in_process = narrow()._compute_head(0, None)[0]  # oneDNN on here, off in the child: same head
    assert len(in_process) == len(lm.beam_head(0))
    shared = np.isin(composition_keys(in_process), composition_keys(lm.beam_head(0))).mean()
    assert shared > 0.95


def test_other_options_or_skip_sets_get_their_own_file(cache):
    lm = narrow()
    lm.beam_head(0)
    lm.beam_head(0, np.unique(composition_keys(lm.beam_head(0)[:20])))
    lm.with_options(beam_width=200).beam_head(0)
    assert len(list(cache.glob("*.npz"))) == 3


def test_save_and_load_round_trip(tmp_path):
    lm = load_generator("lm").with_options(beam_width=100, block=256)
    head, keys, skipped, shards = lm._compute_head(0, None)
    path = tmp_path / "h.npz"
    lm_head.save_head(path, head, keys, skipped, shards)
    h2, k2, s2, sh2 = lm_head.load_head(path)
    assert np.array_equal(h2, head) and np.array_equal(k2, keys) and s2 == skipped
    assert np.array_equal(sh2.prefixes, shards.prefixes) and np.array_equal(sh2.allow, shards.allow)
    assert np.array_equal(sh2.log_mass, shards.log_mass) and sh2.temperature == shards.temperature
    assert len(sh2.cells) == len(shards.cells)
    assert all(np.array_equal(a, b) for a, b in zip(sh2.cells, shards.cells, strict=True))
    path.write_bytes(b"damaged")
    assert lm_head.load_head(path) is None  # a damaged file is computed again, never half-read


def test_a_failing_child_is_one_line(cache, monkeypatch):
    from discovery.errors import ConfigError

    failed = subprocess.CompletedProcess([], 1, "", "boom\nKeyError: x")
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: failed)
    with pytest.raises(ConfigError, match="beam head failed: KeyError: x"):
        narrow().beam_head(0)
