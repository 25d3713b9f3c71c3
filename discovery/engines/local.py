"""Run partitions one after another in this process (the default engine)."""

from __future__ import annotations

from pathlib import Path

from discovery.engines.store import RunStore, write_partition
from discovery.errors import OutputError
from discovery.partitions import PartitionRunner, RunResult, RunSpec, merge_partitions


class LocalEngine:
    """Partitions in order; with ``run_dir`` each completed partition is written at once, so
    an interrupted run (Ctrl-C, SIGTERM, a crash) resumes where it stopped."""

    def __init__(self, pipeline: PartitionRunner, run_dir: Path | None = None, resume: bool = False,
                 progress: bool = False):
        self.pipeline, self.run_dir, self.resume, self.progress = pipeline, run_dir, resume, progress

    def run(self, spec: RunSpec) -> RunResult:
        store = RunStore(self.run_dir, spec, self.resume) if self.run_dir else None
        outputs = store.completed() if store else {}
        bar = None
        if self.progress:
            from tqdm.auto import tqdm

            done = sum(spec.partition_samples(i) for i in outputs)
            bar = tqdm(total=spec.n, initial=done, unit="sample", unit_scale=True, desc="discover run")
        try:
            todo = [i for i in range(spec.n_partitions) if i not in outputs]
            ahead = hasattr(self.pipeline, "stop_prefetch")  # a runner that starts partitions ahead
            for k, i in enumerate(todo):
                step = bar.update if bar else None
                if ahead:  # the next partition's generator starts once this one's is done
                    then = todo[k + 1] if k + 1 < len(todo) else None
                    out = self.pipeline.run_partition(spec, i, progress=step, then=then)
                else:
                    out = self.pipeline.run_partition(spec, i, progress=step)
                if store:
                    try:
                        store.record(i, write_partition(store.dir, out, store.settings))
                    except OSError as exc:
                        raise OutputError(f"cannot write partition {i} in {store.dir} "
                                          f"({exc.strerror or exc}); the partitions written so far are "
                                          f"kept: make room, then --resume {store.dir}") from None
                outputs[i] = out
        finally:
            stop = getattr(self.pipeline, "stop_prefetch", None)
            if stop is not None:  # a partition started ahead, the run stopped before it
                stop()
            if bar is not None:
                bar.close()
        return merge_partitions(list(outputs.values()), spec, self.pipeline.models)
