"""Generators: the registry, seeded and batch-independent sampling, save/load, training from
CSV, ion substitution against pymatgen, and the benchmark metrics on hand-made sets."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from discovery.cli import app
from discovery.elements import INDEX
from discovery.encoding import composition_keys, parse_formulas
from discovery.errors import ConfigError
from discovery.generation import registry
from discovery.generation.metrics import pattern_distance, pattern_shares, recovery_metrics

runner = CliRunner()
FIT = ["Fe2O3", "NaCl", "LiCoO2", "CaTiO3", "MgO", "ZnS", "KBr", "Al2O3", "BaSO4", "Cu2MnAl", "TiNiSn"]


def _counts(formulas):
    return parse_formulas(formulas).amounts.astype(np.int64)


@pytest.fixture(scope="module")
def table():
    from discovery.generation.substitution import SpeciesTable

    return SpeciesTable.from_pymatgen()


# ------------------------------------------------------------------ the protocol
@pytest.mark.parametrize("kind", ["substitution", "substitution-elements", "random", "pattern-random"])
def test_seeded_batch_independent_and_save_load(kind, tmp_path):
    gen = registry.new_generator(kind).fit(FIT)
    a = gen.sample_counts(5000, seed=7, batch_size=1000)
    assert a.shape == (5000, 85) and a.dtype == np.int8
    assert np.array_equal(a, gen.sample_counts(5000, seed=7, batch_size=4096))
    assert np.array_equal(a, np.concatenate(list(gen.iter_counts(5000, 7, 333))))
    assert not np.array_equal(a, gen.sample_counts(5000, seed=8))
    assert (a > 0).sum(1).max() >= 2
    gen.save(tmp_path)
    again = registry.load_generator(kind, tmp_path)
    assert again.card["version"] == gen.card["version"] and type(again) is type(gen)
    assert np.array_equal(a, again.sample_counts(5000, seed=7, batch_size=2048))


def test_unfitted_generator_is_a_one_line_error():
    with pytest.raises(ConfigError, match="not fitted"):
        registry.new_generator("substitution").sample(3)


def test_shipped_generators_load_and_sample_deterministically():
    import discovery

    for kind in ("substitution", "substitution-elements", "random", "pattern-random"):
        gen = registry.load_generator(kind)
        assert gen.card["trained_on"] == "mp_compositions.csv train split"
        assert discovery.sample(20, seed=3, generator=kind) == gen.sample(20, seed=3)
    assert discovery.sample(20, seed=3, generator="substitution") != discovery.sample(20, seed=4,
                                                                                      generator="substitution")


# ------------------------------------------------------------------ registry, CLI, API
def test_registry_names_and_unknown_generator():
    names = registry.generator_names()
    assert names[0] == registry.DEFAULT and set(names) == set(registry.REGISTRY)
    assert {"wgan", "substitution", "random", "pattern-random"} <= set(names)
    with pytest.raises(ConfigError) as err:
        registry.load_generator("gpt")
    msg = str(err.value)
    assert "'gpt'" in msg and all(n in msg for n in names) and "\n" not in msg


def test_generator_version_reads_the_card_without_loading(tmp_path):
    import subprocess
    import sys

    assert registry.generator_version("substitution") == registry.card("substitution")["version"]
    gen = registry.new_generator("random").fit(FIT)
    gen.save(tmp_path)
    shipped = registry.generator_version("random")
    assert registry.generator_version("random", tmp_path) == gen.version != shipped
    with pytest.raises(ConfigError, match="unknown generator"):
        registry.generator_version("nope")
    code = ("import sys; from discovery.generation import registry as r; r.generator_table(); "
            "r.generator_version('wgan'); print('tensorflow' in sys.modules, 'keras' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]  # listing needs no TensorFlow


def test_cli_generators_lists_the_registry():
    import discovery

    r = runner.invoke(app, ["generators"], env={"COLUMNS": "250"})
    assert r.exit_code == 0, r.output
    for row in registry.generator_table():
        assert row["name"] in r.output and row["version"] in r.output
    assert list(discovery.generators().index) == registry.generator_names()


def test_cli_unknown_generator_is_one_line():
    r = runner.invoke(app, ["run", "--n", "10", "--generator", "nope"])
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert "unknown generator 'nope'" in r.output and "substitution" in r.output and "wgan" in r.output


def test_cli_train_reports_skipped_rows(tmp_path):
    data = tmp_path / "train.csv"
    data.write_text("formula,x\nFe2O3,1\nNaCl,2\nXx2O,3\nLiCoO2,4\nFe0.5O,5\nNaN,6\n,7\nMgO,8\n"
                    "Fe2O3,9\nCa12O12,10\nAl2O3,11\n")
    out = tmp_path / "model"
    r = runner.invoke(app, ["train", "pattern-random", "--data", str(data), "--out", str(out)],
                      env={"COLUMNS": "250"})
    assert r.exit_code == 0, r.output
    # Xx2O unknown element, Fe0.5O fractional, '' empty; Ca12O12 reduces to CaO and is kept;
    # NaN is sodium nitride; Fe2O3 twice
    assert "11 rows -> 7 unique compositions (1 duplicate rows merged); skipped 3 rows" in r.output
    assert "unknown element: 1" in r.output and "non-integer amount: 1" in r.output
    assert "'Xx2O'" in r.output and "'Fe0.5O'" in r.output
    gen = registry.load_generator("pattern-random", out)
    assert gen.card["skipped_rows"] == {"unknown element": 1, "non-integer amount": 1, "empty formula": 1}
    assert gen.card["training_compositions"] == 7
    missing = runner.invoke(app, ["train", "substitution", "--data", str(tmp_path / "none.csv")])
    assert missing.exit_code == 2 and "not found" in missing.output and "Traceback" not in missing.output


def test_training_set_from_counts_rejects_negative_and_reduces():
    from discovery.generation.training import training_set

    c = _counts(["Fe4O6", "NaCl", "Fe2O3"])
    c[1, INDEX["Na"]] = -1
    ts = training_set(c)
    assert ts.skipped == {"negative amount": 1} and len(ts.counts) == 1 and ts.duplicates == 1
    assert ts.counts[0, INDEX["Fe"]] == 2


def test_run_spec_records_the_generator_and_resume_refuses_another(tmp_path):
    from discovery.engines.store import RunStore
    from discovery.pipeline import RunSpec

    a = RunSpec(n=10, target="bandgap>1", generator="wgan", generator_version="v1")
    assert a.settings()["generator"] == "wgan" and a.settings()["generator_version"] == "v1"
    RunStore(tmp_path, a, resume=False)
    b = RunSpec(n=10, target="bandgap>1", generator="substitution", generator_version="v2")
    with pytest.raises(ConfigError, match="generator, generator_version"):
        RunStore(tmp_path, b, resume=True)


# ------------------------------------------------------------------ ion substitution
@pytest.fixture(scope="module")
def pmg():
    from pymatgen.core.structure_prediction.substitution_probability import SubstitutionProbability

    return SubstitutionProbability()


def _brute_force_best(sp, formula: str):
    """Most probable neutral assignment by enumerating pymatgen species directly."""
    from pymatgen.core import Composition

    comp = Composition(formula)
    options = [[(str(s), s.oxi_state * comp[el], math.log(sp.get_px(s)))
                for s in sp.species if s.symbol == el.symbol and s.oxi_state] for el in comp]
    best, best_score = None, -math.inf
    for combo in itertools.product(*options):
        if sum(c for _, c, _ in combo) != 0:
            continue
        score = sum(p for _, _, p in combo)
        if score > best_score + 1e-12:
            best, best_score = combo, score
    return best, best_score


def test_species_assignment_matches_pymatgen_enumeration(table, pmg):
    from discovery.generation.substitution import assign_species

    formulas = ["Fe2O3", "LiCoO2", "KMnO4", "CaTiO3", "BaSO4", "Fe3O4", "FeAl", "NaCl", "Cu2O", "LiFePO4"]
    got = assign_species(_counts(formulas), table.elem, table.charge, np.log(table.px))
    for f, row in zip(formulas, got, strict=True):
        best, score = _brute_force_best(pmg, f)
        if best is None:
            assert (row == -1).all(), f
            continue
        mine = {table.species[j] for j in row[row >= 0]}
        assert sum(np.log(table.px[row[row >= 0]])) == pytest.approx(score), f
        assert mine == {s for s, _, _ in best}, f
    assert {table.species[j] for j in got[0][got[0] >= 0]} == {"Fe3+", "O2-"}
    assert {table.species[j] for j in got[2][got[2] >= 0]} == {"K+", "Mn7+", "O2-"}
    assert (got[5] == -1).all() and (got[6] == -1).all()  # Fe3O4: no single-state assignment; FeAl


@pytest.mark.parametrize("sharpness", [1.0, 4.0])
def test_substitution_draws_follow_pymatgen_cond_prob(table, pmg, sharpness):
    """Fit on NaCl: half the samples swap Na+ for another 1+ ion, with frequencies
    proportional to pymatgen's cond_prob(new, Na+) ** sharpness."""
    from pymatgen.core import Species

    from discovery.generation.substitution import IonSubstitution

    gen = IonSubstitution(sharpness=sharpness, observed_only=False).fit(["NaCl"])
    x = gen.sample_counts(20000, seed=5)
    assert ((x > 0).sum(1) == 2).all() and (x[x > 0] == 1).all()
    na_site = x[:, INDEX["Na"]] == 0
    assert (x[na_site, INDEX["Cl"]] == 1).all() and (x[~na_site, INDEX["Na"]] == 1).all()
    assert abs(na_site.mean() - 0.5) < 0.02
    drawn = np.flatnonzero(x[na_site] > 0) % 85
    new = np.bincount(drawn[drawn != INDEX["Cl"]], minlength=85) / na_site.sum()
    sp = pmg
    na = Species("Na", 1)
    expected = np.zeros(85)
    for s in sp.species:
        if s.oxi_state == 1 and s.symbol in INDEX and s.symbol not in ("Na", "Cl"):
            expected[INDEX[s.symbol]] = sp.cond_prob(s, na) ** sharpness
    expected /= expected.sum()
    assert 0.5 * np.abs(new - expected).sum() < 0.03
    assert set(np.flatnonzero(new)) <= set(np.flatnonzero(expected))


def test_substitution_keeps_neutrality_and_skips_unassignable():
    from discovery.filters.chemistry import smact_screen
    from discovery.generation.substitution import IonSubstitution

    gen = IonSubstitution().fit(["Fe2O3", "CaTiO3", "Cu2MnAl", "LiCoO2"])
    assert gen.card["sources"] == 3 and gen.card["skipped_no_neutral_assignment"] == 1
    x = gen.sample_counts(3000, seed=0)
    src = _counts(["Fe2O3", "CaTiO3", "LiCoO2"])
    # every sample is a source with exactly one element replaced by another, same count
    def one_swap(row, s):
        gone, new = (s > 0) & (row == 0), (row > 0) & (s == 0)
        same = (s > 0) & (row > 0)
        return gone.sum() == 1 and new.sum() == 1 and s[gone] == row[new] and (s[same] == row[same]).all()

    assert all(any(one_swap(row, s) for s in src) for row in x)
    patterns = {tuple(sorted(r[r > 0])) for r in x}
    assert patterns <= {(2, 3), (1, 1, 3), (1, 1, 2)}
    assert smact_screen(x)[0].mean() > 0.95  # same-charge swaps stay neutral (table vs smact14 states)
    assert not np.isin(composition_keys(x), composition_keys(src)).any()
    two = IonSubstitution(two_site=1.0).fit(["CaTiO3"]).sample_counts(500, seed=1)
    assert (((two > 0) != (_counts(["CaTiO3"])[0] > 0)).sum(1) == 4).mean() > 0.9


# ------------------------------------------------------------------ benchmark metrics
def test_recovery_metrics_on_a_hand_made_set():
    train = _counts(["Fe2O3", "NaCl"])
    holdout = composition_keys(_counts(["MgO", "ZnS", "CaTiO3", "CuZn"]))
    samples = np.zeros((10, 85), dtype=np.int64)
    samples[:9] = _counts(["Fe4O6", "MgO", "Mg2O2", "ZnS", "Li", "CaTiO3", "KCl", "NaCl", "CuZn"])
    m = recovery_metrics(samples, composition_keys(train), holdout, "smact14", train)
    # compounds: all but Li and the empty row -> 8 of 10
    assert m["empty_or_unary_pct"] == pytest.approx(20.0)
    # distinct compounds: Fe2O3, MgO, ZnS, CaTiO3, KCl, NaCl, CuZn = 7 of 8
    assert m["unique_pct"] == pytest.approx(100 * 7 / 8)
    # novel: MgO, ZnS, CaTiO3, KCl, CuZn; held-out among them: MgO, ZnS, CaTiO3, CuZn
    assert m["novel_pct"] == pytest.approx(100 * 5 / 7)
    assert m["holdout_hits"] == 4 and m["precision_pct"] == pytest.approx(80.0)
    assert m["yield_per_100k"] == pytest.approx(40_000) and m["recovery_pct"] == pytest.approx(100.0)
    # CuZn is the only compound without a neutral smact14 assignment
    assert m["cn_pct"] == pytest.approx(100 * 6 / 7) and m["en_pct"] == pytest.approx(100 * 6 / 7)
    # after CN+EN: novel MgO, ZnS, CaTiO3, KCl, of which 3 held out
    assert m["holdout_hits_cnen"] == 3 and m["precision_cnen_pct"] == pytest.approx(75.0)
    # patterns (reduced): 3-2, 1-1 x6 (MgO, MgO, ZnS, KCl, NaCl, CuZn), 1 (Li), '' , 3-1-1
    # against training 3-2: 0.5, 1-1: 0.5 -> TV = (|.1-.5| + |.6-.5| + .1 + .1 + .1) / 2
    assert m["pattern_distance_pts"] == pytest.approx(100 * (0.4 + 0.1 + 0.3) / 2)


def test_pattern_shares_and_distance():
    s = pattern_shares(_counts(["Fe2O3", "Fe4O6", "NaCl", "Cu2MnAl"]))
    assert s == {"3-2": 0.25, "6-4": 0.25, "1-1": 0.25, "2-1-1": 0.25}
    assert pattern_distance(s, s) == 0.0
    assert pattern_distance({"1-1": 1.0}, {"2-1": 1.0}) == pytest.approx(100.0)


def test_cli_run_with_another_generator(tmp_path, crabnet_cache):
    import json

    out = tmp_path / "c.csv"
    args = ["run", "--n", "3000", "--generator", "substitution", "--target", "bandgap>0.5", "--out", str(out),
            "--no-plot", "--batch-size", "1024"]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    summary = json.loads(out.with_suffix(".summary.json").read_text())
    version = registry.card("substitution")["version"]
    assert summary["settings"]["generator"] == "substitution"
    assert summary["settings"]["generator_version"] == version
    assert summary["models"]["generator"] == f"substitution {version}"
    # same-charge swaps of neutral sources: nearly every unique composition is charge neutral
    assert summary["funnel"]["charge_neutral"] > 0.95 * summary["funnel"]["unique"]
    again = tmp_path / "d.csv"
    rerun = runner.invoke(app, [*args[:-5], "--out", str(again), "--no-plot", "--batch-size", "512"])
    assert rerun.exit_code == 0, rerun.output
    assert out.read_bytes() == again.read_bytes()  # batch size does not change the result
    # a generator trained from a CSV runs from its directory, and the summary says which
    data = tmp_path / "train.csv"
    data.write_text("formula\n" + "\n".join(FIT) + "\n")
    assert runner.invoke(app, ["train", "substitution", "--data", str(data), "--out", str(tmp_path / "sub")]
                         ).exit_code == 0
    trained = json.loads((tmp_path / "sub" / "card.json").read_text())["version"]
    mine = tmp_path / "e.csv"
    r = runner.invoke(app, [*args[:-5], "--out", str(mine), "--no-plot",
                            "--generator-dir", str(tmp_path / "sub")])
    assert r.exit_code == 0, r.output
    summary = json.loads(mine.with_suffix(".summary.json").read_text())
    assert summary["settings"]["generator_version"] == trained != version


def test_generator_dir_of_another_kind_is_named_in_one_line(tmp_path, monkeypatch):
    """Issue 26 item 10: a --generator-dir holding another kind said only that a state file
    was missing; now the line names the kind it holds, before any model loads."""
    import shutil

    import discovery.pipeline as pipeline_mod
    from discovery.data import DataError

    def boom(*args, **kwargs):
        raise AssertionError("models loaded before --generator-dir was checked")

    shutil.copytree(registry.shipped_dir("random"), tmp_path / "random")
    with pytest.raises(ConfigError, match="holds a 'random' generator, not 'pattern-random'; "
                                          "pass --generator random"):
        registry.generator_version("pattern-random", tmp_path / "random")
    monkeypatch.setattr(pipeline_mod.Pipeline, "default", classmethod(boom))
    r = runner.invoke(app, ["run", "--n", "100", "--generator", "random", "--generator-dir",
                            str(registry.shipped_dir("lm"))])
    assert r.exit_code == 2 and "Traceback" not in r.output, r.output
    assert "holds a 'lm' generator, not 'random'; pass --generator lm" in " ".join(r.output.split())
    assert len(r.output.strip().splitlines()) == 1
    # a card that names no kind (the WGAN's): the files say which generator it is
    with pytest.raises(DataError, match="random.npz' not found; .* looks like a 'wgan' generator"):
        registry.load_generator("random", registry.shipped_dir("wgan"))
    assert registry.load_generator("random", tmp_path / "random").card["version"] == \
        registry.card("random")["version"]  # the right kind still loads


def test_wgan_is_a_registered_generator_with_seeded_batch_independent_samples(tmp_path):
    import shutil

    from discovery.gan.sampler import CompositionSampler
    from discovery.generation.base import Generator

    gen = registry.load_generator("wgan")
    assert isinstance(gen, CompositionSampler) and isinstance(gen, Generator) and gen.name == "wgan"
    a = gen.sample_counts(600, seed=(3, 1), batch_size=600)
    assert np.array_equal(a, gen.sample_counts(600, seed=(3, 1), batch_size=256))
    assert not np.array_equal(a, gen.sample_counts(600, seed=(3, 2)))
    for name in ("generator.keras", "card.json"):  # its saved form: what ship_gan.py writes
        shutil.copy2(registry.shipped_dir("wgan") / name, tmp_path / name)
    formulas = gen.sample(300, seed=1)
    assert len(formulas) == 300 and "" not in formulas and gen.sample(100, seed=1) == formulas[:100]
    assert (~(gen.sample_counts(300, seed=1) > 0).any(1)).any()  # there were empty draws to skip
    again = registry.load_generator("wgan", tmp_path)
    assert again.version == gen.version and np.array_equal(a, again.sample_counts(600, seed=(3, 1)))


def test_element_swaps_make_non_ionic_compositions_sources():
    from discovery.generation.substitution import IonSubstitution

    gen = IonSubstitution(element_swaps=True).fit(["Cu2MnAl", "NaCl"])
    assert gen.card["sources"] == 2 and gen.card["sources_ionic"] == 1
    x = gen.sample_counts(4000, seed=2)
    heusler = x[(x == 2).any(1)]
    assert 0.4 < len(heusler) / len(x) < 0.6
    assert ((heusler > 0).sum(1) == 3).all() and (heusler.sum(1) == 4).all()
    kept = (heusler[:, [INDEX["Cu"], INDEX["Mn"], INDEX["Al"]]] > 0).sum(1)
    assert (kept == 2).all()  # exactly one of the three replaced
    pseudo = [s for s in gen.table.species if s.endswith("0")]
    assert "Cu0" in pseudo and len(gen.table.species) == len(set(gen.table.species))
    plain = IonSubstitution().fit(["Cu2MnAl", "NaCl"])
    assert plain.card["sources"] == 1 and plain.card["skipped_no_neutral_assignment"] == 1
