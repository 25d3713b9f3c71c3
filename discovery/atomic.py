"""Whole-file writes: a reader sees the old file or the new one, never half of one.

Each write goes to a uniquely named temp file beside the destination (``.NAME.PID.RANDOM.tmp``)
that is renamed into place and removed if anything fails. Temp files are created like any
ordinary file, so the umask decides who can read the result (``mkstemp`` would make it 0600).
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Callable
from pathlib import Path

_TEMP = re.compile(r"^\..+\.\d+(\.[0-9a-f]{8})?\.tmp$")  # also the older .NAME.PID.tmp


def temp_path(path: Path) -> Path:
    """A fresh temp name beside ``path`` (same directory, so the rename is atomic)."""
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Call ``write(tmp)`` and rename ``tmp`` onto ``path``; on failure remove ``tmp`` and raise."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda p: p.write_bytes(data))


def write_once(path: Path, data: bytes) -> bool:
    """Write ``path`` unless it exists; True when this call wrote it.

    The first complete write wins (a hard link never replaces a file), so a second writer of
    the same content, such as a task a scheduler reran, cannot change what a reader has
    already checked. Filesystems without hard links fall back to check-then-rename.
    """
    path = Path(path)
    tmp = temp_path(path)
    try:
        tmp.write_bytes(data)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        except OSError:  # no hard links here (some network or FUSE filesystems)
            if path.exists():
                return False
            os.replace(tmp, path)
        return True
    finally:
        tmp.unlink(missing_ok=True)


def remove_temp_files(directory: Path) -> list[Path]:
    """Delete the temp files that killed or failed writes left in ``directory``."""
    removed = []
    for p in Path(directory).iterdir():
        if _TEMP.match(p.name) and p.is_file():
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def staging_dir(path: Path) -> Path:
    """Where a new version of directory ``path`` is written before :func:`replace_dir`."""
    path = Path(path)
    return path.with_name(path.name + ".tmp")


def replace_dir(path: Path, marker: str) -> None:
    """Swap the complete directory ``staging_dir(path)`` in as ``path``.

    ``marker`` names the file the writer puts in the staged directory last, so its presence
    means the directory is whole. The old ``path`` is kept as ``path.old`` until the new one is
    in place; a kill between the two renames is repaired by :func:`recover_dir`."""
    import shutil

    path = Path(path)
    new, old = staging_dir(path), path.with_name(path.name + ".old")
    if not (new / marker).is_file():
        raise FileNotFoundError(f"{str(new)!r} is incomplete (no {marker})")
    shutil.rmtree(old, ignore_errors=True)
    if path.exists():
        os.replace(path, old)
    os.replace(new, path)
    shutil.rmtree(old, ignore_errors=True)


def recover_dir(path: Path, marker: str) -> None:
    """After a kill inside :func:`replace_dir` (``path`` missing): put the staged directory in
    place when it is whole (has ``marker``), else the old one back. Nothing to do otherwise."""
    path = Path(path)
    if path.exists():
        return
    new, old = staging_dir(path), path.with_name(path.name + ".old")
    if (new / marker).is_file():
        os.replace(new, path)
    elif old.exists():
        os.replace(old, path)
