"""Relaxation with a universal potential: ase's FrechetCellFilter (cell and positions) and an ase
optimizer with a step cap, one torch thread per process, torch's CUDA device where there is one.

CHGNet relaxes every structure; SevenNet-0 (``sevenn``, weights in its wheel) re-relaxes the
lowest few to decide which is lowest (``RelaxSettings.rerank``). Both predict energies in the
Materials Project's corrected (MP2020-compatible) frame: they are used as they are, with no
further corrections; reported energies are CHGNet's.
"""

from __future__ import annotations

import contextlib
import io
import math
import warnings
from dataclasses import dataclass

import numpy as np
from pymatgen.core import Composition, Element, Structure

from discovery.structure.settings import RelaxSettings

MAX_Z = 94  # CHGNet's element embedding covers H..Pu
MODELS = ("chgnet", "sevennet")
SEVENNET = "7net-0"  # SevenNet-0 (11Jul2024), trained on MPtrj as CHGNet: Z 1-83 and 89-94
MIN_DISTANCE = 0.5  # Å: closer atoms mean the relaxation collapsed
VOLUME_RATIO = 5.0  # volume per atom growing or shrinking more than this: exploded
ENERGY_FLOOR = -20.0  # eV/atom: below every real compound's energy

_STATE: dict[str, object] = {}


@dataclass
class Relaxed:
    """A relaxation's end: the structure, its energy per atom, whether forces fell below fmax
    within the step cap, steps taken, and (empty when fine) why it is not usable."""

    structure: Structure
    energy_per_atom: float
    converged: bool
    steps: int
    note: str = ""

    @property
    def ok(self) -> bool:
        return not self.note


def uncovered_elements(comp: Composition) -> list[str]:
    """Elements CHGNet has no embedding for (beyond Pu)."""
    return [str(e) for e in comp.elements if Element(str(e)).Z > MAX_Z]


def device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def calculator(model: str = "chgnet"):
    """This process's ase calculator of ``model`` (loaded once; torch limited to one thread)."""
    if model not in MODELS:
        raise ValueError(f"unknown potential {model!r}; use {' or '.join(MODELS)}")
    if model not in _STATE:
        import torch

        torch.set_num_threads(1)
        # chgnet 0.4.2 converts a tensor that requires grad on every call: a warning, not a fault
        warnings.filterwarnings("ignore", message="Converting a tensor with requires_grad",
                                category=UserWarning)
        if model == "chgnet":
            from chgnet.model import CHGNet
            from chgnet.model.dynamics import CHGNetCalculator

            with contextlib.redirect_stdout(io.StringIO()):
                net = CHGNet.load(verbose=False)
                _STATE[model] = CHGNetCalculator(model=net, use_device=device())
            _STATE["version"] = f"CHGNet {net.version}"
        else:
            with warnings.catch_warnings():  # "no tensor product accelerator": the CPU path is it
                warnings.simplefilter("ignore")
                from sevenn.calculator import SevenNetCalculator

                _STATE[model] = SevenNetCalculator(model=SEVENNET, device=device())
    return _STATE[model]


def model_version() -> str:
    """'CHGNet 0.3.0': the weights the energies come from."""
    calculator()
    return str(_STATE["version"])


def rerank_version(model: str) -> str:
    """'SevenNet-0 (sevenn 0.13.0)': the weights that decide which relaxed structure is lowest."""
    import sevenn

    return f"SevenNet-0 (sevenn {sevenn.__version__})" if model == "sevennet" else model


def covered(comp: Composition, model: str) -> bool:
    """Whether ``model`` has every element of ``comp``."""
    if model == "sevennet":
        numbers = set(getattr(calculator(model), "type_map", {}) or ())
        return all(Element(str(e)).Z in numbers for e in comp.elements)
    return not uncovered_elements(comp)


def _min_distance(structure: Structure) -> float:
    if len(structure) < 2:
        lat = structure.lattice
        return float(min(lat.abc))
    dist = structure.distance_matrix
    return float(dist[~np.eye(len(structure), dtype=bool)].min())


class _RunawayCell(Exception):
    """A cell left the window of volume per atom or thinnest height (the message says which)."""


def _guarded(inner, check):
    """``inner`` (an ase calculator) behind ``check(atoms)``, called before every evaluation:
    the optimizer asks for forces at each new geometry before any observer sees it, and a
    collapsing or flattening cell puts ever more periodic images inside the potential's
    cutoff: one such evaluation of an H3N template in bench_structures took a process past
    24 GB, killed by the kernel."""
    from ase.calculators.calculator import Calculator, all_changes

    class Guarded(Calculator):
        implemented_properties = inner.implemented_properties

        def calculate(self, atoms=None, properties=None, system_changes=all_changes):
            super().calculate(atoms, properties, system_changes)
            check(self.atoms)
            inner.calculate(self.atoms, properties, system_changes)
            self.results = dict(inner.results)

    return Guarded()


def _min_height(cell: np.ndarray) -> float:
    """The cell's smallest distance between opposite faces (volume / face area): the periodic
    images a neighbor search must scan grow as it shrinks."""
    areas = np.linalg.norm(np.cross(cell[[1, 2, 0]], cell[[2, 0, 1]]), axis=1)
    return float(abs(np.linalg.det(cell)) / areas.max())


def relax(structure: Structure, settings: RelaxSettings, cell: bool = True, model: str = "chgnet") -> Relaxed:
    """Relax ``structure`` with ``model`` (cell too unless ``cell`` is False, as for a molecule in a box)."""
    from ase.filters import FrechetCellFilter
    from ase.optimize import BFGS, FIRE
    from pymatgen.io.ase import AseAtomsAdaptor

    from discovery.structure.volume import EVALUATE_FRACTION, elemental_volume

    atoms = AseAtomsAdaptor.get_atoms(structure)
    start_volume, start_height = structure.volume / len(structure), _min_height(atoms.cell[:])
    floor = EVALUATE_FRACTION * elemental_volume(structure) / len(structure)

    def check_cell(at) -> None:
        """Refuse a geometry whose cell ran away, before the potential sees it."""
        per_atom = at.get_volume() / len(at)
        if per_atom < floor:
            raise _RunawayCell(f"volume per atom {per_atom:.2g} Å³, below {floor:.2g}")
        ratio = per_atom / start_volume
        if not 1 / VOLUME_RATIO < ratio < VOLUME_RATIO:
            raise _RunawayCell(f"volume per atom x{ratio:.2g}")
        flat = _min_height(at.cell[:]) / start_height
        if flat < 1 / VOLUME_RATIO:
            raise _RunawayCell(f"thinnest cell height x{flat:.2g}")

    atoms.calc = _guarded(calculator(model), check_cell)
    target = FrechetCellFilter(atoms) if cell else atoms
    optimizer = {"FIRE": FIRE, "BFGS": BFGS}[settings.optimizer](target, logfile=None)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            converged = bool(optimizer.run(fmax=settings.fmax, steps=settings.max_steps))
        energy = float(atoms.get_potential_energy()) / len(atoms)
    except _RunawayCell as exc:
        return Relaxed(AseAtomsAdaptor.get_structure(atoms), math.nan, False, int(optimizer.nsteps),
                       f"relaxation exploded ({exc} at step {optimizer.nsteps})")
    except Exception as exc:  # a graph CHGNet cannot build (isolated atom), numerical failure
        return Relaxed(structure, math.nan, False, int(optimizer.nsteps),
                       f"relaxation failed ({type(exc).__name__}: {str(exc).splitlines()[0][:80]})")
    final = AseAtomsAdaptor.get_structure(atoms)
    steps = int(optimizer.nsteps)
    if not math.isfinite(energy) or energy < ENERGY_FLOOR:
        return Relaxed(final, energy, converged, steps, f"relaxation diverged (energy {energy:.3g} eV/atom)")
    # every geometry the potential evaluated, the last one included, passed check_cell
    if _min_distance(final) < MIN_DISTANCE:
        return Relaxed(final, energy, converged, steps,
                       f"relaxation collapsed (atoms {_min_distance(final):.2f} Å apart)")
    return Relaxed(final, energy, converged, steps)
