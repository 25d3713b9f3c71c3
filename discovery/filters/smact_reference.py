"""SMACT's own verdicts, one call per unique composition: the reference the fast filter
must match, and the measure of generated samples in the GAN log and report.

Semantics are the paper's: ``smact_validity(comp, use_pauling_test=..., include_alloys=False,
oxidation_states_set="smact14")``.
"""

from __future__ import annotations

import warnings

import numpy as np

from discovery.encoding import composition_keys, reduced_formulas


def smact_verdicts(counts: np.ndarray,
                   oxidation_states_set: str = "smact14") -> tuple[np.ndarray, np.ndarray]:
    """(charge_neutral, electronegativity_balanced) masks for integer count vectors [N, 85].

    EN-balanced implies charge-neutral (SMACT's Pauling test runs on neutral assignments).
    """
    from smact.screening import smact_validity

    keys, first, inverse = np.unique(composition_keys(counts), return_index=True, return_inverse=True)
    formulas = reduced_formulas(np.asarray(counts)[first])
    cn = np.zeros(len(keys), dtype=bool)
    en = np.zeros(len(keys), dtype=bool)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, f in enumerate(formulas):
            if not f:
                continue
            cn[i] = smact_validity(f, use_pauling_test=False, include_alloys=False,
                                   oxidation_states_set=oxidation_states_set)
            if cn[i]:
                en[i] = smact_validity(f, use_pauling_test=True, include_alloys=False,
                                       oxidation_states_set=oxidation_states_set)
    return cn[inverse], en[inverse]
