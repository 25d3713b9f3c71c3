"""Process-wide runtime settings."""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import logging
import os
import re
import sys
import tempfile


def set_threads(threads: int) -> None:
    """Limit TensorFlow to ``threads`` intra-op threads (0 leaves its default: all cores).

    Must run before TensorFlow executes its first op in this process.
    """
    if threads:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)


# TensorFlow's C++ start-up lines (oneDNN notice, CPU-feature note, absl's pre-init warning)
# are written to file descriptor 2 while ``import tensorflow`` runs; TF_CPP_MIN_LOG_LEVEL no
# longer hides them (TF 2.21), so the quiet console filters them from the captured stream.
_STARTUP_NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\)"
    r"|[IW]\d{4} [\d:.]+\s+\d+ [\w.]+:\d+\]"
    r"|To enable the following instructions:)")


def filter_startup_noise(text: str) -> str:
    """``text`` without TensorFlow's informational start-up lines (errors are kept)."""
    return "".join(line for line in text.splitlines(keepends=True) if not _STARTUP_NOISE.match(line))


@contextlib.contextmanager
def _filtered_fd2():
    """Capture file descriptor 2 (C++ writes there too), then pass on what is not noise."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            rest = filter_startup_noise(tmp.read().decode(errors="replace"))
            if rest:
                sys.stderr.write(rest)
                sys.stderr.flush()


class _QuietImport(importlib.abc.MetaPathFinder):
    """Runs the first ``import tensorflow`` with its start-up lines filtered out."""

    def find_spec(self, name, path, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
            run = spec.loader.exec_module

            def exec_module(module):
                with _filtered_fd2():
                    run(module)

            spec.loader.exec_module = exec_module
        return spec


def quiet_tensorflow() -> None:
    """Keep TensorFlow's start-up lines and Python-side warnings off the console.

    Call before TensorFlow is imported (the CLI does, unless ``--verbose``); a no-op for the
    import-time lines when it already is. TensorFlow's own errors still show.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    if "tensorflow" not in sys.modules and not any(isinstance(f, _QuietImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietImport())
