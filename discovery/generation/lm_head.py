"""The language model's beam head, computed once per machine in a child process and kept on disk.

The head (the beam search's best compositions, the compositions it skipped, and the shards of
the draws after it) is the same for every run of a saved model with the same decoding options
and skip set: the shipped beam is deterministic (``beam_temperature`` 0), so it does not
depend on the seed either. Computing it costs about a minute and, inside a process that has
also loaded the property models, ~800 MB that TensorFlow's oneDNN kernels keep after the
search (a 200,000-sample run peaked at 2,402 MB; ``research`` trace in the issue-25 report).

So a saved model's head is computed by ``python -m discovery.generation.lm_head_worker`` in a child
process (oneDNN off there: the search's ever-changing shapes are what bloats it, and its speed
is the same without), written atomically to ``<cache>/lm_heads/<digest>.npz``, and read back;
the digest covers the model's version and weights, the decoding options, the skip set and the
decoding code itself, so a change to any of them computes a new head. Workers of one machine
(Dask) share the file; a lock makes one of them compute it while the others wait. A model that
was never saved (tests, a fresh fit) computes its head in process, as before, and so does a
narrow beam (``IN_PROCESS_MAX_WIDTH``): a child's start (~6 s) would cost more than it saves.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from discovery.atomic import atomic_write
from discovery.errors import ConfigError

FORMAT = 1  # bump when the file's layout changes
IN_PROCESS_MAX_WIDTH = 20_000  # narrower beams are computed in process, not cached
_CODE = ("autoregressive.py", "lm_beam.py", "lm_shards.py", "lm_sampler.py", "lm_tokens.py", "lm_head.py",
         "lm_head_worker.py")


def _code_digest() -> str:
    here = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for name in _CODE:
        h.update((here / name).read_bytes())
    return h.hexdigest()


def head_path(source: Path, hparams: dict, key: tuple, cache: Path | None = None) -> Path:
    """Where the head of the model saved in ``source`` with ``hparams`` and head ``key`` lives."""
    from discovery.data import cache_dir, file_sha256

    weights = sorted(p for p in Path(source).iterdir() if p.suffix in (".keras", ".json"))
    ident = {"format": FORMAT, "code": _code_digest(), "key": [str(k) for k in key],
             "hparams": {k: hparams[k] for k in sorted(hparams)},
             "files": {p.name: file_sha256(p) for p in weights}}
    digest = hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()[:24]
    return (cache or cache_dir()) / "lm_heads" / f"{digest}.npz"


def save_head(path: Path, head: np.ndarray, head_keys: np.ndarray, skipped: int, shards) -> None:
    """Write a head (``CompositionLM._compute_head``'s tuple) whole or not at all."""
    cells = [np.asarray(c, dtype=np.int64) for c in shards.cells]
    arrays = {"head": head, "head_keys": head_keys, "skipped": np.array(skipped, dtype=np.int64),
              "prefixes": shards.prefixes, "allow": shards.allow, "log_mass": shards.log_mass,
              "cells": np.concatenate(cells) if cells else np.zeros(0, np.int64),
              "cell_offsets": np.cumsum([0, *(len(c) for c in cells)]).astype(np.int64),
              "temperature": np.array(shards.temperature, dtype=np.float64)}

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)

    atomic_write(path, write)


def load_head(path: Path) -> tuple | None:
    """The head saved at ``path``, or None when there is none (or it cannot be read)."""
    from discovery.generation.lm_shards import Shards

    if not path.is_file():
        return None
    try:
        with np.load(path) as d:
            off, flat = d["cell_offsets"], d["cells"]  # an NpzFile reads an array on every access
            cells = [flat[off[i]:off[i + 1]] for i in range(len(off) - 1)]
            shards = Shards(d["prefixes"], d["allow"], d["log_mass"], cells, float(d["temperature"]))
            return d["head"], d["head_keys"], int(d["skipped"]), shards
    except (OSError, KeyError, ValueError):
        return None  # a damaged file is computed again


def cached_head(source: Path, hparams: dict, key: tuple, seed, skip: np.ndarray | None) -> tuple:
    """The head of the model saved in ``source``: from the cache, else computed by a child
    process under a lock (other processes of the machine wait for it and read its file)."""
    path = head_path(source, hparams, key)
    if (found := load_head(path)) is not None:
        return found
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, or the process dies
        if (found := load_head(path)) is not None:
            return found  # another process computed it while this one waited
        with tempfile.TemporaryDirectory(prefix="lm_head_") as tmp:
            skip_file = None if skip is None else Path(tmp) / "skip.npy"
            if skip_file is not None:
                np.save(skip_file, skip)
            request = {"source": str(source), "hparams": hparams, "seed": seed,
                       "skip": None if skip_file is None else str(skip_file), "out": str(path)}
            root = str(Path(__file__).resolve().parents[2])  # this package, installed or not
            pythonpath = os.pathsep.join(d for d in (root, os.environ.get("PYTHONPATH", "")) if d)
            env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": "0", "TF_CPP_MIN_LOG_LEVEL": "2",
                   "PYTHONPATH": pythonpath}
            cmd = [sys.executable, "-m", "discovery.generation.lm_head_worker", json.dumps(request)]
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if proc.returncode != 0 or (found := load_head(path)) is None:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            raise ConfigError(f"computing the language model's beam head failed: {tail[0]}")
        return found
