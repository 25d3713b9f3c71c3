"""Carry structure-stage records across a STAGE_VERSION bump that cannot have changed them.

STAGE_VERSION 4 raised the tie tolerance (``discovery.structure.stage.TIE``) from 1 to 5 meV/atom:
a fully relaxed structure must be that much lower to beat a likelier template's. The relaxations
are the same; only the pick among them can differ. A record whose pick, recomputed from its
``relaxed_energies`` with the new tolerance, is the one it holds is carried (it gets the new
settings digest); the others are deleted and relaxed again. (Version 3's migration, for the volume
floor, is in the git history of this file.)

    python research/migrate_structure_records.py <folder> [--settings formation|default] [--dry-run]
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

from discovery.structure.settings import STAGE_VERSION, RelaxSettings
from discovery.structure.stage import TIE

PREVIOUS = STAGE_VERSION - 1


def old_digest(settings: RelaxSettings) -> str:
    text = json.dumps(settings.to_dict() | {"stage_version": PREVIOUS}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def pick(energies: list) -> str | None:
    """The stage's choice among fully relaxed (label, energy) in likelihood order."""
    best = None
    for label, energy in energies:
        if energy is not None and (best is None or energy < best[1] - TIE):
            best = (label, energy)
    return None if best is None else best[0]


def untouched(record: dict) -> bool:
    energies = record.get("relaxed_energies")
    if energies is None:  # no structure: nothing was picked
        return not record.get("cif_name")
    return pick(energies) == record.get("prototype")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--settings", choices=("formation", "default"), default="default")
    ap.add_argument("--dry-run", action="store_true")
    args = ap.parse_args()
    settings = (RelaxSettings(max_prototypes=2, random_budget=0, max_steps=200, max_atoms=12, prescreen=24)
                if args.settings == "formation" else RelaxSettings())
    old, new = old_digest(settings), settings.digest()
    carried, redo = [], []
    for path in sorted((args.folder / ".records").glob("*.json")):
        record = json.loads(path.read_text())
        if record.get("settings_digest") != old:
            continue
        if untouched(record):
            carried.append(record["formula"])
            if not args.dry_run:
                record["settings_digest"] = new
                tmp = path.with_suffix(".tmp")
                tmp.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
                tmp.replace(path)
        else:
            redo.append(record["formula"])
            if not args.dry_run:
                path.unlink()
    print(f"{args.folder}: carried {len(carried)}, to relax again {len(redo)}: {', '.join(redo)}")


if __name__ == "__main__":
    main()
