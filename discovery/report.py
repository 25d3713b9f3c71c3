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
ERRORBAR_ROWS = 5_000  # candidates drawn with error bars in the report figure


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
            if f"{p}_in_domain" in candidates:  # inside the model's applicability domain
                cols[f"{p}_in_domain"] = f"{p}_in_domain"
    # competing phases at e_hull; why e_hull is empty or how well its hull is known; why a row
    # is out of a model's domain or a property not reported
    for c in ("decomposition", "e_hull_note", "domain_note"):
        if c in candidates:
            cols[c] = c
    cols["score"] = f"score [{PROPERTIES[sort_prop]}]"
    frame = candidates[list(cols)]  # the one copy: the new names are set in place
    frame.columns = list(cols.values())
    return frame


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
    """Funnel bars, and the sort property against the stability measure with error bars and
    the Pareto front (best target, most stable) marked: ``e_hull`` (distance to the hull of
    known phases) where it was computed, else the predicted formation energy."""
    import matplotlib.pyplot as plt

    fig = run_figure(result)
    atomic_write(path, lambda p: fig.savefig(p, dpi=110, format="png"))
    plt.close(fig)


def run_figure(result):
    """The report figure (matplotlib, Agg): funnel, and target vs e_hull (or formation energy)."""
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
    has_hull = "e_hull" in df and bool(df["e_hull"].notna().any())
    stab = "e_hull" if has_hull and prop != "e_hull" else "formation_energy"
    ax2.set_xlabel("predicted distance to the hull of known phases, e_hull [eV/atom]" if stab == "e_hull"
                   else f"predicted formation energy [{PROPERTIES['formation_energy']}]")
    ax2.set_ylabel(f"predicted {prop} [{PROPERTIES[prop]}]")
    ax2.set_title(f"{len(df):,} candidates meeting {result.target.describe()}")
    fig.tight_layout()  # before labels are placed: they are placed in final display positions
    if len(df) and stab in df and prop != stab:
        df = df[df[stab].notna()]
        x, y = df[stab].to_numpy(), df[prop].to_numpy()
        # every candidate as a marker; ±1σ bars on the first ERRORBAR_ROWS by rank (drawing them
        # for a 1e6 run's 319,370 candidates took 6.1 s of its wall time and showed a grey blob)
        ranked = "rank" in df
        bars = df.nsmallest(ERRORBAR_ROWS, "rank") if ranked else df.head(ERRORBAR_ROWS)
        ax2.errorbar(bars[stab], bars[prop], xerr=bars[f"{stab}_std"], yerr=bars[f"{prop}_std"], fmt="none",
                     alpha=0.4, elinewidth=0.5, color="tab:gray",
                     label="±1σ" if len(bars) == len(df) else
                     f"±1σ, first {len(bars):,}" + (" by rank" if ranked else ""))
        ax2.plot(x, y, "o", ms=3, alpha=0.4, color="tab:gray", label="candidates")
        front = np.flatnonzero(pareto_front(x, y if descending else -y))
        front = front[np.argsort(x[front], kind="stable")]
        ax2.plot(x[front], y[front], "o-", color="tab:red", label="Pareto front")
        ax2.legend(loc="lower left", fontsize=8)
        placed = place_labels(ax2, x[front], y[front], df["formula"].to_numpy()[front].tolist())
        if placed < len(front):
            ax2.text(0.99, 0.01, f"{len(front) - placed} front labels omitted (no free space)",
                     transform=ax2.transAxes, ha="right", va="bottom", fontsize=7, color="tab:red")
    return fig


# Offsets (points) tried for a label, nearest first; labels further out get a leader line.
_LABEL_OFFSETS = [(dx * r, dy * r) for r in (6, 16, 28, 42, 58)
                  for dx, dy in ((1, 1), (1, -1), (-1, 1), (-1, -1), (1, 0), (-1, 0), (0, 1), (0, -1))]


def place_labels(ax, x: np.ndarray, y: np.ndarray, labels: list[str], max_labels: int = 20,
                 fontsize: int = 7) -> int:
    """Annotate points so that no two labels, and no label and a labelled point, overlap.

    Each label takes the nearest free offset around its point (leader lines beyond the
    first ring); a label with no free spot inside the axes is left out. Returns how many
    were placed. Call after the layout is final (positions are display coordinates).
    """
    from matplotlib.text import Text

    fig = ax.figure
    ax.autoscale_view()  # settle the data limits: positions below are final display pixels
    renderer = fig.canvas.get_renderer()
    ax_box = ax.get_window_extent(renderer)
    pts = ax.transData.transform(np.column_stack([x, y])) if len(x) else np.zeros((0, 2))
    marker = 3.0 * fig.dpi / 72  # half a marker, in pixels
    obstacles = [(px - marker, py - marker, px + marker, py + marker) for px, py in pts]
    placed = 0
    for i, label in enumerate(labels[:max_labels]):
        for dx, dy in _LABEL_OFFSETS:
            far = abs(dx) > 6 or abs(dy) > 6
            ann = ax.annotate(label, (x[i], y[i]), xytext=(dx, dy), textcoords="offset points",
                              fontsize=fontsize, ha="left" if dx >= 0 else "right",
                              va="bottom" if dy >= 0 else "top",
                              arrowprops={"arrowstyle": "-", "lw": 0.4, "color": "0.4"} if far else None)
            ann.update_positions(renderer)
            bb = Text.get_window_extent(ann, renderer)  # the text alone, not its leader line
            box = (bb.x0 - 3, bb.y0 - 1, bb.x1 + 3, bb.y1 + 1)  # a gap between neighbouring labels
            inside = (bb.x0 >= ax_box.x0 and bb.x1 <= ax_box.x1 and bb.y0 >= ax_box.y0
                      and bb.y1 <= ax_box.y1)
            if inside and not any(_overlap(box, o) for o in obstacles):
                obstacles.append(box)
                placed += 1
                break
            ann.remove()
    return placed


def _overlap(a: tuple, b: tuple) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


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
    cands.caption = "* outside the model's applicability domain (domain_note in the CSV); - not reported"
    for _, row in head.iterrows():
        cands.add_row(str(row["rank"]), row["formula"], str(row["n_elements"]),
                      *[_cell(row, p) for p in props], f"{row['score']:.3f}")
    return funnel, cands


def _cell(row, prop: str) -> str:
    """'2.10 ± 0.40' (a trailing * when out of the model's domain), '-' where there is no value."""
    if pd.isna(row[prop]):
        return "-"
    out = "" if bool(row.get(f"{prop}_in_domain", True)) else "*"
    return f"{row[prop]:.2f} ± {row[prop + '_std']:.2f}{out}"
