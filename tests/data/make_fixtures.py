"""Cut the small training-data fixtures under tests/data/shared/ from ../shared/data.

    python tests/data/make_fixtures.py [SHARED_DATA_DIR]

Each fixture keeps the source file's header, its first data row and a seeded random choice
of further rows (numpy default_rng(26)), in the source's row order; nothing else is changed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROWS = {"oqmd_gan_formulas.csv": 400, "mp_compositions.csv": 300, "mp_bandgap.csv": 300,
        "supercon_tc.csv": 600}
ALWAYS = {"mp_compositions.csv": ["NaN"]}  # sodium nitride: the formula a default CSV reader loses


def main(src: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for name, n in ROWS.items():
        lines = (src / name).read_text().splitlines()
        header, rows = lines[0], lines[1:]
        rng = np.random.default_rng(26)
        keep = {0, *rng.choice(np.arange(1, len(rows)), n - 1, replace=False).tolist()}
        keep |= {i for i, r in enumerate(rows) if r.split(",")[0] in ALWAYS.get(name, [])}
        (dest / name).write_text("\n".join([header, *(rows[i] for i in sorted(keep))]) + "\n")
        print(f"{name}: {len(keep)} of {len(rows):,} rows")


if __name__ == "__main__":
    here = Path(__file__).resolve().parent
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else here.parents[2] / "shared" / "data", here / "shared")
