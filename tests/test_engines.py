"""Partitioned runs: local vs Dask identical, resume after interruption, worker death,
corrupt partition files recomputed."""

import dataclasses
import json
import os
import sys
import time
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


def block_partition_3(chunk: pd.DataFrame):
    """Passes everything; a directory in the way makes writing partition 3 fail."""
    if _STATE.get("block") is not None:
        (_STATE["block"] / "part-00003.parquet").mkdir(exist_ok=True)
    return chunk["n_elements"].to_numpy() > 0


def slow_until_a_worker_died(chunk: pd.DataFrame):
    """Passes everything, slowly until the test has killed a worker, so that partitions are
    still pending when one worker holds a finished one."""
    if not Path(os.environ["DISCOVERY_KILL_MARKER"]).with_name("killed-after-finishing").exists():
        time.sleep(0.3)
    return chunk["n_elements"].to_numpy() > 0


@pytest.fixture(scope="module")
def pipe(crabnet_cache):
    # ion substitution: novel candidates from the first samples (the default LM starts with its
    # most likely compositions, mostly known ones, so a run this small would keep none)
    return Pipeline.default(seed=1, generator="substitution")


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


def test_resume_of_a_missing_directory_refuses(pipe, clean, tmp_path):
    from discovery.errors import ConfigError

    spec, _, _ = clean
    with pytest.raises(ConfigError, match="cannot resume .*typo.*no such directory"):
        LocalEngine(pipe, tmp_path / "typo", resume=True).run(spec)
    assert not (tmp_path / "typo").exists()  # no new run started there
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no run there"):
        LocalEngine(pipe, tmp_path / "empty", resume=True).run(spec)


@pytest.mark.parametrize("damage", ["{not json", "", "[]", '{"settings": {}}'])
def test_damaged_manifest_is_explained_and_rebuilt_on_resume(pipe, clean, tmp_path, monkeypatch, damage):
    from discovery.errors import ConfigError

    spec, result, csv = clean
    run_dir = tmp_path / "run"
    LocalEngine(pipe, run_dir).run(spec)
    (run_dir / "manifest.json").write_text(damage)
    with pytest.raises(ConfigError, match=r"manifest.json is damaged \(.+\); continue it with --resume"):
        LocalEngine(pipe, run_dir).run(spec)

    def no_recompute(*args, **kwargs):
        raise AssertionError("a partition that verifies on its own was recomputed")

    monkeypatch.setattr(pipe, "run_partition", no_recompute)
    rebuilt = LocalEngine(pipe, run_dir, resume=True).run(spec)
    assert _csv(rebuilt, tmp_path / "rebuilt.csv") == csv and rebuilt.funnel == result.funnel
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["settings"] == spec.settings() and len(manifest["partitions"]) == spec.n_partitions


def test_rebuild_refuses_partitions_of_other_settings(pipe, clean, tmp_path):
    from discovery.errors import ConfigError

    spec, _, _ = clean
    LocalEngine(pipe, tmp_path / "r").run(pipe.spec(800, TARGET, partition_size=PART))
    (tmp_path / "r" / "manifest.json").unlink()
    with pytest.raises(ConfigError, match="different settings"):
        LocalEngine(pipe, tmp_path / "r", resume=True).run(pipe.spec(800, TARGET, partition_size=PART,
                                                                     kappa=2))


def test_temp_files_of_failed_writes_are_removed(pipe, clean, tmp_path):
    spec, _, csv = clean
    run_dir = tmp_path / "run"
    LocalEngine(pipe, run_dir).run(spec)
    stale = [run_dir / ".part-00001.npz.4242.tmp", run_dir / ".part-00002.parquet.77.0badcafe.tmp",
             run_dir / ".manifest.json.4242.tmp"]
    for p in stale:  # what a write killed half-way leaves
        p.write_bytes(b"half")
    resumed = LocalEngine(pipe, run_dir, resume=True).run(spec)
    assert _csv(resumed, tmp_path / "resumed.csv") == csv
    assert not [p for p in stale if p.exists()]


def test_failed_partition_write_leaves_no_temp_file(pipe, clean, tmp_path):
    from discovery.engines.store import write_partition

    spec, _, _ = clean
    out = pipe.run_partition(spec, 0)
    (tmp_path / "part-00000.npz").mkdir()  # the write cannot replace a directory
    with pytest.raises(OSError):
        write_partition(tmp_path, out, spec.settings())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["part-00000.npz", "part-00000.parquet"]


def test_failed_partition_write_is_one_error_and_resumes(pipe, tmp_path):
    from discovery.errors import OutputError

    spec = pipe.spec(N, TARGET, filters=[block_partition_3], partition_size=PART, batch_size=256)
    clean = LocalEngine(pipe).run(spec)
    run_dir = tmp_path / "run"
    _STATE["block"] = run_dir
    try:
        with pytest.raises(OutputError, match=f"cannot write partition 3 .*--resume {run_dir}"):
            LocalEngine(pipe, run_dir).run(spec)
    finally:
        _STATE["block"] = None
    (run_dir / "part-00003.parquet").rmdir()  # room made
    resumed = LocalEngine(pipe, run_dir, resume=True).run(spec)
    assert _csv(resumed, tmp_path / "r.csv") == _csv(clean, tmp_path / "c.csv")


@pytest.fixture(scope="module")
def dask_ready():
    pytest.importorskip("dask.distributed")
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module")
def cluster(dask_ready, tmp_path_factory):
    """One LocalCluster of two worker processes for the tests that kill workers; its workers
    (restarted ones too) see DISCOVERY_KILL_MARKER, which kill_once uses."""
    from dask.distributed import Client, LocalCluster

    marker = tmp_path_factory.mktemp("kill") / "killed.marker"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DISCOVERY_KILL_MARKER", str(marker))
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as c, \
                Client(c) as client:
            yield c, client, marker


def test_dask_matches_local_and_survives_a_worker_kill(pipe, clean, tmp_path, cluster):
    from discovery.engines.dask import DaskEngine

    spec, result, csv = clean
    same = DaskEngine(tmp_path / "dask", workers=2).run(spec)
    assert _csv(same, tmp_path / "dask.csv") == csv and same.funnel == result.funnel

    marker = cluster[2]
    kspec = pipe.spec(N, TARGET, filters=[kill_once], partition_size=PART, batch_size=256)
    killed = DaskEngine(tmp_path / "dask_kill", scheduler=cluster[0].scheduler_address).run(kspec)
    assert marker.exists()  # a worker really died mid-run
    assert _csv(killed, tmp_path / "killed.csv") == csv and killed.funnel == result.funnel


def test_dask_accepts_a_partition_recomputed_after_its_worker_died(clean, tmp_path, cluster):
    """A worker killed *after* finishing a partition (preemption, OOM kill): Dask computes
    that partition again on another worker; the run must still complete, identically."""
    import signal
    import threading

    from discovery.engines.dask import DaskEngine

    pipe_spec, result, csv = clean
    local_cluster, watcher, marker = cluster
    spec = dataclasses.replace(pipe_spec, filters=(slow_until_a_worker_died,))
    killed: dict = {}

    def kill_a_worker_holding_a_finished_partition(client, stop):
        while not stop.is_set():
            for addr, keys in client.has_what().items():
                if any("run_partition_task" in str(k) for k in keys):
                    pid = client.run(os.getpid, workers=[addr])[addr]
                    os.kill(pid, signal.SIGKILL)
                    killed[addr] = keys
                    marker.with_name("killed-after-finishing").write_text(addr)
                    return
            time.sleep(0.05)

    watcher.wait_for_workers(2, timeout=120)  # the worker the previous test killed is back
    stop = threading.Event()
    thread = threading.Thread(target=kill_a_worker_holding_a_finished_partition, args=(watcher, stop),
                              daemon=True)
    thread.start()
    try:
        out = DaskEngine(tmp_path / "run", scheduler=local_cluster.scheduler_address).run(spec)
    finally:
        stop.set()
        thread.join(5)
    assert killed  # a worker died holding a finished partition's result
    assert _csv(out, tmp_path / "out.csv") == csv and out.funnel == result.funnel


def test_partition_and_batch_size_do_not_change_the_report(pipe, clean, tmp_path, cluster):
    """A partition is a slice of one sequence: any partition size, batch size and engine give
    the same CSV, funnel and count of skipped known compositions."""
    from discovery.engines.dask import DaskEngine

    spec, result, csv = clean
    for part, batch in ((1000, 700), (N, 8192)):
        other = dataclasses.replace(spec, partition_size=part, batch_size=batch)
        res = LocalEngine(pipe).run(other)
        assert _csv(res, tmp_path / f"{part}.csv") == csv and res.funnel == result.funnel
        assert res.generator_skipped == result.generator_skipped > 0
    other = dataclasses.replace(spec, partition_size=900, batch_size=100)
    res = DaskEngine(tmp_path / "dask", scheduler=cluster[0].scheduler_address).run(other)
    assert _csv(res, tmp_path / "dask.csv") == csv and res.funnel == result.funnel
    assert res.generator_skipped == result.generator_skipped


def test_a_small_lm_run_is_the_same_for_any_partition_size(pipe, tmp_path):
    from discovery.generation.registry import load_generator

    lm = load_generator("lm").with_options(beam_width=1500, block=512)
    small = Pipeline(lm, pipe.known, pipe.models, seed=0, hulls=pipe.hulls)
    runs = [LocalEngine(small).run(small.spec(3000, TARGET, partition_size=part, batch_size=batch))
            for part, batch in ((3000, 8192), (700, 300))]
    assert runs[0].funnel == runs[1].funnel and runs[0].funnel["meets_target"] > 0
    assert runs[0].funnel["unique"] == 3000  # head and shard blocks: no repeats, none known
    assert runs[0].funnel["novel"] == runs[0].funnel["en_balanced"]
    assert _csv(runs[0], tmp_path / "a.csv") == _csv(runs[1], tmp_path / "b.csv")


def test_a_failure_in_the_rank_thread_is_the_runs_error_and_leaves_no_thread(pipe, monkeypatch):
    """The rows meeting the target are completed in a thread a batch behind; an error there
    surfaces in the run (not lost, not a hang), and the thread is gone when the run ends."""
    import threading

    real, calls = pipe._complete_hits, []

    def failing(hits, counts, seconds):
        calls.append(len(hits))
        if len(calls) == 2:
            raise RuntimeError("rank failed on batch 2")
        return real(hits, counts, seconds)

    monkeypatch.setattr(pipe, "_complete_hits", failing)
    spec = pipe.spec(N, TARGET, partition_size=PART, batch_size=256)
    with pytest.raises(RuntimeError, match="rank failed on batch 2"):
        LocalEngine(pipe).run(spec)
    assert len(calls) >= 2
    # neither the rank thread nor a generator started ahead for the next partition is left
    ours = ("discovery-rank", "discovery-prefetch")
    assert not [t for t in threading.enumerate() if t.name.startswith(ours)]
