"""A floor under a proposal's volume, from the elements' molar volumes (pymatgen's table of the
elemental solids at ambient conditions).

Template scaling by cubed atomic radii can put light atoms (H, N, O) into a heavy template at a
fraction of a real crystal's volume: an H3N assignment to a bcc template started at 1.0 Å³ per
atom and one to a hexagonal template at 0.38 Å³, where every atom has thousands of neighbours
within CHGNet's cutoff and one evaluation took a process past 10 GB. Real crystals sit well above
the floor: of the CSPML benchmark's 90 ground-truth crystals the densest (Al2O3) has 0.365 of the
summed elemental volume; the floor is 0.25 of it for a start and 0.15 for any geometry the
relaxation evaluates.
"""

from __future__ import annotations

from pymatgen.core import Element, Structure

START_FRACTION = 0.25  # a proposal starts at no less than this share of the summed elemental volumes
EVALUATE_FRACTION = 0.15  # a relaxation that compresses below this share has collapsed
_AVOGADRO_CM3_PER_A3 = 0.6022140857  # cm³/mol per Å³/atom


def elemental_volume(structure: Structure) -> float:
    """Σ over the cell's atoms of their element's molar volume, in Å³."""
    return sum(float(Element(site.specie.symbol).molar_volume) for site in structure) / _AVOGADRO_CM3_PER_A3


def with_volume_floor(structure: Structure) -> Structure:
    """``structure`` scaled up (shape and fractional coordinates kept) to START_FRACTION of its
    elemental volume when it starts below it; otherwise the same object."""
    floor = START_FRACTION * elemental_volume(structure)
    if structure.volume >= floor:
        return structure
    out = structure.copy()
    out.scale_lattice(floor)
    return out
