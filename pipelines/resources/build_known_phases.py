"""Build the known phases shipped in the package (discovery/resources/known_phases.npz).

OQMD's DFT formation enthalpies from the fetched crabnet tables (`discover data fetch`),
|ΔHf| > 5 eV/atom dropped (data errors), and only the phases at a vertex of their own chemical
system's hull kept (``PhaseHulls.stable_only``: the others never shape a hull, so every e_hull
is the same, and the file and the per-system hulls are ~5x smaller). `discover run` measures
e_hull against them, so a machine with only PyPI gets the same numbers as one with the data
fetched.

    python pipelines/resources/build_known_phases.py
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from discovery.data import DataError, cache_dir  # noqa: E402
from discovery.stability import SHIPPED_PHASES, PhaseHulls  # noqa: E402


def main() -> None:
    try:
        hulls = PhaseHulls.oqmd(cache=cache_dir()).stable_only()
    except DataError as exc:
        raise SystemExit(f"error: {exc}") from None
    hulls.save(SHIPPED_PHASES)
    print(f"wrote {SHIPPED_PHASES} ({len(hulls):,} phases on their own system's hull, "
          f"{SHIPPED_PHASES.stat().st_size:,} bytes; {hulls.sources})")


if __name__ == "__main__":
    main()
