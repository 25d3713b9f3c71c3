"""Reports are never lost: the destination is checked before sampling, a failed write keeps
the results elsewhere, a failed plot is a warning, names do not collide, files respect the
umask."""

import errno
import logging
import os
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from discovery.cli import app
from discovery.errors import ConfigError
from discovery.outputs import ReportLock
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


def exit_or_interrupt(chunk: pd.DataFrame):
    """Passes everything; on call STOP_AT calls sys.exit(0) (or raises KeyboardInterrupt with
    STOP_WITH=interrupt), as a careless custom filter might."""
    _CALLS["n"] += 1
    if _CALLS["n"] == int(os.environ.get("STOP_AT", "0")):
        if os.environ.get("STOP_WITH") == "interrupt":
            raise KeyboardInterrupt
        sys.exit(0)
    return chunk["n_elements"].to_numpy() > 0


def lock_is_held(chunk: pd.DataFrame):
    """Passes everything; records whether another run could take the report's lock now."""
    try:
        ReportLock(Path(os.environ["LOCKED_OUT"])).acquire().release()
        _CALLS["lock_free"] = True
    except ConfigError as exc:
        _CALLS["refused"] = str(exc)
    return chunk["n_elements"].to_numpy() > 0


_CALLS: dict = {"n": 0}


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
    if kind == "path too long":  # issue 26 item 6: beyond PATH_MAX, where pathlib's exists() raises
        return tmp_path.joinpath(*["d" * 200] * 25) / "r.csv"
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


@pytest.mark.parametrize("kind", ["parent is a file", "name too long", "path too long", "disk full",
                                  "read-only folder"])
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
    if kind == "path too long":
        assert "File name too long" in r.output and "characters)" in r.output  # cut in the middle
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


# ----------------------------------------------------------------------------- issue 26


@pytest.mark.parametrize("name", ["r.png", "r.summary.json", "r", "r.txt"])
def test_out_must_name_a_csv_so_reports_never_share_a_name(cli, monkeypatch, tmp_path, name):
    """Item 2: --out r.png had the plot replace the CSV."""
    real = Pipeline.run_partition
    monkeypatch.setattr(Pipeline, "run_partition", lambda *a, **k: pytest.fail("sampled"))
    r = cli("--out", tmp_path / "pngout" / name)
    assert r.exit_code == 2 and "Traceback" not in r.output, r.output
    assert "--out must name a .csv file" in " ".join(r.output.split())
    assert len(r.output.strip().splitlines()) == 1 and not (tmp_path / "pngout").exists()
    (tmp_path / "folder").mkdir()
    r = cli("--out", tmp_path / "folder")
    assert r.exit_code == 2 and "is a folder; name the CSV file" in " ".join(r.output.split()), r.output
    if name == "r.png":
        monkeypatch.setattr(Pipeline, "run_partition", real)
        r = cli("--out", tmp_path / "R.CSV")  # any case of .csv is a CSV
        assert r.exit_code == 0, r.output
        assert {p.name for p in tmp_path.iterdir()} == {"folder", "R.CSV", "R.summary.json", "R.png"}


def test_a_second_run_at_the_same_out_refuses_while_the_first_holds_it(cli, monkeypatch, tmp_path):
    """Item 1: two runs with one --out both wrote it; the report lock makes the second refuse."""
    out = tmp_path / "same" / "r.csv"
    (tmp_path / "same").mkdir()
    first = ReportLock(out).acquire()  # another run, between its check and its write
    try:
        r = cli("--out", out, "--seed", "1", "--no-plot")
        assert r.exit_code == 2 and "Traceback" not in r.output, r.output
        line = " ".join(r.output.split())
        assert f"another run (pid {os.getpid()} on " in line and "is writing the report" in line
        assert len(r.output.strip().splitlines()) == 1 and not out.exists()
    finally:
        first.release()
    # during a run its lock is held (a second run refuses); afterwards it is gone
    monkeypatch.setenv("LOCKED_OUT", str(out))
    _CALLS.pop("lock_free", None)
    r = cli("--out", out, "--no-plot", "--filter", f"{__name__}:lock_is_held")
    assert r.exit_code == 0, r.output
    assert "lock_free" not in _CALLS and "is writing the report" in _CALLS["refused"]
    assert not ReportLock(out).path.exists() and out.is_file()
    with ReportLock(out):  # released: the next run can take it
        pass


def test_failed_write_with_nowhere_else_to_save_says_so(cli, monkeypatch, tmp_path):
    """Item 3: under `ulimit -f` no copy could be saved, yet the line said 'the results are
    kept'. Now it says nothing was saved, or that the run directory keeps the partitions."""
    import discovery.outputs as outputs

    def too_large(result, path, models, extra=None):
        raise OSError(errno.EFBIG, os.strerror(errno.EFBIG))

    real = outputs._write_result
    monkeypatch.setattr(outputs, "_write_result", too_large)
    monkeypatch.setattr(outputs.resource, "getrlimit", lambda what: (102400, outputs.resource.RLIM_INFINITY))
    monkeypatch.chdir(tmp_path)
    r = cli("--out", tmp_path / "r.csv", "--no-plot")  # a gzipped CSV, a fifth of the size, still fits
    line = " ".join(r.output.split())
    assert r.exit_code == 2 and "the results are kept: saved them to" in line, r.output
    [gz] = tmp_path.glob("*.csv.gz")
    assert str(gz) in line and len(pd.read_csv(gz)) > 0
    assert gz.with_suffix("").with_suffix(".summary.json").is_file()
    gz.unlink()
    monkeypatch.setattr(outputs, "_write_result_gzip", too_large)  # and when that fails too
    r = cli("--out", tmp_path / "r.csv", "--no-plot")
    assert r.exit_code == 2 and "Traceback" not in r.output, r.output
    line = " ".join(r.output.split())
    assert "results are kept" not in line and "the results are lost" in line
    assert "File too large: files are limited to 102,400 bytes here (ulimit -f)" in line
    run = tmp_path / "run"
    r = cli("--out", tmp_path / "r.csv", "--no-plot", "--run-dir", run)
    line = " ".join(r.output.split())
    assert r.exit_code == 2 and f"the completed partitions are kept in {run}" in line, r.output
    assert f"--resume {run}" in line and "results are kept" not in line
    monkeypatch.setattr(outputs, "_write_result", real)  # writing works again: --resume writes the
    monkeypatch.setattr(Pipeline, "run_partition", lambda *a, **k: pytest.fail("recomputed a partition"))
    r = cli("--out", tmp_path / "r.csv", "--no-plot", "--resume", run)
    assert r.exit_code == 0, r.output
    assert len(pd.read_csv(tmp_path / "r.csv")) > 0  # report from the kept partitions


@pytest.mark.parametrize("stop_with, code, fragment", [
    ("exit", 2, "called sys.exit(0); a filter must return a boolean mask; the completed partitions are kept"),
    ("interrupt", 130, "interrupted: completed partitions are kept; continue with --resume"),
])
def test_filter_that_exits_or_interrupts_ends_the_run_and_resume_works(cli, monkeypatch, tmp_path,
                                                                       stop_with, code, fragment):
    """Item 4: a filter calling sys.exit(0) ended the run with exit 0, no report, no message."""
    out, run = tmp_path / "r.csv", tmp_path / "run"
    args = ("--out", out, "--no-plot", "--partition-size", "100", "--batch-size", "100", "--filter",
            f"{__name__}:exit_or_interrupt")
    _CALLS["n"] = 0
    monkeypatch.setenv("STOP_AT", "2")  # partition 0 completes first
    monkeypatch.setenv("STOP_WITH", stop_with)
    r = cli(*args, "--run-dir", run)
    assert r.exit_code == code and "Traceback" not in r.output, r.output
    line = " ".join(r.output.split())
    assert fragment in line and str(run) in line and not out.exists()
    assert len([s for s in r.output.strip().splitlines() if not s.startswith("discover run:")]) == 1
    monkeypatch.setenv("STOP_AT", "0")
    r = cli(*args, "--resume", run)
    assert r.exit_code == 0, r.output
    clean = tmp_path / "clean.csv"
    assert cli(*args[2:], "--out", clean).exit_code == 0
    assert out.read_bytes() == clean.read_bytes()
