"""End-to-end benchmark of `discover run` on the shipped models.

    python pipelines/bench/bench_run.py --n 1000000               # seconds per stage, samples/s, peak RSS
    python pipelines/bench/bench_run.py --compare 100000,1000000  # each n in a fresh process (RSS vs n)
    python pipelines/bench/bench_run.py --n 1000000 --no-e-hull   # the same run without the hull stage
    python pipelines/bench/bench_run.py --n 1000000 --side-by-side OLD_TREE,NEW_TREE [--label A --label B]
    python pipelines/bench/bench_run.py --n 1000000 --side-by-side OLD_TREE,NEW_TREE --cli   # `discover run`

``--side-by-side`` runs the same benchmark once per source tree (a ``git worktree`` of each
commit), one after the other in fresh processes under ``/usr/bin/time -v`` with the tree first
on PYTHONPATH (this venv, the tree's own shipped models): wall seconds, CPU seconds and peak
RSS of the whole process, and the funnel of each, in one record per tree plus a comparison.

Writes pipelines/reports/bench_run.json (appends one record per run).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPORTS = Path(__file__).resolve().parents[1] / "reports"


def one(n: int, target: str, batch_size: int, e_hull: bool = True, partition_size: int = 250_000) -> dict:
    from discovery.pipeline import Pipeline

    t0 = time.perf_counter()
    pipe = Pipeline.default(seed=0)
    if not e_hull:
        pipe.hulls = None  # candidates get empty e_hull columns
    load = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = pipe.run(n, target, batch_size=batch_size, partition_size=partition_size)
    wall = time.perf_counter() - t0
    gen = res.seconds["generate"]
    return {"n": n, "target": target, "batch_size": batch_size, "partition_size": partition_size,
            "e_hull": e_hull,
            "load_seconds": round(load, 2),
            "wall_seconds": round(wall, 2), "seconds": {k: round(v, 2) for k, v in res.seconds.items()},
            "samples_per_second": round(n / wall),
            # Wall time beyond the generator's own, over the generator's: what the other
            # stages add (they overlap generation, running while it works on the next chunk).
            "other_stages_over_generator": round((wall - gen) / gen, 3),
            # Their CPU seconds over the generator's, as if nothing overlapped.
            "filter_rank_seconds_over_generator": round(
                sum(v for k, v in res.seconds.items() if k != "generate") / gen, 3),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            # the largest child's (the LM's beam head, computed by a child process when not cached)
            "child_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024),
            # CPU seconds of the whole process (load included): comparable on a shared machine
            "cpu_seconds": round(sum(resource.getrusage(resource.RUSAGE_SELF)[:2])),
            "funnel": res.funnel, "candidates": len(res.candidates),
            "generator_skipped_known": getattr(res, "generator_skipped", None),
            "generator": pipe.sampler.card.get("version")}


def _git_head(tree: Path) -> str:
    out = subprocess.run(["git", "-C", str(tree), "log", "-1", "--format=%h"], capture_output=True, text=True)
    return out.stdout.strip() or "unknown"


def _watch_tree_rss(popen: subprocess.Popen) -> float:
    """Wait for ``popen``; the largest sum of its process tree's resident sets (MB), sampled."""
    page = os.sysconf("SC_PAGE_SIZE")

    def rss(pid: int) -> tuple[float, list[int]]:
        try:
            with open(f"/proc/{pid}/statm") as f:
                mb = int(f.read().split()[1]) * page / 2**20
            kids = []
            for t in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{t}/children") as f:
                    kids += [int(x) for x in f.read().split()]
            return mb, kids
        except OSError:
            return 0.0, []

    peak = 0.0
    while popen.poll() is None:
        total, stack = 0.0, [popen.pid]
        while stack:
            mb, kids = rss(stack.pop())
            total, stack = total + mb, stack + kids
        peak = max(peak, total)
        time.sleep(0.2)
    return peak


def side_by_side(trees: list[Path], labels: list[str], args) -> list[dict]:
    """One run per tree in a fresh process under /usr/bin/time -v (one after the other)."""
    records = []
    for tree, label in zip(trees, labels, strict=True):
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "record.json"
            env = {**os.environ, "PYTHONPATH": str(tree), "DISCOVERY_DATA": os.environ.get(
                "DISCOVERY_DATA", str(Path(__file__).resolve().parents[3] / "shared" / "data"))}
            if args.cli:  # what a user runs: the CLI, writing its CSV, summary and PNG
                cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "discovery.cli", "run", "--n",
                       str(args.n), "--target", args.target, "--batch-size", str(args.batch_size),
                       "--partition-size", str(args.partition_size), "--seed", "0",
                       "--out", str(Path(tmp) / "run.csv")]
            else:
                cmd = ["/usr/bin/time", "-v", sys.executable, str(Path(__file__).resolve()), "--n",
                       str(args.n), "--target", args.target, "--batch-size", str(args.batch_size),
                       "--partition-size", str(args.partition_size), "--record", str(out),
                       *(["--no-e-hull"] if args.no_e_hull else [])]
            if args.clear_head_cache:  # a first run on this machine: the LM's head computed again
                from discovery.data import cache_dir

                shutil.rmtree(cache_dir() / "lm_heads", ignore_errors=True)
            t0 = time.perf_counter()
            with open(Path(tmp) / "err", "w+") as err:
                popen = subprocess.Popen(cmd, cwd=tree, env=env, stdout=subprocess.DEVNULL, stderr=err,
                                         text=True)
                tree_peak = _watch_tree_rss(popen)
                err.seek(0)
                proc = subprocess.CompletedProcess(cmd, popen.returncode, "", err.read())
            wall = time.perf_counter() - t0
            if proc.returncode != 0:
                raise SystemExit(f"{label} ({tree}) failed:\n{proc.stderr[-3000:]}")
            if args.cli:
                from discovery.data import file_sha256

                summary = json.loads((Path(tmp) / "run.summary.json").read_text())
                rec = {"n": args.n, "target": args.target, "batch_size": args.batch_size,
                       "partition_size": args.partition_size, "command": "discover run",
                       "seconds": summary["seconds"], "funnel": summary["funnel"],
                       "candidates": summary["candidates"],
                       "csv_sha256": file_sha256(Path(tmp) / "run.csv")}
            else:
                rec = json.loads(out.read_text())
        timing = dict(re.findall(r"^\s*([^:\n]+?):\s+(\S+)\s*$", proc.stderr, flags=re.M))
        rec.update({"code": f"{label} ({_git_head(tree)}), measured side by side", "tree": str(tree),
                    "process_wall_seconds": round(wall, 1),
                    "process_cpu_seconds": round(float(timing["User time (seconds)"])
                                                 + float(timing["System time (seconds)"]), 1),
                    "process_peak_rss_mb": round(int(timing["Maximum resident set size (kbytes)"]) / 1024),
                    # all processes of the run together (the run and any child), sampled every 0.2 s
                    "process_tree_peak_rss_mb": round(tree_peak),
                    "head_cache_cleared": bool(args.clear_head_cache)})
        records.append(rec)
        print(json.dumps({k: rec[k] for k in ("code", "process_wall_seconds", "process_cpu_seconds",
                                             "process_peak_rss_mb", "process_tree_peak_rss_mb",
                                             "candidates")}), flush=True)
    return records


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--compare", default=None, help="comma-separated n values, each in a fresh process")
    ap.add_argument("--target", default="bandgap>1.5")
    ap.add_argument("--batch-size", type=int, default=8192)
    ap.add_argument("--partition-size", type=int, default=250_000)
    ap.add_argument("--no-e-hull", action="store_true", help="skip the convex-hull stage (for comparison)")
    ap.add_argument("--side-by-side", default=None, help="OLD_TREE,NEW_TREE: one run in each")
    ap.add_argument("--label", action="append", default=None,
                    help="a label per --side-by-side tree, in order (repeat; default: before, after)")
    ap.add_argument("--clear-head-cache", action="store_true",
                    help="--side-by-side: delete the cached LM beam heads before each tree's run "
                         "(as on a machine's first run)")
    ap.add_argument("--cli", action="store_true",
                    help="--side-by-side: run `discover run ... --out` in each tree (CSV, summary and PNG "
                         "written, as a user runs it) instead of the pipeline alone")
    ap.add_argument("--record", type=Path, default=None, help=argparse.SUPPRESS)  # internal
    args = ap.parse_args()
    if args.cli and not args.side_by_side:
        raise SystemExit("--cli goes with --side-by-side (each tree's `discover run` in a fresh process)")
    if args.cli and args.no_e_hull:
        raise SystemExit("--cli runs the CLI as a user would: it has no --no-e-hull")
    if args.side_by_side:
        trees = [Path(t).resolve() for t in args.side_by_side.split(",")]
        default = (["before", "after"] + [f"tree {i + 1}" for i in range(2, len(trees))]
                   if len(trees) > 1 else ["tree"])  # one tree is not a "before"
        labels = args.label or default[:len(trees)]
        if len(labels) != len(trees):
            raise SystemExit(f"--label: {len(labels)} labels for {len(trees)} trees")
        records = side_by_side(trees, labels, args)  # checked before the first run
        REPORTS.mkdir(parents=True, exist_ok=True)
        with open(REPORTS / "bench_run.json", "a") as f:
            for rec in records:
                f.write(json.dumps(rec) + "\n")
        return
    if args.compare:
        for n in args.compare.split(","):
            subprocess.run([sys.executable, __file__, "--n", n, "--target", args.target,
                            "--batch-size", str(args.batch_size),
                            *(["--no-e-hull"] if args.no_e_hull else [])], check=True)
        return
    rec = one(args.n, args.target, args.batch_size, not args.no_e_hull, args.partition_size)
    if args.record:
        args.record.write_text(json.dumps(rec))
        return
    print(json.dumps(rec, indent=2))
    REPORTS.mkdir(parents=True, exist_ok=True)
    with open(REPORTS / "bench_run.json", "a") as f:
        f.write(json.dumps(rec) + "\n")


if __name__ == "__main__":
    main()
