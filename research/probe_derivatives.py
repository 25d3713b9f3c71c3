"""Probe: which of CSPML's 90 crystals are ordered derivatives of an AFLOW template, and does the
derivative pool hold them? (issue 28)

For each ground-truth crystal whose prototype pymatgen's AFLOW library lacks (at most 60 atoms),
merge each pair of its elements (one replaced by the other) and ask pymatgen's prototype matcher whether
the merged crystal is a library prototype. Then, for those, build ``derivatives(comp, CAP, 24)``
and report where in the pool StructureMatcher (default tolerances) matches the unrelaxed
decoration to the truth.

    python research/probe_derivatives.py            # CAP 24, the stage's default
    python research/probe_derivatives.py 300

Measured 2026-12-06 (CAP 24): 13 of the 67 merge onto a library prototype (Ba(FeAs)2, Eu(Al2Cu)4,
Eu(CuSb)2, Gd(SiOs)2, LaAl3Au, LiCoO2, LiPF6, LiSm2IrO6, MnGa(CuSe2)2, Pr2ZnPtO6, Rb2TlAgCl6,
SmZnPd, U2SbN2). With one ordering of each split in turn, the pool of 24 held the truth for 9 of
them (Ba(FeAs)2, Gd(SiOs)2 and LiPF6 the random search already found); at CAP 300 Eu(CuSb)2 was
77th, U2SbN2 31st, SmZnPd 279th. With each further ordering of a split counted half as likely
(``derivatives.ORDERING_DECAY``, session 21) it holds 10: Eu(CuSb)2 is 21st. SmZnPd and U2SbN2
stay out; LiCoO2's cation ordering needs a supercell the enumeration does not build.
"""

from __future__ import annotations

import itertools
import sys
import warnings

from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Structure

from discovery.data import cache_dir
from discovery.structure.derivatives import derivatives
from discovery.structure.prototypes import prototype_matcher


def main() -> None:
    cap = int(sys.argv[1]) if len(sys.argv) > 1 else 24
    warnings.filterwarnings("ignore")
    work = cache_dir() / "bench_structures"
    truth = {}
    for path in sorted((work / "cspml_ground_truth").glob("*.cif")):
        s = Structure.from_file(path)
        truth[s.composition.reduced_formula] = s
    proto, matcher = prototype_matcher(), StructureMatcher()
    for formula, s in truth.items():
        if proto.get_prototypes(s) or len(s) > 60:
            continue  # in the library, or too large to match quickly
        merged = []
        for a, b in itertools.permutations([e.symbol for e in s.composition.elements], 2):
            t = s.copy()
            t.replace_species({b: a})
            if found := proto.get_prototypes(t):
                merged.append(f"{b}->{a}: {found[0]['tags']['aflow']}")
        if not merged:
            continue
        pool = derivatives(s.composition, cap, 24)
        hits = [i for i, p in enumerate(pool) if matcher.fit(p.structure, s)]
        print(f"{formula}: merges {merged[0]}; truth at {hits or 'none'} of {len(pool)}", flush=True)


if __name__ == "__main__":
    main()
