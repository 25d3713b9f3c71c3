"""Which potential puts CSPML's ground truth below the structure the stage picked? (issue 28)

For each crystal, the ground-truth CIF and the stage's CIF (from the bench's cache,
``<cache>/bench_structures/<section>/<formula>.cif``: the last bench run's pick; session 18 ran
this on session 17's CHGNet-only picks) are reduced to primitive cells and relaxed the
same way (ase FrechetCellFilter, BFGS, fmax 0.05 eV/Å, at most 300 steps, one torch thread) with
one potential; one JSON line per crystal with both energies per atom. Run once per potential
and compare E(truth) − E(picked): session 18 found SevenNet-0 putting the truth lower for 5 of
the 7 in-library misses where CHGNet did so for 2 (BN and SiO2, by 0.1 and 3.3 meV/atom), which
is why the stage re-ranks CHGNet's lowest with SevenNet-0.

    python research/probe_rerank_truth.py chgnet library:Eu2MgTl,library:BN,rest:Eu(CuSb)2
    python research/probe_rerank_truth.py SevenNet-0 library:Eu2MgTl,library:BN,rest:Eu(CuSb)2
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import time
import warnings

import torch
from ase.filters import FrechetCellFilter
from ase.optimize import BFGS
from pymatgen.core import Structure
from pymatgen.io.ase import AseAtomsAdaptor

from discovery.data import cache_dir


def calculator(model: str):
    if model == "chgnet":
        from chgnet.model import CHGNet
        from chgnet.model.dynamics import CHGNetCalculator

        with contextlib.redirect_stdout(io.StringIO()):
            return CHGNetCalculator(model=CHGNet.load(verbose=False), use_device="cpu")
    from sevenn.calculator import SevenNetCalculator

    return SevenNetCalculator(model=model, device="cpu")


def relax(structure: Structure, calc) -> tuple[float, int, int]:
    atoms = AseAtomsAdaptor.get_atoms(structure.get_primitive_structure())
    atoms.calc = calc
    opt = BFGS(FrechetCellFilter(atoms), logfile=None)
    opt.run(fmax=0.05, steps=300)
    return float(atoms.get_potential_energy()) / len(atoms), int(opt.nsteps), len(atoms)


def main() -> None:
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    model, names = sys.argv[1], sys.argv[2].split(",")
    calc = calculator(model)
    bench = cache_dir() / "bench_structures"
    for name in names:
        section, formula = name.split(":")
        out = {"model": model, "formula": formula}
        for label, path in (("truth", bench / "cspml_ground_truth" / f"{formula}.cif"),
                            ("chosen", bench / section / f"{formula}.cif")):
            t0 = time.process_time()
            try:
                energy, steps, atoms = relax(Structure.from_file(path), calc)
            except Exception as exc:  # a probe: record and go on
                energy, steps, atoms = None, 0, 0
                out[f"{label}_error"] = str(exc)[:80]
            out |= {label: energy, f"{label}_steps": steps, f"{label}_atoms": atoms,
                    f"{label}_cpu": round(time.process_time() - t0, 1)}
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
