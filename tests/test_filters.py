import numpy as np
import pytest

from discovery.data import load_gan_formulas
from discovery.encoding import parse_formulas
from discovery.filters.chemistry import OxidationStateError, smact_screen
from discovery.filters.smact_reference import smact_verdicts
from discovery.gan.baseline import EnhancedRandom


@pytest.fixture(scope="module")
def gan_counts(shared_dir):
    f = load_gan_formulas()["formula"].sample(2000, random_state=1).tolist()
    return parse_formulas(f).amounts.astype(np.int64)


@pytest.mark.parametrize("oxidation_states", ["smact14", "icsd24"])
def test_screen_matches_smact(gan_counts, oxidation_states):
    random = EnhancedRandom().fit(gan_counts).sample_counts(1500, seed=2)
    counts = np.concatenate([gan_counts, random])
    cn, en = smact_screen(counts, oxidation_states, max_pairs=50_000)  # many chunks
    rcn, ren = smact_verdicts(counts, oxidation_states)
    assert np.array_equal(cn, rcn) and np.array_equal(en, ren)
    assert 0.2 < cn.mean() < 0.8 and en.sum() < cn.sum()  # both verdicts occur


def test_screen_edge_cases():
    c = parse_formulas(["Fe", "NaCl", "NaCl2", "Fe2O3", "Fe4O6", "PmCl3"]).amounts.astype(np.int64)
    c = np.vstack([c, np.zeros((1, 85), dtype=np.int64)])
    cn, en = smact_screen(c)
    assert cn.tolist() == [True, True, False, True, True, True, False]
    assert en.tolist() == [True, True, False, True, True, False, False]  # Pm: no Pauling EN
    rcn, ren = smact_verdicts(c[:-1])
    assert rcn.tolist() == cn[:-1].tolist() and ren.tolist() == en[:-1].tolist()


def test_unknown_oxidation_set():
    with pytest.raises(OxidationStateError, match="'nope'"):
        smact_screen(np.zeros((1, 85), dtype=np.int64), "nope")
