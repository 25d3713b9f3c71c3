import pandas as pd

from discovery.encoding import parse_formulas
from discovery.evaluation import evaluate, supercon_family


def test_supercon_families():
    a = parse_formulas(["Ba0.6K0.4Fe2As2", "YBa2Cu3O7", "MgB2", "FeSe", "CuO"]).amounts
    assert supercon_family(a).tolist() == ["iron-based", "cuprate", "other", "iron-based", "cuprate"]


def test_evaluate_writes_table_with_baseline(tmp_path, training_data):
    summary = evaluate(["tc"], seeds=2, featurizer_names=("magpie",), max_epochs=2, out=tmp_path,
                       tsne=False, command="test")
    assert summary["model"].tolist() == ["MLP + magpie", "trees + magpie"]
    assert (summary["seeds"] == 2).all() and (summary["r2_mean"] > 0.3).all()
    runs = pd.read_csv(tmp_path / "table4_runs.csv")
    assert len(runs) == 4 and runs.groupby("model")["seed"].nunique().eq(2).all()
    md = (tmp_path / "table4.md").read_text()
    assert "6.47 / 10.3 / 0.878" in md and (tmp_path / "table4_r2.png").stat().st_size > 5000


def test_evaluate_resume_keeps_and_skips_done_cells(tmp_path, training_data):
    kw = dict(featurizer_names=("magpie",), max_epochs=2, out=tmp_path, tsne=False)
    evaluate(["tc"], seeds=1, **kw)
    first = pd.read_csv(tmp_path / "table4_runs.csv")
    summary = evaluate(["tc"], seeds=2, resume=True, **kw)
    runs = pd.read_csv(tmp_path / "table4_runs.csv")
    assert len(runs) == 4 and sorted(runs["seed"]) == [0, 0, 1, 1]
    pd.testing.assert_frame_equal(runs.iloc[:2].reset_index(drop=True), first)  # kept, not re-run
    assert (summary["seeds"] == 2).all()
