"""Write discovery/resources/magpie_elements.csv from matminer's own Magpie elemental data.

    python pipelines/resources/build_magpie_table.py [--out discovery/resources/magpie_elements.csv]

Rows are the 85 ELEMENTS in matrix order, columns the 22 properties of
``ElementProperty.from_preset("magpie")`` in matminer's order. Values are read from that
preset's data source, i.e. exactly what its ``featurize`` uses (matminer imputes missing
values with the property's mean over all elements when ``impute_nan=True``, the preset's
default). The script also reports how many cells matminer's raw tables lack for these
elements; a cell with no value even after the preset's handling is written as NaN.
Floats are written with ``repr`` so they round-trip exactly.
"""

from __future__ import annotations

import argparse
import csv
import math
from pathlib import Path

from matminer.featurizers.composition import ElementProperty
from matminer.utils.data import MagpieData
from pymatgen.core.periodic_table import Element

from discovery.elements import ELEMENTS

DEFAULT_OUT = Path(__file__).resolve().parents[2] / "discovery" / "resources" / "magpie_elements.csv"


def _value(source: MagpieData, symbol: str, prop: str) -> float:
    v = source.get_elemental_property(Element(symbol), prop)
    return float("nan") if v is None else float(v)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args()

    preset = ElementProperty.from_preset("magpie")
    props = list(preset.features)
    raw = MagpieData(impute_nan=False)
    missing_raw = [(el, p) for p in props for el in ELEMENTS if math.isnan(_value(raw, el, p))]

    rows = [[el, *(repr(_value(preset.data_source, el, p)) for p in props)] for el in ELEMENTS]
    n_nan = sum(r.count("nan") for r in rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["element", *props])
        w.writerows(rows)
    print(f"wrote {args.out}: {len(rows)} elements x {len(props)} properties "
          f"(preset impute_nan={preset.data_source.impute_nan}); "
          f"{len(missing_raw)} cells missing in matminer's raw tables"
          f"{': ' + ', '.join(f'{e}/{p}' for e, p in missing_raw) if missing_raw else ''}; "
          f"{n_nan} NaN cells written")


if __name__ == "__main__":
    main()
