"""A LocalCluster run is as quiet as a local one: no Dask INFO lines, no TensorFlow start-up
lines from the workers (issue 26 item 8: `--engine dask --workers 2` printed ~60 lines)."""

import logging

import pytest

pytest.importorskip("distributed")


def _worker_imports_tensorflow() -> bool:
    from discovery.engines.dask import quiet_worker

    quiet_worker()  # what a worker does before it loads the models
    import tensorflow as tf

    return float(tf.reduce_sum(tf.ones(3))) == 3.0


def test_local_cluster_keeps_dask_and_tensorflow_lines_off_the_console(tmp_path, capfd, monkeypatch):
    from discovery.engines.dask import DaskEngine

    monkeypatch.setattr(logging.getLogger(), "level", logging.WARNING)  # no --verbose
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)  # a user's shell does not set it
    engine = DaskEngine(tmp_path / "run", workers=1)
    client, cluster = engine._client()
    try:
        assert client.submit(_worker_imports_tensorflow, pure=False).result(timeout=300)
    finally:
        client.close()
        cluster.close()
    err = capfd.readouterr().err
    noise = [line for line in err.splitlines()
             if "INFO" in line or "oneDNN" in line or "absl::InitializeLog" in line or "cpu_feature" in line]
    assert noise == [], noise
