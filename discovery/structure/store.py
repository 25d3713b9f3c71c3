"""Per-candidate records of the structure stage, so a killed run never relaxes a finished
candidate again and nothing is half-written.

A candidate's CIF is written first and its record (``.records/<formula>.json``: the columns,
seconds, settings digest and the CIF's SHA-256) last, each to a temp file renamed into place. A
record counts only when its settings digest matches and its CIF is there with that checksum.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from discovery.atomic import atomic_write, remove_temp_files
from discovery.errors import ConfigError
from discovery.structure.cif import write_cif

_SAFE = re.compile(r"^[A-Za-z0-9().]+$")


def file_stem(formula: str) -> str:
    """The candidate's file name stem: its formula, which must be plain letters and digits."""
    if not _SAFE.match(formula):
        raise ConfigError(f"formula {formula!r} cannot name a file; use plain element symbols and counts")
    return formula


class StructureStore:
    """The ``<report stem>_structures/`` folder: CIFs, and records of finished candidates."""

    def __init__(self, directory: Path, digest: str):
        self.dir = Path(directory)
        self.records = self.dir / ".records"
        self.digest = digest
        try:
            self.records.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create the structures folder {self.dir} "
                              f"({exc.strerror or exc})") from None
        remove_temp_files(self.dir)
        remove_temp_files(self.records)

    def _record_path(self, formula: str) -> Path:
        return self.records / f"{file_stem(formula)}.json"

    def cif_path(self, formula: str) -> Path:
        return self.dir / f"{file_stem(formula)}.cif"

    def load(self, formula: str) -> dict | None:
        """The finished record of ``formula`` with these settings, or None."""
        path = self._record_path(formula)
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        if record.get("settings_digest") != self.digest:
            return None
        if record.get("cif_sha256"):
            try:
                data = self.cif_path(formula).read_bytes()
            except OSError:
                return None
            if hashlib.sha256(data).hexdigest() != record["cif_sha256"]:
                return None
        return record

    def save(self, formula: str, record: dict, cif: str | None) -> dict:
        """Write the CIF (if any), then the record; return the record as stored."""
        record = dict(record, settings_digest=self.digest)
        if cif is not None:
            write_cif(self.cif_path(formula), cif)
            record["cif_sha256"] = hashlib.sha256(cif.encode()).hexdigest()
            record["cif_name"] = self.cif_path(formula).name
        else:
            record["cif_sha256"], record["cif_name"] = "", ""
        text = json.dumps(record, indent=1, sort_keys=True) + "\n"
        atomic_write(self._record_path(formula), lambda p: p.write_text(text))
        return record
