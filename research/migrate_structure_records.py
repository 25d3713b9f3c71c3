"""Carry structure-stage records across a STAGE_VERSION bump that cannot have changed them.

STAGE_VERSION 3 added the volume floor (discovery.structure.volume): a proposal that starts below
it is scaled up, and a geometry below the evaluation floor is refused. A record whose every
proposal started at or above the floor ran exactly the same relaxations (CHGNet on the CPU is
deterministic), unless the refusal could have cut it: so a record is carried only when all its
proposals start above the floor and, if it has a CIF, the relaxed cell is above the evaluation
floor too. Carried records get the new settings digest; the others are deleted and relaxed again.

    python research/migrate_structure_records.py <folder> [--settings formation|default] [--dry-run]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pymatgen.core import Composition, Structure

from discovery.structure.prototypes import propose
from discovery.structure.random_search import random_structures
from discovery.structure.settings import STAGE_VERSION, RelaxSettings
from discovery.structure.volume import EVALUATE_FRACTION, START_FRACTION, elemental_volume

PREVIOUS = STAGE_VERSION - 1


def old_digest(settings: RelaxSettings) -> str:
    import hashlib

    text = json.dumps(settings.to_dict() | {"stage_version": PREVIOUS}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def untouched(formula: str, record: dict, settings: RelaxSettings, folder: Path) -> bool:
    comp = Composition(formula)
    proposals = propose(comp, settings.max_prototypes, settings.max_atoms)
    if not proposals:
        proposals = random_structures(comp, settings.random_budget, settings.seed, settings.max_atoms)
    if any(p.structure.volume < START_FRACTION * elemental_volume(p.structure) for p in proposals):
        return False
    if record.get("cif_name"):
        s = Structure.from_file(folder / record["cif_name"])
        if s.volume < EVALUATE_FRACTION * elemental_volume(s):
            return False
    return True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--settings", choices=("formation", "default"), default="default")
    ap.add_argument("--dry-run", action="store_true")
    args = ap.parse_args()
    settings = (RelaxSettings(max_prototypes=2, random_budget=0, max_steps=200, max_atoms=12)
                if args.settings == "formation" else RelaxSettings())
    old, new = old_digest(settings), settings.digest()
    carried, redo = [], []
    for path in sorted((args.folder / ".records").glob("*.json")):
        record = json.loads(path.read_text())
        if record.get("settings_digest") != old:
            continue
        if untouched(record["formula"], record, settings, args.folder):
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
