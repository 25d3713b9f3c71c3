"""Build the known phases shipped in the package (discovery/resources/known_phases.npz).

OQMD's DFT formation enthalpies from the fetched crabnet tables (`discover data fetch`),
|ΔHf| > 5 eV/atom dropped (data errors), only the phases below the elements kept (the others
cannot lie on a lower hull). `discover run` measures e_hull against them, so a machine with
only PyPI gets the same numbers as one with the data fetched.

    python pipelines/build_known_phases.py
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from discovery.data import DataError, cache_dir  # noqa: E402
from discovery.stability import SHIPPED_PHASES, PhaseHulls  # noqa: E402


def main() -> None:
    try:
        hulls = PhaseHulls.oqmd(cache=cache_dir())
    except DataError as exc:
        raise SystemExit(f"error: {exc}") from None
    hulls.save(SHIPPED_PHASES)
    print(f"wrote {SHIPPED_PHASES} ({len(hulls):,} phases below the elements, "
          f"{SHIPPED_PHASES.stat().st_size:,} bytes; {hulls.sources})")


if __name__ == "__main__":
    main()
