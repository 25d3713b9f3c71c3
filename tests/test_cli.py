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
