"""Where a run's reports go: checked before the run, written after it, never lost.

``check_destination`` runs before any sampling: the report must be named ``*.csv`` (so the
CSV, summary and PNG never share a name), the CSV, summary and PNG names must be creatable and
writable in their folder (parent is a directory, permissions, name and path length, free
space for a probe), and an existing report of a run with other settings is not replaced
unless asked. ``ReportLock`` keeps a second run from writing the same report while the first
runs (it holds a lock file beside the report from the check to the last write).
``write_reports`` writes the CSV and summary (the result) and the PNG (a failure there is a
warning); if the result cannot be written after all, it is saved elsewhere and the error says
where, or says plainly that nothing could be saved.
"""

from __future__ import annotations

import errno
import json
import os
import resource
import socket
import tempfile
from collections.abc import Iterable
from pathlib import Path

from discovery.atomic import temp_path
from discovery.errors import ConfigError, OutputError
from discovery.report import default_report_path, plot_run, write_csv, write_summary

PROBE_BYTES = 64 * 1024  # enough that a full disk fails the probe, not the report


class ReportLock:
    """A lock file beside the report (``.NAME.lock``), held by one run from the destination
    check to its last write, so that a second run with the same ``--out`` refuses in one line
    instead of replacing the first one's report.

    The lock is an ``flock`` on the file, so a run that dies releases it; the file holds the
    holder's pid and host for the message, and is removed on release.
    """

    def __init__(self, path: Path):
        self.report = Path(path)
        self.path = self.report.with_name(f".{self.report.name}.lock")
        self._fd: int | None = None

    def acquire(self) -> ReportLock:
        import fcntl

        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            except OSError as exc:
                raise ConfigError(f"cannot write the report {show_path(self.report)}: cannot create "
                                  f"the lock file {self.path.name} ({_reason(exc)}); choose another "
                                  "--out") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                raise ConfigError(f"another run ({holder}) is writing the report {show_path(self.report)}"
                                  f" now; wait for it to finish or choose another --out") from None
            except OSError:  # no locks on this filesystem: go on unlocked, as before
                os.close(fd)
                return self
            try:  # the file locked must still be the one at the path (a finishing run removes it)
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            try:  # while still holding it, so no one locks a removed file
                self.path.unlink(missing_ok=True)
            except OSError:  # its folder went away or became a file during the run
                pass
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> ReportLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def report_paths(path: Path, plot: bool = True) -> list[Path]:
    """The CSV, its summary and (with ``plot``) its PNG; a ConfigError unless ``path`` names a
    ``.csv`` file, so that the three never share a name (``--out r.png`` would have the plot
    replace the CSV)."""
    path = Path(path)
    if path.suffix.lower() != ".csv":
        if _is_dir(path):
            raise ConfigError(f"--out {show_path(path)} is a folder; name the CSV file, e.g. "
                              f"{show_path(path / 'results.csv')}")
        raise ConfigError(f"--out must name a .csv file (the summary and plot go beside it as "
                          f".summary.json and .png), got {show_path(path)}")
    return [path, path.with_suffix(".summary.json"), *([path.with_suffix(".png")] if plot else [])]


def show_path(path: Path, limit: int = 160) -> str:
    """``path`` for a one-line message: quoted, and a very long one cut in the middle."""
    text = str(path)
    if len(text) <= limit:
        return repr(text)
    return repr(f"{text[:limit // 2]}...{text[-limit // 2:]}") + f" ({len(text):,} characters)"


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:  # a name too long to look up is no folder
        return False


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:
        return False


def _reason(exc: OSError) -> str:
    reason = exc.strerror or str(exc)
    if getattr(exc, "errno", None) == errno.EFBIG:
        limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        if limit != resource.RLIM_INFINITY:
            reason += f": files are limited to {limit:,} bytes here (ulimit -f)"
    return reason


def _probe(path: Path) -> None:
    """Create, fill, sync and delete a temp file named as the write will name it."""
    if _is_dir(path):
        raise IsADirectoryError(21, "Is a directory", str(path))
    tmp = temp_path(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        os.write(fd, b"\0" * PROBE_BYTES)
        os.fsync(fd)
    finally:
        os.close(fd)
        tmp.unlink(missing_ok=True)


def check_destination(path: Path, settings: dict, plot: bool = True, overwrite: bool = False,
                      lock: ReportLock | None = None) -> None:
    """Raise ConfigError (one line) unless the run's reports can be written at ``path``.

    With ``lock`` (a :class:`ReportLock` of ``path``) it is acquired before the check for
    another run's report, so that check still holds when this run writes; the caller releases
    it after the write (here only when the check fails)."""
    path = Path(path)
    paths = report_paths(path, plot)  # a name that is not *.csv fails here, before any folder is made
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        blocker = next((p for p in path.parents if _exists(p) and not _is_dir(p)), None)
        reason = f"{blocker} is a file, not a folder" if blocker else _reason(exc)
        raise ConfigError(f"cannot write the report {show_path(path)}: cannot create its folder "
                          f"({reason}); choose another --out") from None
    for p in paths:
        try:
            _probe(p)
        except OSError as exc:
            raise ConfigError(f"cannot write the report {show_path(p)} ({_reason(exc)}); choose another "
                              "--out") from None
    if lock is not None:
        lock.acquire()
    if _exists(path) and not overwrite and _settings_of(path) != settings:
        if lock is not None:
            lock.release()
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
    fallback_dirs = list(fallback_dirs)
    try:
        _write_result(result, path, models, extra)
    except OSError as exc:
        saved = _save_elsewhere(result, path, models, fallback_dirs, extra)
        if saved:
            raise OutputError(f"cannot write the report {path} ({_reason(exc)}); the results are kept: "
                              f"saved them to {saved}") from None
        # nothing was written anywhere: say so, and whether a run directory still holds the work
        run_dir = next((Path(d) for d in fallback_dirs if d is not None
                        and _exists(Path(d) / "manifest.json")), None)
        kept = (f"the completed partitions are kept in {run_dir}: make room, then --resume {run_dir} "
                "writes the report without recomputing them") if run_dir else \
            "the results are lost (pass --run-dir to keep partitions that a rerun can reuse)"
        raise OutputError(f"cannot write the report {path} ({_reason(exc)}), nor save it in the run "
                          f"directory, the working directory or the temp directory; {kept}") from None
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
        except OSError as exc:
            if exc.errno not in (errno.EFBIG, errno.ENOSPC, errno.EDQUOT):
                continue
            # too large for what is left (a file size limit, a nearly full disk): a gzipped CSV
            # is a fifth of the size and pandas reads it as it is
            try:
                _write_result_gzip(result, target, models, extra)
            except OSError:
                continue
            return target.with_name(target.name + ".gz")
        return target
    return None


def _write_result_gzip(result, path: Path, models: dict, extra: dict | None = None) -> None:
    from discovery.atomic import atomic_write
    from discovery.report import FLOAT_FORMAT, csv_frame

    frame = csv_frame(result.candidates, result.sort[0])
    gzip = {"method": "gzip", "mtime": 0}  # mtime 0: the same bytes for the same result
    atomic_write(path.with_name(path.name + ".gz"), lambda p: frame.to_csv(
        p, index=False, float_format=FLOAT_FORMAT, lineterminator="\n", compression=gzip))
    write_summary(result, path.with_suffix(".summary.json"), models, extra)
