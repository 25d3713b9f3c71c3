"""Structure stage: propose crystal structures for a candidate composition, relax them with
CHGNet and re-score the lowest-energy one against the hull of known phases.

Modules, one job each: ``settings`` (what decides a result), ``prototypes`` (AFLOW templates with
element-to-site assignments ordered by substitution probability), ``random_search`` (pyxtal's
random symmetric structures where no template fits), ``relax`` (CHGNet + ase cell filter;
SevenNet-0 re-relaxes the lowest few to pick among them),
``energy`` (elemental references in CHGNet's energy frame, formation energy, ``e_hull``),
``cif`` (CIF files), ``store`` (resumable per-candidate records) and ``stage`` (the per-candidate
task, the engines and the report columns).

torch, chgnet, sevenn, ase and pyxtal are the optional extra ``discovery[structure]``: nothing here
imports them at module level, and :func:`require_extra` names the install command.
"""

from __future__ import annotations

import importlib.util

from discovery.errors import ConfigError

EXTRA_MODULES = ("torch", "chgnet", "sevenn", "ase", "pyxtal", "threadpoolctl")
INSTALL_HINT = 'pip install "discovery[structure]"'


def missing_modules() -> list[str]:
    """The extra's modules that are not installed."""
    return [m for m in EXTRA_MODULES if importlib.util.find_spec(m) is None]


def require_extra(option: str = "--relax-top") -> None:
    """A one-line ConfigError naming the install command when the extra is missing."""
    missing = missing_modules()
    if missing:
        raise ConfigError(f"{option} needs the structure extra ({', '.join(missing)} not installed): "
                          f"{INSTALL_HINT}")
