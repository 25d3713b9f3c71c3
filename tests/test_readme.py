"""Every README code block works (issue 16 item 10).

Python blocks run, in README order, in a scratch directory. ``discover`` commands in bash
blocks are parsed by the real command line (every subcommand and option must exist); small
local runs (n <= 20,000) are executed too, since later Python blocks read their output.
"""

import re
import shlex
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from discovery.cli import _parse_count, app

README = Path(__file__).resolve().parent.parent / "README.md"
SMALL_RUN = 20_000


def readme_blocks() -> list[tuple[str, str]]:
    """(language, code) of every fenced block, in order."""
    return [(m.group(1), m.group(2)) for m in
            re.finditer(r"^```(\w*)\n(.*?)^```", README.read_text(), flags=re.S | re.M)]


def discover_commands(code: str) -> list[list[str]]:
    """The argument lists of the ``discover`` lines of a shell block (continuations joined,
    comments and a trailing ``...`` placeholder dropped)."""
    out = []
    for line in code.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        if words and words[0] == "discover":
            out.append([w for w in words[1:] if w != "..."])
    return out


def parse(args: list[str]):
    """Resolve the subcommand and parse its options with the real CLI (typer's own click);
    raise its UsageError on an unknown command or option. Nothing is invoked."""
    cmd = typer.main.get_command(app)
    args, name = list(args), "discover"
    while hasattr(cmd, "commands"):  # a group
        if not args:
            raise ValueError(f"{name}: missing subcommand")
        name = args.pop(0)
        sub = cmd.commands.get(name)
        if sub is None:
            raise ValueError(f"no such command {name!r}")
        cmd = sub
    return cmd.make_context(name, args)


def test_readme_has_the_blocks_this_test_checks():
    langs = [lang for lang, _ in readme_blocks()]
    assert langs.count("python") >= 3 and langs.count("bash") >= 3
    assert sum(len(discover_commands(c)) for lang, c in readme_blocks() if lang == "bash") >= 8


def test_unknown_option_is_caught():
    with pytest.raises(Exception, match="No such option: --no-such-option"):
        parse(["run", "--n", "10", "--no-such-option", "1"])
    with pytest.raises(ValueError, match="no such command 'runn'"):
        parse(["runn", "--n", "10"])
    assert parse(["data", "fetch", "--force"]).params["force"] is True


def test_readme_examples_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    ran = 0
    for lang, code in readme_blocks():
        if lang == "bash":
            for args in discover_commands(code):
                ctx = parse(args)
                p = ctx.params
                small = (ctx.info_name == "run" and _parse_count(p["n"]) <= SMALL_RUN
                         and p["engine"] == "local" and not p["resume"] and not p["run_dir"])
                if small:
                    r = runner.invoke(app, args)
                    assert r.exit_code == 0, f"discover {' '.join(args)}\n{r.output}"
                    ran += 1
        elif lang == "python":
            try:
                exec(compile(code, "README.md", "exec"), {"__name__": "readme"})
            except Exception as exc:
                raise AssertionError(f"README python block failed: {exc!r}\n{code}") from exc
            ran += 1
    assert ran >= 4
