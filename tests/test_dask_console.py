"""A LocalCluster run is as quiet as a local one: no Dask INFO lines, no TensorFlow start-up
lines from the workers (issue 26 item 8: `--engine dask --workers 2` printed ~60 lines)."""

import os
import subprocess
import sys

import pytest

pytest.importorskip("distributed")

# Run in a fresh interpreter, as a user's `discover run` is: inside the test session other tests
# have started TensorFlow, Dask clusters and loggers, which changed what reached the console.
_SCRIPT = """
import logging
logging.getLogger().setLevel(logging.WARNING)  # no --verbose


def imports_tensorflow():
    from discovery.engines.dask import quiet_worker

    quiet_worker()  # what a worker does before it loads the models
    import tensorflow as tf

    return float(tf.reduce_sum(tf.ones(3))) == 3.0


if __name__ == "__main__":
    import sys
    from discovery.engines.dask import DaskEngine

    engine = DaskEngine(sys.argv[1], workers=1)
    client, cluster = engine._client()
    try:
        assert client.submit(imports_tensorflow, pure=False).result(timeout=300)
    finally:
        client.close()
        cluster.close()
    print("ok")
"""


def test_local_cluster_keeps_dask_and_tensorflow_lines_off_the_console(tmp_path):
    script = tmp_path / "quiet_cluster.py"
    script.write_text(_SCRIPT)
    # a user's shell does not set TF_CPP_MIN_LOG_LEVEL
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    p = subprocess.run([sys.executable, str(script), str(tmp_path / "run")], capture_output=True, text=True,
                       timeout=540, env=env, cwd=tmp_path)
    assert p.returncode == 0 and p.stdout.strip() == "ok", (p.returncode, p.stdout, p.stderr[-2000:])
    noise = [line for line in p.stderr.splitlines()
             if "INFO" in line or "oneDNN" in line or "absl::InitializeLog" in line or "cpu_feature" in line]
    assert noise == [], noise
