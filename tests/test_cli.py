"""`discover run` argument handling: checked before any model loads, one-line reasons (issue 16)."""

import re

import pytest
from typer.testing import CliRunner

import discovery.pipeline as pipeline_mod
from discovery.cli import app
from discovery.targets import PROPERTIES

runner = CliRunner()


@pytest.fixture
def no_models(monkeypatch):
    """Loading the models fails the test: validation must come first."""
    def boom(*args, **kwargs):
        raise AssertionError("models loaded before the arguments were checked")

    monkeypatch.setattr(pipeline_mod.Pipeline, "default", classmethod(boom))


@pytest.mark.parametrize("args, fragment", [
    (["--include", "O", "--exclude", "O"], "--include and --exclude both name O"),
    (["--include", "Li,O", "--exclude", "Pb,Li"], "both name Li"),
    (["--max-elements", "1"], "--max-elements must be >= 2"),
    (["--include", "Li,O,F", "--max-elements", "2"], "--include names 3 elements but --max-elements is 2"),
    (["--kappa", "-1"], "--kappa must be a number >= 0"),
    (["--kappa", "nan"], "--kappa must be a number >= 0"),
    (["--include", "Xx"], "unknown element 'Xx' in --include"),
    (["--oxidation-states", "foo"], "unknown oxidation-state set 'foo'"),
    (["--batch-size", "0"], "--batch-size must be positive"),
    (["--n", "1.5"], "--n must be a whole number of samples, got '1.5'"),
    (["--n", "lots"], "--n must be a whole number such as 100000 or 1e6, got 'lots'"),
    (["--n", "-1e3"], "--n must be a positive number of samples"),
    (["--target", "gap>1"], "unknown property 'gap'"),
    (["--target", "bandgap>3 and bandgap<1"], "cannot all hold"),  # issue 26 item 5
    # issue 26 item 7: these were refused only after the models had loaded (28-50 s)
    (["--resume", "/nonexistent/run"], "cannot resume '/nonexistent/run': no such directory"),
    (["--engine", "dask"], "--engine dask needs --scheduler ADDRESS or --workers N"),
    (["--engine", "dask", "--workers", "0"], "--workers must be >= 1, got 0"),
    (["--workers", "0"], "--workers applies to --engine dask only"),
    (["--workers", "2"], "--workers applies to --engine dask only"),
    (["--engine", "dask", "--workers", "2", "--scheduler", "tcp://h:8786"], "exclude each other"),
])
def test_impossible_or_bad_options_fail_before_loading(args, fragment, no_models):
    r = runner.invoke(app, ["run", "--n", "100", *args] if "--n" not in args else ["run", *args])
    assert r.exit_code == 2, r.output
    assert fragment in r.output and "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) == 1


@pytest.mark.parametrize("text, n", [("1e6", 1_000_000), ("2.5e5", 250_000), ("100000", 100_000),
                                     ("1_000", 1000), ("1E3", 1000)])
def test_n_accepts_integer_valued_scientific_notation(text, n, monkeypatch):
    seen = {}
    real = pipeline_mod.build_spec

    def capture(*args, **kwargs):
        seen["spec"] = real(*args, **kwargs)
        raise pipeline_mod.ConfigError("stop after validation")

    monkeypatch.setattr(pipeline_mod, "build_spec", capture)
    r = runner.invoke(app, ["run", "--n", text])
    assert "stop after validation" in r.output, r.output
    assert seen["spec"].n == n and isinstance(seen["spec"].n, int)


def test_run_help_lists_properties_with_units():
    r = runner.invoke(app, ["run", "--help"])
    text = re.sub(r"[\s│]+", " ", r.output)
    for prop, unit in PROPERTIES.items():
        assert f"{prop} ({unit})" in text


def test_run_directory_refusals_come_before_the_models(tmp_path, no_models):
    """Issue 26 items 7 and 11: a resume refusal came after the models loaded (slow, and with
    TensorFlow's threads running when the process exited)."""
    import json

    from discovery.pipeline import build_spec

    run = tmp_path / "run"
    run.mkdir()
    other = build_spec(100, "bandgap>2").settings()
    (run / "manifest.json").write_text(json.dumps({"settings": other, "partitions": {}}))
    cases = [(["--resume", str(run)], "its run used different settings"),
             (["--run-dir", str(run)], "already holds a run; pass --resume"),
             (["--resume", str(tmp_path / "empty")], "no run there (no manifest.json)")]
    (tmp_path / "empty").mkdir()
    (tmp_path / "file").write_text("x")
    cases.append((["--run-dir", str(tmp_path / "file")], "is a file, not a directory"))
    for args, fragment in cases:
        r = runner.invoke(app, ["run", "--n", "100", "--out", str(tmp_path / "r.csv"), *args])
        assert r.exit_code == 2, r.output
        assert fragment in " ".join(r.output.split()) and "Traceback" not in r.output
        assert len(r.output.strip().splitlines()) == 1
    assert not (tmp_path / "r.csv").exists()


def test_a_refusal_exits_2_without_starting_tensorflow(tmp_path):
    """Issue 26 item 11: a refusal after TensorFlow had started once exited 134 ('terminate
    called without an active exception'); refusals now end before it is imported."""
    import subprocess
    import sys

    code = ("import sys\nfrom discovery.cli import app\ntry:\n    app()\nexcept SystemExit as e:\n"
            "    print('tensorflow' in sys.modules, file=sys.__stdout__)\n    raise\n")
    p = subprocess.run([sys.executable, "-c", code, "run", "--n", "100", "--resume", str(tmp_path / "nope")],
                       capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert p.returncode == 2 and p.stdout.strip() == "False", (p.returncode, p.stdout, p.stderr)
    assert "cannot resume" in p.stderr and len(p.stderr.strip().splitlines()) == 1
