"""What the applicability domain, σ calibration, Tc report rule and hull notes cost per candidate row.

    python research/probe_domain_cost.py CANDIDATES.csv

Times the three models' ``ApplicabilityDomain.assess``, the Tc classifier and the elements-only
hull check on a run's candidates (spreads drawn at random: the cost does not depend on them).
"""

import sys
import time

import numpy as np
import pandas as pd

from discovery.encoding import parse_formulas
from discovery.pipeline import elements_only
from discovery.properties import load_property_model

df = pd.read_csv(sys.argv[1], keep_default_na=False, na_values=[""])
a = parse_formulas(df["formula"].tolist()).amounts
dec = df["decomposition"].fillna("").tolist()
models = {p: load_property_model(p) for p in ("bandgap", "formation_energy", "tc")}
std = np.abs(np.random.default_rng(0).normal(size=len(a))).astype(np.float32) * 0.05
models["tc"].reported_where.predict(a[:100])  # trace first
for _ in range(3):
    t = time.perf_counter()
    for m in models.values():
        m.applicability.assess(a, std)
    t1 = time.perf_counter() - t
    t = time.perf_counter()
    models["tc"].reported_where.predict(a)
    t2 = time.perf_counter() - t
    t = time.perf_counter()
    elements_only(dec)
    t3 = time.perf_counter() - t
    print(f"{len(a)} rows: domain assess x3 {t1:.2f} s, Tc rule {t2:.2f} s, hull notes {t3:.2f} s; "
          f"{(t1 + t2 + t3) / len(a) * 1e6:.1f} us/row")
