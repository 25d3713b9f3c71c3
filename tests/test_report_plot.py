"""The report PNG's Pareto labels do not overlap (issue 16 item 18)."""

import numpy as np
import pandas as pd
from matplotlib.text import Text

from discovery.pipeline import RunResult
from discovery.report import plot_run, run_figure
from discovery.targets import parse_target


def _dense_front(n=15):
    """n candidates all on the Pareto front, packed into a narrow strip (labels collide)."""
    rng = np.random.default_rng(0)
    fe = np.linspace(-3.0, -2.95, n)
    gap = np.linspace(3.0, 3.05, n)
    extra_fe, extra_gap = rng.uniform(-3, 0, 40), rng.uniform(1.5, 2.5, 40)
    formulas = [f"Li{i + 1}MgSiO4" for i in range(n)] + [f"Na{i + 1}Cl" for i in range(40)]
    df = pd.DataFrame({"formula": formulas, "n_elements": 4,
                       "bandgap": np.r_[gap, extra_gap], "bandgap_std": 0.05,
                       "formation_energy": np.r_[fe, extra_fe], "formation_energy_std": 0.02,
                       "tc": 1.0, "tc_std": 0.1})
    df["score"] = df["bandgap"]
    df.insert(0, "rank", np.arange(1, len(df) + 1))
    funnel = {"sampled": 1000, "meets_target": len(df)}
    return RunResult(df, funnel, {}, parse_target("bandgap>1.5"), ("bandgap", True))


def _label_boxes(fig):
    ax = fig.axes[1]
    renderer = fig.canvas.get_renderer()
    anns = [c for c in ax.texts if c.get_text().startswith("Li")]
    for a in anns:
        a.update_positions(renderer)
    return [Text.get_window_extent(a, renderer) for a in anns], ax.get_window_extent(renderer)


def test_pareto_labels_do_not_overlap(tmp_path):
    result = _dense_front()
    fig = run_figure(result)
    boxes, ax_box = _label_boxes(fig)
    assert len(boxes) >= 8  # most of the 15 front points are labelled
    for i, a in enumerate(boxes):
        assert ax_box.x0 <= a.x0 and a.x1 <= ax_box.x1 and ax_box.y0 <= a.y0 and a.y1 <= ax_box.y1
        for b in boxes[i + 1:]:
            assert not a.overlaps(b), (a, b)
    plot_run(result, tmp_path / "r.png")
    assert (tmp_path / "r.png").stat().st_size > 10_000


def test_error_bars_are_drawn_for_the_first_rows_by_rank_only(monkeypatch):
    import discovery.report as report

    monkeypatch.setattr(report, "ERRORBAR_ROWS", 20)
    result = _dense_front()  # 55 candidates
    result.candidates["rank"] = np.arange(len(result.candidates))[::-1] + 1  # the last row ranks first
    ax = run_figure(result).axes[1]
    (bars,) = ax.containers
    segments = bars.lines[2][0].get_segments()  # the x error bars: one per candidate drawn
    assert len(segments) == 20
    first = result.candidates.nsmallest(20, "rank")
    assert sorted(s[0][1] for s in segments) == sorted(first["bandgap"])
    markers = [line for line in ax.lines if line.get_label() == "candidates"]
    assert len(markers) == 1 and len(markers[0].get_xdata()) == len(result.candidates)
    assert any(t.get_text() == "±1σ, first 20 by rank" for t in ax.get_legend().get_texts())
