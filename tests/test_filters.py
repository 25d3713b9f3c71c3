import numpy as np
import pytest

from discovery.data import load_gan_formulas
from discovery.encoding import parse_formulas
from discovery.filters.chemistry import OxidationStateError, smact_screen
from discovery.filters.smact_reference import smact_verdicts
from discovery.generation.baselines import EnhancedRandom


@pytest.fixture(scope="module")
def gan_counts():
    from conftest import use_training_data

    with pytest.MonkeyPatch.context() as mp:
        use_training_data(mp)  # ../shared's GAN set, else its cut in tests/data
        gan = load_gan_formulas()["formula"]
    f = gan.sample(min(2000, len(gan)), random_state=1).tolist()
    return parse_formulas(f).amounts.astype(np.int64)


@pytest.mark.data
@pytest.mark.parametrize("oxidation_states", ["smact14", "icsd24"])
def test_screen_matches_smact(gan_counts, oxidation_states):
    random = EnhancedRandom().fit(gan_counts).sample_counts(1500, seed=2)
    counts = np.concatenate([gan_counts, random])
    cn, en = smact_screen(counts, oxidation_states, max_pairs=50_000)  # many chunks
    rcn, ren = smact_verdicts(counts, oxidation_states)
    assert np.array_equal(cn, rcn) and np.array_equal(en, ren)
    dcn, den = smact_screen(counts[:1500], oxidation_states, dp_above=0)  # all by the DP path
    assert np.array_equal(dcn, rcn[:1500]) and np.array_equal(den, ren[:1500])
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


def test_many_element_composition_stays_bounded():
    from discovery.elements import INDEX

    c = np.zeros((2, 85), dtype=np.int64)
    els = ["Li", "Na", "K", "Mn", "Fe", "Co", "Ni", "Cu", "Mo", "W", "Re", "Os", "O"]
    c[0, [INDEX[e] for e in els]] = 1
    c[1, [INDEX[e] for e in els[:-1]]] = 1
    cn, en = smact_screen(c)  # ~10^8 assignments each: decided without enumerating them
    # Neutral assignments exist (Mn, Mo, W, Re take negative states), but no Pauling-balanced
    # one: with O the only element allowed to be an anion, twelve cations outweigh O(-2).
    assert cn.tolist() == [True, True] and en.tolist() == [False, False]


def test_dp_path_equals_enumeration_on_large_compositions():
    rng = np.random.default_rng(5)
    c = np.zeros((60, 85), dtype=np.int64)
    for row in c:
        row[rng.choice(85, 8, replace=False)] = rng.integers(1, 5, 8)
    fast = smact_screen(c, dp_above=10**9)  # force enumeration (~10^5 assignments each)
    dp = smact_screen(c, dp_above=0)
    assert np.array_equal(fast[0], dp[0]) and np.array_equal(fast[1], dp[1]) and fast[0].any()
