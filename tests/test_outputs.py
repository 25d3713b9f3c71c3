"""Reports are never lost: the destination is checked before sampling, a failed write keeps
the results elsewhere, a failed plot is a warning, names do not collide, files respect the
umask."""

import errno
import logging
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from discovery.cli import app
from discovery.pipeline import Pipeline, RunSpec
from discovery.report import default_report_path, write_csv

runner = CliRunner()
TWENTY = " and ".join(f"bandgap>{i / 100}" for i in range(20))


def make_out_dir_a_file(chunk: pd.DataFrame):
    """Passes everything; meanwhile the report's folder turns into a file (like a disk that
    fills or a mount that goes away during the run)."""
    target = Path(os.environ["SABOTAGE_PATH"])
    if not target.is_file():
        shutil.rmtree(target, ignore_errors=True)
        target.write_text("not a folder any more")
    return chunk["n_elements"].to_numpy() > 0


def make_png_a_directory(chunk: pd.DataFrame):
    """Passes everything; meanwhile the PNG's path becomes a directory, so only the plot fails."""
    Path(os.environ["SABOTAGE_PATH"]).mkdir(exist_ok=True)
    return chunk["n_elements"].to_numpy() > 0


@pytest.fixture(scope="module")
def pipe(crabnet_cache):
    # ion substitution: novel candidates from the first samples (the default LM starts with its
    # most likely compositions, mostly known ones, so a run this small would keep none)
    return Pipeline.default(seed=0, generator="substitution")


@pytest.fixture
def cli(pipe, monkeypatch):
    """The CLI on the module's pipeline (loaded once), run in a temp working directory."""
    monkeypatch.setattr(Pipeline, "default", classmethod(lambda cls, seed=0, **kwargs: pipe))
    monkeypatch.setattr(logging.root, "handlers", [])

    def invoke(*args):
        logging.root.handlers.clear()  # basicConfig binds to this invocation's stderr, not a closed one
        return runner.invoke(app, ["run", "--n", "300", "--batch-size", "300", "--generator", "substitution",
                                   *map(str, args)])

    return invoke


def _settings(**kw):
    return RunSpec(n=1000, target=kw.pop("target", "bandgap>1.5"), **kw).settings()


def test_default_names_differ_when_settings_differ():
    base = default_report_path(_settings())
    variants = [_settings(target="bandgap<1.5"), _settings(include=("Li",)), _settings(exclude=("Pb",)),
                _settings(max_elements=3), _settings(kappa=2.0), _settings(filters=(make_png_a_directory,)),
                _settings(seed=1), _settings(oxidation_states="icsd24")]
    names = {base.name, *(default_report_path(s).name for s in variants)}
    assert len(names) == 1 + len(variants)
    assert default_report_path(_settings()) == base  # the same run writes the same file
    assert base.name.startswith("bandgap_gt_1.5_n1000_seed0_")
    assert default_report_path(_settings(target="bandgap<1.5")).name.startswith("bandgap_lt_1.5_n1000_seed0_")
    assert len(default_report_path(_settings(target=TWENTY)).name) < 80


def test_reports_respect_the_umask(tmp_path):
    df = pd.DataFrame({"rank": [1], "formula": ["NaCl"], "n_elements": [2], "bandgap": [5.0],
                       "bandgap_std": [0.1], "score": [4.9]})
    old = os.umask(0o022)
    try:
        write_csv(df, "bandgap", tmp_path / "r.csv")
        os.umask(0o027)
        write_csv(df, "bandgap", tmp_path / "s.csv")
    finally:
        os.umask(old)
    assert (tmp_path / "r.csv").stat().st_mode & 0o777 == 0o644  # colleagues can read it
    assert (tmp_path / "s.csv").stat().st_mode & 0o777 == 0o640


def _unwritable(kind: str, tmp_path: Path, monkeypatch) -> Path:
    if kind == "parent is a file":
        (tmp_path / "file").write_text("x")
        return tmp_path / "file" / "r.csv"
    if kind == "name too long":
        return tmp_path / ("x" * 250 + ".csv")
    if kind == "disk full":
        import discovery.outputs

        class FullDisk:  # the probe's writes fail as on a full filesystem
            def __getattr__(self, name):
                return getattr(os, name)

            @staticmethod
            def write(fd, data):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        monkeypatch.setattr(discovery.outputs, "os", FullDisk())
        return tmp_path / "r.csv"
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro").chmod(0o555)
    return tmp_path / "ro" / "r.csv"


@pytest.mark.parametrize("kind", ["parent is a file", "name too long", "disk full", "read-only folder"])
def test_unwritable_destination_fails_before_sampling(cli, monkeypatch, tmp_path, kind):
    def no_sampling(*args, **kwargs):
        raise AssertionError("sampled before checking the destination")

    monkeypatch.setattr(Pipeline, "run_partition", no_sampling)
    r = cli("--out", _unwritable(kind, tmp_path, monkeypatch))
    assert r.exit_code == 2, r.output
    assert "cannot write the report" in r.output and "Traceback" not in r.output
    if kind == "disk full":
        assert "No space left on device" in r.output
    if kind == "parent is a file":
        assert f"{tmp_path / 'file'} is a file, not a folder" in " ".join(r.output.split())
    assert len(r.output.strip().splitlines()) == 1


def test_long_target_gets_a_short_default_name(cli, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    r = cli("--target", TWENTY, "--no-plot")
    assert r.exit_code == 0, r.output
    [csv] = (tmp_path / "candidates").glob("*.csv")
    assert csv.name.startswith("bandgap_gt_0_and_bandgap_gt_0.01") and len(csv.name) < 80


def test_failed_report_write_keeps_the_results(cli, monkeypatch, tmp_path):
    out_dir = tmp_path / "out"
    monkeypatch.setenv("SABOTAGE_PATH", str(out_dir))
    r = cli("--out", out_dir / "r.csv", "--run-dir", tmp_path / "run", "--filter",
            f"{__name__}:make_out_dir_a_file")
    assert r.exit_code == 2 and "Traceback" not in r.output, r.output
    line = " ".join(r.output.split())
    assert f"cannot write the report {out_dir / 'r.csv'}" in line and "results are kept" in line
    [saved] = (tmp_path / "run").glob("*.csv")
    assert str(saved) in line
    kept = pd.read_csv(saved)
    assert len(kept) > 0 and (kept["bandgap [eV]"] > 1.5).all()
    assert saved.with_suffix(".summary.json").is_file()


def test_failed_plot_is_a_warning(cli, monkeypatch, tmp_path):
    out = tmp_path / "r.csv"
    monkeypatch.setenv("SABOTAGE_PATH", str(out.with_suffix(".png")))
    r = cli("--out", out, "--filter", f"{__name__}:make_png_a_directory")
    assert r.exit_code == 0, r.output
    assert "warning: could not write the plot" in " ".join(r.output.split())
    assert "Traceback" not in r.output
    assert len(pd.read_csv(out)) > 0 and out.with_suffix(".summary.json").is_file()


def test_report_of_another_run_is_not_replaced(cli, tmp_path):
    out = tmp_path / "r.csv"
    assert cli("--out", out, "--target", "bandgap>1", "--no-plot").exit_code == 0
    first = out.read_bytes()
    assert cli("--out", out, "--target", "bandgap>1", "--no-plot").exit_code == 0  # same run: fine
    r = cli("--out", out, "--target", "bandgap<1", "--no-plot")
    assert r.exit_code == 2 and "already holds a report of another run" in " ".join(r.output.split())
    assert out.read_bytes() == first
    r = cli("--out", out, "--target", "bandgap<1", "--no-plot", "--overwrite")
    assert r.exit_code == 0, r.output
    assert out.read_bytes() != first


def test_resume_typo_and_damaged_manifest_are_one_line_errors(cli, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    r = cli("--resume", tmp_path / "rnus", "--no-plot")
    assert r.exit_code == 2 and "Traceback" not in r.output, r.output
    assert "cannot resume" in r.output and "no such directory" in r.output
    assert not (tmp_path / "rnus").exists()  # no run started at the typo

    run = tmp_path / "run"
    assert cli("--run-dir", run, "--no-plot").exit_code == 0
    (run / "manifest.json").write_text("[]")
    r = cli("--run-dir", run, "--no-plot")
    assert r.exit_code == 2 and "Traceback" not in r.output, r.output
    line = " ".join(r.output.split())
    assert "manifest.json is damaged" in line and f"--resume {run}" in line
    assert cli("--resume", run, "--no-plot").exit_code == 0  # rebuilt from the partitions
