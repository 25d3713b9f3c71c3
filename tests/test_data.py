import json
import zipfile

import numpy as np
import pytest

from discovery import data as D
from discovery.known import KnownMaterials


def test_shared_loaders(shared_dir):
    gan = D.load_gan_formulas()
    assert list(gan.columns) == ["formula"] and len(gan) == 251_368
    gap = D.load_mp_bandgap()
    assert list(gap.columns) == ["formula", "bandgap"] and (gap.bandgap > 0).all()
    tc = D.load_supercon_tc()
    assert "Ba0.4K0.6Fe2As2" in set(tc.formula) and tc.attrs["skipped"] == {}


@pytest.mark.data
def test_loaders_read_the_fixture_cuts(monkeypatch):
    """The loaders on tests/data/shared (what a machine without ../shared tests on)."""
    from conftest import FIXTURE_DATA

    monkeypatch.setenv("DISCOVERY_DATA", str(FIXTURE_DATA))
    gan = D.load_gan_formulas()
    assert list(gan.columns) == ["formula"] and len(gan) == 400 and gan.attrs["skipped"] == {}
    gap = D.load_mp_bandgap()
    assert list(gap.columns) == ["formula", "bandgap"] and len(gap) == 300 and (gap.bandgap > 0).all()
    tc = D.load_supercon_tc()
    assert "Ba0.4K0.6Fe2As2" in set(tc.formula) and len(tc) == 600 and tc.attrs["skipped"] == {}
    mp = D.load_mp_compositions()
    assert "NaN" in set(mp.formula) and len(mp) == 301  # sodium nitride, not a missing value


def test_loader_reports_skipped_rows(tmp_path, monkeypatch, caplog):
    (tmp_path / "mp_bandgap.csv").write_text("formula,bandgap\nFe2O3,2.0\nQq2,1.0\nNaCl,x\n,3\n")
    monkeypatch.setenv("DISCOVERY_DATA", str(tmp_path))
    df = D.load_mp_bandgap()
    assert df.formula.tolist() == ["Fe2O3"]
    assert df.attrs["skipped"] == {"unknown element": 1, "non-numeric bandgap": 1,
                                   "empty formula": 1}
    assert "skipped 3 of 4 rows" in caplog.text


def _fake_wheel(path):
    with zipfile.ZipFile(path, "w") as z:
        for t in D.CRABNET_TABLES:
            rows = "formula,target\nFe2O3,-1.0\nFe4O6,-1.5\nNaCl,-2\n"
            if t.name == "oqmd_formation_enthalpy_train":
                rows += "Qq2,1\n"
            z.writestr(t.member, rows)
    return path


def test_fetch_from_wheel_dedupes_and_is_idempotent(tmp_path):
    whl = _fake_wheel(tmp_path / "crabnet-2.0.8-py3-none-any.whl")
    cache = tmp_path / "cache"
    m = D.fetch_crabnet(wheel=whl, cache=cache)
    assert not m["cached"]
    t = m["tables"]["oqmd_formation_enthalpy_train"]
    assert t["duplicates_removed"] == 1 and t["skipped"] == {"unknown element": 1}
    df = D.load_oqmd_formation_enthalpy("train", cache)
    assert sorted(df.formation_enthalpy) == [-2.0, -1.5]  # the lowest Fe2O3 entry kept
    gap = D.load_crabnet_table("matbench_mp_gap", cache)
    assert len(gap) == 3  # band gaps are not deduplicated by energy
    assert D.fetch_crabnet(wheel=whl, cache=cache)["cached"]
    assert json.loads((cache / "crabnet" / "manifest.json").read_text())["version"] == 1


def test_fetch_errors(tmp_path):
    bad = tmp_path / "bad.whl"
    bad.write_text("not a zip")
    with pytest.raises(D.DataError, match="corrupt zip"):
        D.fetch_crabnet(wheel=bad, cache=tmp_path / "c")
    with pytest.raises(D.DataError, match="discover data fetch"):
        D.load_oqmd_formation_enthalpy("train", tmp_path / "empty")
    with pytest.raises(D.DataError, match="unknown split"):
        D.load_oqmd_formation_enthalpy("dev", tmp_path)


def test_known_materials_reduced_membership():
    km = KnownMaterials.from_formulas(["Fe2O3", "NaCl", "Qq", "Ba0.5O"])
    assert len(km) == 2 and km.skipped == {"unknown element": 1, "non-integer amount": 1}
    assert "Fe4O6" in km and "Na2Cl2" in km and "Fe3O4" not in km
    counts = np.zeros((3, 85), dtype=np.int8)
    from discovery.elements import INDEX

    counts[0, [INDEX["Fe"], INDEX["O"]]] = [6, 9]
    counts[1, [INDEX["Fe"], INDEX["O"]]] = [3, 4]
    assert km.contains_counts(counts).tolist() == [True, False, False]


def test_default_known_index(crabnet_cache):
    km = KnownMaterials.default()
    assert len(km) > 390_000
    assert km.contains(["Fe2O3", "Fe4O6", "Li2O", "Li4O2"]).all()
    assert not km.contains(["Xe7Pu8Ac5"]).any()


def test_fetch_offline_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # pip cannot reach any index: as if offline
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "nowhere"))
    with pytest.raises(D.DataError, match="could not download crabnet==2.0.8") as info:
        D.fetch_crabnet(cache=tmp_path / "c")
    assert "\n" not in str(info.value)
