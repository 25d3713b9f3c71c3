"""The stability benchmark's data and model folders (``pipelines/bench/bench_stability.py``;
``pipelines/train/train_attention_jax.py`` exports its splits and imports GPU-trained members
as its model folders).

Two protocols: Bartel et al.'s CritExam splits (formation energy ``y`` and their decomposition
energy ``ed_bartel``) and OQMD's formation-enthalpy splits (``y``), each as train / val / test
DataFrames with a ``formula`` column.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from discovery.data import load_crabnet_table, load_oqmd_formation_enthalpy

SPLITS = ("train", "val", "test")
SEEDED = re.compile(r"attention-s\d+")  # attention-sN: the attention recipe at seed + N
IMPORTED = re.compile(r"attention-(?!s\d+$)[a-z0-9][a-z0-9_-]*")  # trained elsewhere (train_attention_jax.py)


def bartel_data() -> dict[str, pd.DataFrame]:
    """CritExam's E_f and ΔH_d splits (MP compositions), as one frame per split."""
    out = {}
    for s in SPLITS:
        ef = load_crabnet_table(f"critexam_ef_{s}")
        ed = load_crabnet_table(f"critexam_ed_{s}")
        if not (ef["formula"].to_numpy() == ed["formula"].to_numpy()).all():
            raise SystemExit(f"error: CritExam Ef and Ed {s} splits list different formulas")
        out[s] = ef.assign(ed_bartel=ed["decomposition_energy"].to_numpy()).rename(
            columns={"formation_energy": "y"})
    return out


def oqmd_data() -> dict[str, pd.DataFrame]:
    """OQMD's formation-enthalpy splits (crabnet's tables)."""
    return {s: load_oqmd_formation_enthalpy(s).rename(columns={"formation_enthalpy": "y"}) for s in SPLITS}


def protocol_data(protocol: str) -> dict[str, pd.DataFrame]:
    """``bartel`` or ``oqmd`` (read through this module's functions, so a test can replace them)."""
    return bartel_data() if protocol == "bartel" else oqmd_data()


def save_trained(model, member_dir: Path, name: str, info: dict, data: dict[str, pd.DataFrame]) -> None:
    """Save a benchmark model with the card stack_property_model.py checks a part against (the
    data hash, the split sizes)."""
    from discovery.tasks import frames_sha256

    model.save(member_dir, {"version": f"bench-{name}", "training": info,
                            "data": {"sha256": frames_sha256(*(data[s] for s in SPLITS))},
                            "splits": {s: len(data[s]) for s in SPLITS}})
