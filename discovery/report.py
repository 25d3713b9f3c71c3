"""Run reports: the ranked CSV (atomic write), the summary JSON, the PNG and console tables.

Files are replaced atomically and created like ordinary files (the umask decides who can read
them)."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from discovery.atomic import atomic_write
from discovery.targets import PROPERTIES

FLOAT_FORMAT = "%.4f"


_OPERATORS = {">=": "_ge_", "<=": "_le_", "==": "_eq_", ">": "_gt_", "<": "_lt_", "=": "_eq_"}
SLUG_CHARS = 40


def settings_hash(settings: dict) -> str:
    """Eight hex digits of the SHA-256 of the settings (sorted-key JSON)."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:8]


def default_report_path(settings: dict, directory: Path = Path("candidates")) -> Path:
    """``<target>_n<N>_seed<S>_<hash>.csv``: readable, short (the target slug is cut at 40
    characters), and different whenever any setting differs (the hash covers them all), so
    one run never replaces another's report; the same run writes the same file."""
    slug = re.sub("|".join(map(re.escape, _OPERATORS)), lambda m: _OPERATORS[m.group()], settings["target"])
    slug = re.sub(r"[^A-Za-z0-9.-]+", "_", slug).strip("_")[:SLUG_CHARS].rstrip("_.")
    return directory / f"{slug}_n{settings['n']}_seed{settings['seed']}_{settings_hash(settings)}.csv"


def csv_frame(candidates: pd.DataFrame, sort_prop: str) -> pd.DataFrame:
    """Candidates with units in the column names, in report order."""
    cols = {"rank": "rank", "formula": "formula", "n_elements": "n_elements"}
    for p, unit in PROPERTIES.items():
        if p in candidates:
            cols[p] = f"{p} [{unit}]"
            cols[f"{p}_std"] = f"{p}_std [{unit}]"
    cols["score"] = f"score [{PROPERTIES[sort_prop]}]"
    return candidates[list(cols)].rename(columns=cols)


def write_csv(candidates: pd.DataFrame, sort_prop: str, path: Path) -> None:
    frame = csv_frame(candidates, sort_prop)
    atomic_write(path, lambda p: frame.to_csv(p, index=False, float_format=FLOAT_FORMAT,
                                              lineterminator="\n"))


def write_summary(result, path: Path, models: dict, extra: dict | None = None) -> None:
    """Arguments, seed, model versions, funnel and time per stage, as JSON."""
    summary = {
        "settings": result.settings,
        "funnel": result.funnel,
        "seconds": {k: round(v, 3) for k, v in result.seconds.items()},
        "candidates": len(result.candidates),
        "models": models,
        **(extra or {}),
    }
    atomic_write(path, lambda p: p.write_text(json.dumps(summary, indent=2) + "\n"))


def plot_run(result, path: Path) -> None:
    """Funnel bars, and the sort property against predicted formation energy with error bars
    and the Pareto front (best target, most stable) marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 5))
    names, values = list(result.funnel), list(result.funnel.values())
    ax1.barh(names[::-1], values[::-1], color="tab:blue")
    ax1.set_xscale("symlog")
    ax1.set_xlabel("compositions")
    ax1.set_title("funnel")
    for i, v in enumerate(values[::-1]):
        ax1.text(v, i, f" {v:,}", va="center", fontsize=8)
    prop, descending = result.sort
    df = result.candidates
    if len(df) and "formation_energy" in df and prop != "formation_energy":
        x, y = df["formation_energy"].to_numpy(), df[prop].to_numpy()
        ax2.errorbar(x, y, xerr=df["formation_energy_std"], yerr=df[f"{prop}_std"], fmt="o", ms=3,
                     alpha=0.4, elinewidth=0.5, color="tab:gray", label="candidates")
        front = pareto_front(x, y if descending else -y)
        ax2.plot(x[front], y[front], "o-", color="tab:red", label="Pareto front")
        for i in np.flatnonzero(front)[:15]:
            ax2.annotate(df["formula"].iloc[i], (x[i], y[i]), fontsize=7)
        ax2.legend()
    ax2.set_xlabel(f"predicted formation energy [{PROPERTIES['formation_energy']}]")
    ax2.set_ylabel(f"predicted {prop} [{PROPERTIES[prop]}]")
    ax2.set_title(f"{len(df):,} candidates meeting {result.target.describe()}")
    fig.tight_layout()
    atomic_write(path, lambda p: fig.savefig(p, dpi=110, format="png"))
    plt.close(fig)


def pareto_front(energy: np.ndarray, goodness: np.ndarray) -> np.ndarray:
    """Mask of points no other point beats on both low energy and high goodness."""
    order = np.lexsort((-goodness, energy))
    best = -np.inf
    front = np.zeros(len(energy), dtype=bool)
    for i in order:
        if goodness[i] > best:
            front[i] = True
            best = goodness[i]
    return front


def console_tables(result, top: int = 20):
    """Rich tables: the funnel with stage times, and the top candidates."""
    from rich.table import Table

    funnel = Table(title="funnel")
    funnel.add_column("stage")
    funnel.add_column("kept", justify="right")
    funnel.add_column("% of previous", justify="right")
    prev = None
    for k, v in result.funnel.items():
        funnel.add_row(k, f"{v:,}", "" if not prev else f"{100 * v / prev:.1f}")
        prev = v
    times = ", ".join(f"{k} {v:.1f} s" for k, v in result.seconds.items())
    funnel.caption = f"time: {times}"
    cands = Table(title=f"top {min(top, len(result.candidates))} of {len(result.candidates):,} candidates")
    head = result.candidates.head(top)
    props = [p for p in PROPERTIES if p in head]
    for c in ["rank", "formula", "elements", *[f"{p} [{PROPERTIES[p]}]" for p in props], "score"]:
        cands.add_column(c, justify="left" if c == "formula" else "right")
    for _, row in head.iterrows():
        cands.add_row(str(row["rank"]), row["formula"], str(row["n_elements"]),
                      *[f"{row[p]:.2f} ± {row[p + '_std']:.2f}" for p in props], f"{row['score']:.3f}")
    return funnel, cands
