"""A training run's per-evaluation log (``log.csv``), shared by the TensorFlow and JAX trainers."""

from __future__ import annotations

import csv
from pathlib import Path


def truncate_log(path: Path, step: int) -> None:
    """Drop log rows past ``step`` (written after the checkpoint a resume starts from)."""
    if not path.is_file():
        return
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    keep = [r for r in rows if int(r["step"]) <= step]
    if len(keep) != len(rows):
        with open(path, "w", newline="") as f:
            if keep:
                w = csv.DictWriter(f, fieldnames=list(keep[0].keys()))
                w.writeheader()
                w.writerows(keep)


def append_log(path: Path, row: dict) -> None:
    """Append one evaluation row, writing the header when the file is new."""
    new = not path.is_file()
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(row.keys()))
        if new:
            w.writeheader()
        w.writerow(row)
