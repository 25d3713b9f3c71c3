"""Run partitions on a Dask cluster: an existing scheduler or a LocalCluster.

Each task runs one partition on a worker (which loads the shipped models once per process)
and writes its files into the run directory, which must be visible to the workers (a shared
filesystem on a real cluster). The driver records checksums in the manifest as partitions
complete and merges them when all are done. Dask reschedules the tasks of a worker that
dies, including one that had already finished a partition: partition files are written
once, so the rerun keeps the files and checksums first recorded and nothing is lost or
counted twice.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

from discovery.engines.store import RunStore, write_partition
from discovery.errors import ConfigError, OutputError
from discovery.partitions import RunResult, RunSpec, merge_partitions
from discovery.pipeline import Pipeline  # a worker builds its own pipeline: this engine is a driver, above it
from discovery.targets import MODEL_PROPERTIES

_WORKER_PIPELINES: dict[tuple[int, str, str | None], Pipeline] = {}


def quiet_worker() -> None:
    """In a worker of a quiet run (``DISCOVERY_QUIET`` set by the driver): keep TensorFlow's
    start-up lines off the console, as the driver does without ``--verbose``."""
    if os.environ.get("DISCOVERY_QUIET"):
        from discovery.runtime import quiet_tensorflow

        quiet_tensorflow()


def _worker_pipeline(seed: int, generator: str, generator_dir: str | None) -> Pipeline:
    key = (seed, generator, generator_dir)
    if key not in _WORKER_PIPELINES:
        from discovery.runtime import set_threads

        quiet_worker()
        try:
            set_threads(int(os.environ.get("DISCOVERY_WORKER_THREADS", "0")))
        except RuntimeError:  # TensorFlow already initialised in this process
            pass
        _WORKER_PIPELINES[key] = Pipeline.default(seed=seed, generator=generator, generator_dir=generator_dir)
    return _WORKER_PIPELINES[key]


def run_partition_task(spec: RunSpec, index: int, run_dir: str) -> tuple[int, dict]:
    """The unit of work a worker runs: one partition, written to the run directory."""
    pipe = _worker_pipeline(spec.seed, spec.generator, spec.generator_dir)
    version = pipe.sampler.card.get("version", "unknown")
    if version != spec.generator_version:
        raise ConfigError(f"worker has generator {spec.generator!r} version {version!r}, the run needs "
                          f"{spec.generator_version!r}; install the same discovery version on every worker")
    out = pipe.run_partition(spec, index)
    return index, write_partition(Path(run_dir), out, spec.settings())


def check_options(scheduler: str | None, workers: int | None) -> None:
    """One-line ConfigError for options ``--engine dask`` cannot run with, checked before any
    model loads: neither a scheduler nor workers, fewer than one worker, dask not installed."""
    import importlib.util

    if scheduler is None and workers is None:
        raise ConfigError("--engine dask needs --scheduler ADDRESS or --workers N")
    if workers is not None and workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {workers}")
    if scheduler is not None and workers is not None:
        raise ConfigError("--scheduler and --workers exclude each other: --workers starts a local "
                          "cluster, --scheduler uses a running one")
    if importlib.util.find_spec("distributed") is None:
        raise ConfigError("--engine dask needs dask[distributed]: pip install 'discovery[distributed]'")


class DaskEngine:
    """Partitions as Dask tasks; ``scheduler`` is an address, else a LocalCluster of ``workers``."""

    def __init__(self, run_dir: Path, scheduler: str | None = None, workers: int | None = None,
                 resume: bool = False, progress: bool = False, threads_per_worker: int = 1):
        check_options(scheduler, workers)
        self.run_dir, self.scheduler, self.workers = Path(run_dir), scheduler, workers
        self.resume, self.progress, self.threads = resume, progress, threads_per_worker

    def _client(self):
        try:
            from dask.distributed import Client, LocalCluster
        except ImportError as exc:
            raise ConfigError("--engine dask needs dask[distributed]: pip install 'discovery[distributed]'") \
                from exc
        if self.scheduler:
            return Client(self.scheduler), None
        env = {"DISCOVERY_WORKER_THREADS": str(self.threads)}
        if _quiet():  # Dask's INFO lines and each worker's TensorFlow start-up lines stay off the console
            env |= {"DISCOVERY_QUIET": "1", "DASK_LOGGING__DISTRIBUTED": "error", "TF_CPP_MIN_LOG_LEVEL": "2"}
        cluster = LocalCluster(n_workers=self.workers, threads_per_worker=1, processes=True,
                               dashboard_address=None, env=env,
                               silence_logs=logging.ERROR if _quiet() else logging.WARNING)
        return Client(cluster), cluster

    def run(self, spec: RunSpec) -> RunResult:
        store = RunStore(self.run_dir, spec, self.resume)
        done = store.completed()
        pending = [i for i in range(spec.n_partitions) if i not in done]
        if pending:
            with _logger_level("distributed", logging.ERROR) if _quiet() else contextlib.nullcontext():
                self._run_pending(spec, store, pending)
        outputs = store.completed()
        missing = [i for i in range(spec.n_partitions) if i not in outputs]
        if missing:
            raise ConfigError(f"partitions {missing[:5]} did not complete; "
                              f"rerun with --resume {self.run_dir}")
        return merge_partitions(list(outputs.values()), spec, MODEL_PROPERTIES)  # the workers' default models

    def _run_pending(self, spec: RunSpec, store: RunStore, pending: list[int]) -> None:
        from dask.distributed import as_completed

        client, cluster = self._client()
        try:
            gpu = any("GPU" in w.get("resources", {})
                      for w in client.scheduler_info()["workers"].values())
            futures = [client.submit(run_partition_task, spec, i, str(self.run_dir.resolve()),
                                     pure=False, resources={"GPU": 1} if gpu else None)
                       for i in pending]
            bar = None
            if self.progress:
                from tqdm.auto import tqdm

                bar = tqdm(total=len(pending), unit="partition", desc="discover run (dask)")
            for fut in as_completed(futures):
                try:
                    store.record(*fut.result())
                except OSError as exc:  # a partition or the manifest could not be written
                    raise OutputError(f"cannot write a partition in {self.run_dir} "
                                      f"({exc.strerror or exc}); the partitions written so far "
                                      f"are kept: make room, then --resume {self.run_dir}") from None
                if bar is not None:
                    bar.update(1)
            if bar is not None:
                bar.close()
        finally:
            client.close()
            if cluster is not None:
                cluster.close()


def _quiet() -> bool:
    """No ``--verbose``: the root logger shows warnings and worse only."""
    return logging.getLogger().getEffectiveLevel() > logging.INFO


@contextlib.contextmanager
def _logger_level(name: str, level: int):
    logger = logging.getLogger(name)
    old = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(old)
