"""CIF files of relaxed structures, written whole (temp file + rename)."""

from __future__ import annotations

from pathlib import Path

from pymatgen.core import Structure

from discovery.atomic import atomic_write

SYMPREC = 0.1  # Å: the tolerance for the space group and the symmetrized CIF


def cif_text(structure: Structure) -> str:
    """The structure as a symmetrized CIF (plain P1 where the symmetry search fails)."""
    from pymatgen.io.cif import CifWriter

    try:
        return str(CifWriter(structure, symprec=SYMPREC))
    except Exception:  # spglib finds no consistent setting: the plain cell is still right
        return str(CifWriter(structure))


def spacegroup(structure: Structure) -> str:
    """International symbol and number, e.g. 'Fm-3m (225)'."""
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    try:
        sga = SpacegroupAnalyzer(structure, symprec=SYMPREC)
        return f"{sga.get_space_group_symbol()} ({sga.get_space_group_number()})"
    except Exception:
        return "P1 (1)"


def write_cif(path: Path, text: str) -> None:
    atomic_write(Path(path), lambda p: p.write_text(text))
