"""Partitioned runs: local vs Dask identical, resume after interruption, worker death,
corrupt partition files recomputed."""

import os
import sys
from pathlib import Path

import pandas as pd
import pytest

from discovery.engines.local import LocalEngine
from discovery.pipeline import Pipeline
from discovery.report import write_csv

N, PART, TARGET = 2400, 400, "formation_energy<-0.3"
_STATE = {"interrupt_at": None, "calls": 0, "kill_marker": None}


def interruptible(chunk: pd.DataFrame):
    """Passes everything; raises KeyboardInterrupt on a chosen call, like Ctrl-C."""
    _STATE["calls"] += 1
    if _STATE["interrupt_at"] is not None and _STATE["calls"] == _STATE["interrupt_at"]:
        raise KeyboardInterrupt
    return chunk["n_elements"].to_numpy() > 0


def kill_once(chunk: pd.DataFrame):
    """Passes everything; the first worker to call it dies (once per marker file)."""
    marker = Path(os.environ["DISCOVERY_KILL_MARKER"])
    if not marker.exists():
        marker.write_text("killed")
        os._exit(1)
    return chunk["n_elements"].to_numpy() > 0


@pytest.fixture(scope="module")
def pipe(crabnet_cache):
    return Pipeline.default(seed=1)


def _csv(result, path):
    write_csv(result.candidates, result.sort[0], path)
    return path.read_bytes()


@pytest.fixture(scope="module")
def clean(pipe, tmp_path_factory):
    spec = pipe.spec(N, TARGET, filters=[interruptible], partition_size=PART, batch_size=256)
    result = LocalEngine(pipe).run(spec)
    return spec, result, _csv(result, tmp_path_factory.mktemp("clean") / "clean.csv")


def test_partitions_cover_the_run(clean):
    spec, result, _ = clean
    assert spec.n_partitions == 6 and result.funnel["sampled"] == N
    assert len(result.candidates) == result.funnel["meets_target"] > 0


def test_resume_after_interruption_gives_identical_report(pipe, clean, tmp_path):
    spec, result, csv = clean
    run_dir = tmp_path / "run"
    _STATE.update(interrupt_at=_STATE["calls"] + 8, calls=_STATE["calls"])
    with pytest.raises(KeyboardInterrupt):
        LocalEngine(pipe, run_dir).run(spec)
    done = sorted(p.name for p in run_dir.glob("part-*.parquet"))
    assert 0 < len(done) < spec.n_partitions  # stopped mid-run, completed partitions kept
    _STATE["interrupt_at"] = None
    resumed = LocalEngine(pipe, run_dir, resume=True).run(spec)
    assert _csv(resumed, tmp_path / "resumed.csv") == csv
    assert resumed.funnel == result.funnel


def test_corrupt_partition_is_recomputed(pipe, clean, tmp_path):
    spec, result, csv = clean
    run_dir = tmp_path / "run"
    LocalEngine(pipe, run_dir).run(spec)
    victim = run_dir / "part-00002.parquet"
    victim.write_bytes(victim.read_bytes()[:100])  # truncated
    (run_dir / "part-00004.npz").unlink()
    again = LocalEngine(pipe, run_dir, resume=True).run(spec)
    assert _csv(again, tmp_path / "again.csv") == csv and again.funnel == result.funnel
    assert len(victim.read_bytes()) > 100  # rewritten


def test_resume_refuses_other_settings(pipe, clean, tmp_path):
    from discovery.errors import ConfigError

    spec, _, _ = clean
    LocalEngine(pipe, tmp_path / "r").run(pipe.spec(800, TARGET, partition_size=PART))
    with pytest.raises(ConfigError, match="different settings"):
        LocalEngine(pipe, tmp_path / "r", resume=True).run(pipe.spec(1200, TARGET, partition_size=PART))
    with pytest.raises(ConfigError, match="already holds a run"):
        LocalEngine(pipe, tmp_path / "r").run(pipe.spec(800, TARGET, partition_size=PART))


@pytest.fixture(scope="module")
def dask_ready():
    pytest.importorskip("dask.distributed")
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])


def test_dask_matches_local_and_survives_a_worker_kill(pipe, clean, tmp_path, dask_ready, monkeypatch):
    from discovery.engines.dask import DaskEngine

    spec, result, csv = clean
    same = DaskEngine(tmp_path / "dask", workers=2).run(spec)
    assert _csv(same, tmp_path / "dask.csv") == csv and same.funnel == result.funnel

    marker = tmp_path / "killed.marker"
    monkeypatch.setenv("DISCOVERY_KILL_MARKER", str(marker))
    kspec = pipe.spec(N, TARGET, filters=[kill_once], partition_size=PART, batch_size=256)
    killed = DaskEngine(tmp_path / "dask_kill", workers=2).run(kspec)
    assert marker.exists()  # a worker really died mid-run
    assert _csv(killed, tmp_path / "killed.csv") == csv and killed.funnel == result.funnel
