import numpy as np
import pandas as pd
import pytest
from pymatgen.core import Composition

from discovery.elements import INDEX
from discovery.encoding import CompositionError
from discovery.featurizers import GanEmbedding, OneHot, load_embedding
from discovery.model_files import ModelFileError


@pytest.fixture()
def t():
    return np.random.default_rng(0).uniform(-1, 1, (85, 6)).astype(np.float32)


def test_gan_embedding_hand_checked(t):
    f = GanEmbedding(t)
    x = f.transform(["Fe2O3", Composition("NaCl")])
    np.testing.assert_allclose(x[0], 2 * t[INDEX["Fe"]] + 3 * t[INDEX["O"]], rtol=1e-6)
    np.testing.assert_allclose(x[1], t[INDEX["Na"]] + t[INDEX["Cl"]], rtol=1e-6)
    frac = GanEmbedding(t, amounts="fractions").transform(["Fe2O3", "Fe4O6"])
    np.testing.assert_allclose(frac[0], frac[1], rtol=1e-6)
    np.testing.assert_allclose(frac[0], 0.4 * t[INDEX["Fe"]] + 0.6 * t[INDEX["O"]], rtol=1e-6)
    assert f.feature_labels()[0] == "gan_embedding_0" and len(f.feature_labels()) == 6


def test_fractional_amounts(t):
    x = OneHot().transform(["Ba0.4K0.6Fe2As2"])
    assert x[0, INDEX["Ba"]] == pytest.approx(0.4) and x[0, INDEX["As"]] == 2
    e = GanEmbedding(t).transform(["Ba0.4K0.6Fe2As2"])
    np.testing.assert_allclose(e[0], x[0] @ t.astype(np.float64), rtol=1e-6)


def test_featurize_dataframe(t):
    df = pd.DataFrame({"formula": ["Fe2O3", "Qq2", "NaCl"], "y": [1, 2, 3]}, index=[10, 11, 12])
    with pytest.raises(CompositionError, match="'Qq2'"):
        OneHot().featurize_dataframe(df)
    out = GanEmbedding(t).featurize_dataframe(df, ignore_errors=True)
    assert list(out.index) == [10, 11, 12] and out.loc[11, "featurize_error"] == "unknown element 'Qq'"
    assert np.isnan(out.loc[11, "gan_embedding_0"]) and not np.isnan(out.loc[12, "gan_embedding_0"])
    assert out.shape[1] == 2 + 6 + 1


def test_bad_input_and_bad_embedding(tmp_path, t):
    with pytest.raises(CompositionError, match="empty input"):
        OneHot().transform([])
    with pytest.raises(CompositionError, match="'Xx'"):
        GanEmbedding(t).transform(["Xx"])
    with pytest.raises(ModelFileError, match="not found"):
        load_embedding(tmp_path / "T.npy")
    (tmp_path / "bad.npy").write_bytes(b"nope")
    with pytest.raises(ModelFileError, match="corrupt"):
        load_embedding(tmp_path / "bad.npy")


def test_gan_embedding_rows_do_not_depend_on_their_batch(t):
    """A row's features are bit-identical whatever rows it is batched with (BLAS blocking by
    batch size changed the last bit, and a local and a Dask run then printed different Tc), and
    equal the plain matrix product to rounding."""
    rng = np.random.default_rng(0)
    a = np.zeros((3000, 85))
    for i in range(len(a)):
        k = rng.integers(1, 9)
        a[i, rng.choice(85, k, replace=False)] = rng.integers(1, 13, k)
    feat = GanEmbedding(t, amounts="fractions")
    full = feat.transform_amounts(a)
    cuts = np.sort(rng.choice(np.arange(1, len(a)), 40, replace=False))
    parts = np.concatenate([feat.transform_amounts(c) for c in np.split(a, cuts)])
    assert np.array_equal(parts, full)
    assert np.array_equal(feat.transform_amounts(a[::-1]), full[::-1])
    plain = (a / a.sum(1, keepdims=True)) @ t.astype(np.float64)
    np.testing.assert_allclose(full, plain, rtol=1e-12, atol=1e-12)
    assert feat.transform_amounts(np.zeros((0, 85))).shape == (0, t.shape[1])


def test_batch_invariant_matmul_pads_with_zeros_not_the_first_row():
    """A row's empty slots add exact zeros even when T's first row is not finite."""
    from discovery.featurizers import batch_invariant_matmul

    t = np.arange(12, dtype=np.float64).reshape(4, 3)
    t[0, 0] = np.inf
    a = np.array([[0, 3.0, 0, 0], [0, 1.0, 2.0, 0]])
    alone = batch_invariant_matmul(a[:1], t)
    np.testing.assert_array_equal(batch_invariant_matmul(a, t)[:1], alone)
    np.testing.assert_array_equal(alone, a[:1, 1:] @ t[1:])
