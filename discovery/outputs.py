"""Where a run's reports go: checked before the run, written after it, never lost.

``check_destination`` runs before any sampling: the CSV, summary and PNG names must be
creatable and writable in their folder (parent is a directory, permissions, name length,
free space for a probe), and an existing report of a run with other settings is not
replaced unless asked. ``write_reports`` writes the CSV and summary (the result) and the PNG
(a failure there is a warning); if the result cannot be written after all, it is saved
elsewhere and the error says where.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from discovery.atomic import temp_path
from discovery.errors import ConfigError, OutputError
from discovery.report import default_report_path, plot_run, write_csv, write_summary

PROBE_BYTES = 64 * 1024  # enough that a full disk fails the probe, not the report


def report_paths(path: Path, plot: bool = True) -> list[Path]:
    """The CSV, its summary and (with ``plot``) its PNG."""
    path = Path(path)
    return [path, path.with_suffix(".summary.json"), *([path.with_suffix(".png")] if plot else [])]


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _probe(path: Path) -> None:
    """Create, fill, sync and delete a temp file named as the write will name it."""
    if path.is_dir():
        raise IsADirectoryError(21, "Is a directory", str(path))
    tmp = temp_path(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        os.write(fd, b"\0" * PROBE_BYTES)
        os.fsync(fd)
    finally:
        os.close(fd)
        tmp.unlink(missing_ok=True)


def check_destination(path: Path, settings: dict, plot: bool = True, overwrite: bool = False) -> None:
    """Raise ConfigError (one line) unless the run's reports can be written at ``path``."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        blocker = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
        reason = f"{blocker} is a file, not a folder" if blocker else _reason(exc)
        raise ConfigError(f"cannot write the report {path}: cannot create its folder {path.parent} "
                          f"({reason}); choose another --out") from None
    for p in report_paths(path, plot):
        try:
            _probe(p)
        except OSError as exc:
            raise ConfigError(f"cannot write the report {p} ({_reason(exc)}); choose another --out") \
                from None
    if path.exists() and not overwrite and _settings_of(path) != settings:
        raise ConfigError(f"{path} already holds a report of another run; choose another --out or "
                          "pass --overwrite to replace it")


def _settings_of(path: Path) -> dict | None:
    """The settings recorded beside an existing report, None when unknown."""
    try:
        return json.loads(path.with_suffix(".summary.json").read_text()).get("settings")
    except (OSError, ValueError, AttributeError):
        return None


def write_reports(result, path: Path, models: dict, plot: bool = True,
                  fallback_dirs: Iterable[Path | None] = (), extra: dict | None = None
                  ) -> tuple[list[Path], list[str]]:
    """Write the CSV and summary (with ``extra`` entries; and PNG); return the paths written
    and warnings.

    A PNG that cannot be written is a warning. When the CSV or summary cannot be written,
    they go to the first of ``fallback_dirs``, the working directory and the temp directory
    that takes them, and OutputError says where.
    """
    path = Path(path)
    try:
        _write_result(result, path, models, extra)
    except OSError as exc:
        saved = _save_elsewhere(result, path, models, fallback_dirs, extra)
        where = f"saved them to {saved}" if saved else "could not save them anywhere else either"
        raise OutputError(f"cannot write the report {path} ({_reason(exc)}); the results are kept: "
                          f"{where}") from None
    written, warnings = report_paths(path, plot=False), []
    if plot:
        png = path.with_suffix(".png")
        try:
            plot_run(result, png)
            written.append(png)
        except Exception as exc:  # a plot is optional; the CSV is the result
            reason = _reason(exc) if isinstance(exc, OSError) else f"{type(exc).__name__}: {exc}"
            warnings.append(f"could not write the plot {png} ({reason}); the CSV and summary are complete")
    return written, warnings


def _write_result(result, path: Path, models: dict, extra: dict | None = None) -> None:
    write_csv(result.candidates, result.sort[0], path)
    write_summary(result, path.with_suffix(".summary.json"), models, extra)


def _save_elsewhere(result, path: Path, models: dict, dirs: Iterable[Path | None],
                    extra: dict | None = None) -> Path | None:
    name = default_report_path(result.settings).name
    for d in [*dirs, Path.cwd(), Path(tempfile.gettempdir())]:
        if d is None:
            continue
        target = Path(d) / name
        if target.resolve() == path.resolve():
            continue
        try:
            _write_result(result, target, models, extra)
        except OSError:
            continue
        return target
    return None
