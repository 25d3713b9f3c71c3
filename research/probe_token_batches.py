"""What grouping rows by element count does to the attention ensembles' predictions
(``Ensemble.predict``): speed, last-bit batch dependence, memory. The figures behind the comments
in discovery/regressors.py and featurizers.py, on OQMD's crabnet splits (element fractions).

    python research/probe_token_batches.py speed      # shipped formation-energy stack: rows/s, old and new
    python research/probe_token_batches.py batching   # rows whose result changes with their batch
    python research/probe_token_batches.py rss        # peak RSS over 150 small batches, per padding
    python research/probe_token_batches.py parts      # rows/s of each part, and of the benchmark-only
                                                      # width-256 parts under runs/bench_stability/oqmd

"old" is every row with the model's 8 tokens (the path before grouping), run in the same process.
"""

import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import discovery.regressors as R  # noqa: E402
from discovery.runtime import set_threads  # noqa: E402


def fractions(split: str) -> np.ndarray:
    from discovery.benchmarks.stability import oqmd_data
    from discovery.featurizers import OneHot

    return OneHot(amounts="fractions").transform(oqmd_data()[split]["formula"]).astype(np.float32)


def old_path(ens, x):
    """Every row with the built 8 tokens, unpadded: Ensemble.predict before grouping."""
    p = ens._predict_with(None, np.asarray(x, np.float32), 65536)
    return p.mean(0), p.std(0)


def stack(path: str):
    """A fresh copy of the shipped formation-energy stack; ``old``: every part on the old path."""
    from discovery.properties import MODELS_DIR, PropertyModel

    fe = PropertyModel.load(MODELS_DIR / "formation_energy")
    if path == "old":
        for c in fe.components.values():
            c.ensemble.predict = lambda z, e=c.ensemble: old_path(e, z)
    return fe


def speed() -> None:
    x = fractions("val")[:50000]
    for path in ("old", "new"):
        fe = stack(path)
        fe.predict_amounts(x)  # trace every graph first
        for chunk in (50000, 1000):
            t0 = time.perf_counter()
            for i in range(0, len(x), chunk):
                fe.predict_amounts(x[i:i + chunk])
            print(f"{path} path, {chunk}-row batches: {len(x) / (time.perf_counter() - t0):,.0f} rows/s")


def parts() -> None:
    from discovery.properties import PropertyModel

    x = fractions("val")[:50000]
    models = dict(stack("new").components)
    for name in ("attention-w256ff1024", "attention-w256b4ff1024"):
        if (d := Path("runs/bench_stability/oqmd") / name).is_dir():
            models[name] = PropertyModel.load(d)
    for name, m in models.items():
        m.predict_amounts(x)  # trace first
        t0 = time.perf_counter()
        m.predict_amounts(x)
        print(f"{name}: {len(x) / (time.perf_counter() - t0):,.0f} rows/s")


def batching() -> None:
    from discovery.featurizers import batch_invariant_matmul, load_embedding
    from discovery.properties import load_property_model

    rng = np.random.default_rng(0)
    t = load_embedding(None).astype(np.float64)
    a = np.zeros((3000, 85))
    for row in a:
        k = rng.integers(1, 9)
        row[rng.choice(85, k, replace=False)] = rng.integers(1, 13, k)
    f = a / a.sum(1, keepdims=True)
    cuts = np.sort(rng.choice(np.arange(1, len(f)), 40, replace=False))
    for name, mm in (("BLAS matmul", np.matmul), ("batch_invariant_matmul", batch_invariant_matmul)):
        split = np.concatenate([mm(c, t) for c in np.split(f, cuts)])
        changed = (split != mm(f, t)).sum()
        print(f"GAN-embedding features, {name}: {changed} of {split.size} change over 41 batchings")

    x = fractions("val")[:20000]
    x3 = x[np.clip((x > 0).sum(1), 1, 8) == 3]
    ens = load_property_model("formation_energy").components["attention"].ensemble
    cuts = np.sort(np.random.default_rng(0).choice(np.arange(1, len(x3)), 40, replace=False))
    for pad in (1, 8, 64):
        R._PAD_ROWS = pad
        full = ens._predict_with(3, x3, 65536)[0]
        split = np.concatenate([ens._predict_with(3, c, 65536)[0] for c in np.split(x3, cuts)])
        print(f"attention, 3 tokens, batches padded to a multiple of {pad}: "
              f"{(split != full).sum()} of {len(x3)} ternary rows change over 41 batchings")


def rss_child(pad: str) -> None:
    x = fractions("train")
    fe = stack(pad)
    if pad != "old":
        R._PAD_ROWS = int(pad)
    rng, i = np.random.default_rng(0), 0
    for _ in range(150):
        n = int(rng.integers(300, 1500))
        fe.predict_amounts(x[i:i + n])
        i += n
    print(f"padding {pad}: peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB")


def rss() -> None:
    for pad in ("old", "8", "64"):  # each in its own process: peak RSS only grows
        subprocess.run([sys.executable, __file__, "rss-child", pad], check=True)


if __name__ == "__main__":
    set_threads(2)
    cmd = sys.argv[1] if len(sys.argv) > 1 else "speed"
    if cmd == "rss-child":
        rss_child(sys.argv[2])
    else:
        {"speed": speed, "batching": batching, "rss": rss, "parts": parts}[cmd]()
