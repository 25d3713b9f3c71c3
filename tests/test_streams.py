"""One sequence per seed, sliced by position: every registered generator's slices concatenate
to the whole stream, a slice is computed without the blocks before it, skipped compositions
never appear, and bad slices or skip sets are one-line errors."""

from __future__ import annotations

import numpy as np
import pytest

from discovery.encoding import composition_keys
from discovery.errors import ConfigError
from discovery.generation.base import BlockGenerator, SkipTally, attribute_skips, skip_keys
from discovery.generation.registry import generator_names, load_generator


def small(name: str):
    """The shipped generator, the LM with a narrow beam and small blocks so a test is quick."""
    gen = load_generator(name)
    if name == "lm":
        gen = gen.with_options(beam_width=300, block=256)
    return gen


def block_of(gen) -> int:
    return gen.BLOCK if isinstance(gen, BlockGenerator) else int(gen.hparams["block"])


def cuts(gen) -> list[int]:
    """Slice bounds that cross the LM's head and block boundaries (or a block generator's)."""
    b = block_of(gen)
    if not isinstance(gen, BlockGenerator):  # the LM: its head, then blocks
        h = len(gen.beam_head(0))
        return [0, 7, h - 3, h + b + 5, h + 3 * b + 1]
    return [0, 5, b - 1, b + 3, 2 * b + 11]


@pytest.fixture(scope="module", params=generator_names())
def gen(request):
    return small(request.param)


def test_slices_concatenate_to_the_whole_stream(gen):
    bounds = cuts(gen)
    whole = gen.sample_counts(bounds[-1], seed=3)
    assert len(whole) == bounds[-1] and whole.dtype == np.int8
    for bs in (64, 1000):
        parts = [np.concatenate(list(gen.iter_slice(a, z, 3, bs)) or [np.zeros((0, 85), np.int8)])
                 for a, z in zip(bounds, bounds[1:], strict=False)]
        assert [len(p) for p in parts] == list(np.diff(bounds))
        assert np.array_equal(np.concatenate(parts), whole)
    assert not np.array_equal(whole, gen.sample_counts(bounds[-1], seed=4))


def test_skipped_keys_never_appear_and_the_tally_adds_up(gen):
    bounds = cuts(gen)
    plain = gen.sample_counts(bounds[-1], seed=3)
    compounds = plain[(plain > 0).sum(axis=1) >= 2]
    skip = np.unique(composition_keys(compounds[: len(compounds) // 2]))
    tally = SkipTally()
    kept = np.concatenate(list(gen.iter_counts(bounds[-1], 3, 500, skip=skip, tally=tally)))
    assert len(kept) == bounds[-1]
    assert not np.isin(composition_keys(kept), skip).any()
    assert tally.skipped > 0
    parts, total = [], 0
    for a, z in zip(bounds, bounds[1:], strict=False):
        t = SkipTally()
        parts.extend(gen.iter_slice(a, z, 3, 333, skip, t))
        total += t.skipped
    assert np.array_equal(np.concatenate(parts), kept) and total == tally.skipped


def test_a_slice_draws_only_the_blocks_it_touches():
    gen = load_generator("random")
    calls = []
    orig = gen._block
    gen._block = lambda rng, size: calls.append(size) or orig(rng, size)
    b = gen.BLOCK
    assert isinstance(gen, BlockGenerator)
    rows = np.concatenate(list(gen.iter_slice(5 * b + 10, 5 * b + 20, 1)))
    assert len(calls) == 1 and len(rows) == 10
    gen._block = orig
    assert np.array_equal(rows, gen.sample_counts(5 * b + 20, 1)[5 * b + 10:])


def test_lm_blocks_of_one_cycle_never_repeat_each_other():
    lm = small("lm")
    head = len(lm.beam_head(0))
    c = lm.sample_counts(head + 12 * 256, seed=0)  # 12 shard blocks of one cycle of 256
    assert len(np.unique(composition_keys(c))) == len(c)
    assert not np.isin(composition_keys(c[head:]), composition_keys(c[:head])).any()


def test_lm_beam_drops_skipped_compositions_and_keeps_its_width():
    lm = small("lm")
    head = lm.beam_head(0)
    skip = np.unique(composition_keys(head[:50]))
    tally = SkipTally()
    new = np.concatenate(list(lm.iter_slice(0, 300, 0, 8192, skip, tally)))
    assert len(new) == 300 and not np.isin(composition_keys(new), skip).any()
    assert tally.skipped >= 50  # the search reached each skipped one and dropped it
    assert len(lm.beam_head(0, skip)) >= len(head) - 5  # the freed slots went to other compositions
    assert np.array_equal(new[:100], lm.beam_head(0, skip)[:100])


def test_lm_shards_cut_the_heavy_dropped_compositions_out_of_the_draws():
    """Cutting a composition out of the prefix tree removes exactly its mass, and no draw from
    the shards is a cut composition (the sampler keeps to each cell's allowed tokens)."""
    from discovery.encoding import reduce_counts
    from discovery.generation.base import in_sorted
    from discovery.generation.lm_sampler import folded_log_probs
    from discovery.generation.lm_shards import EPS, SPLIT, build_shards, draw_prefixes
    from discovery.generation.lm_tokens import counts_to_tokens

    lm = small("lm")
    w = lm._weights()[0]
    head = lm.beam_head(0)
    head = head[(reduce_counts(head) == head).all(axis=1)]
    drop = np.unique(composition_keys(head))
    n_shards = 4
    whole = build_shards(w, 1.0, n_shards)
    cut = build_shards(w, 1.0, n_shards, drop, head)
    assert np.exp(whole.log_mass).sum() == pytest.approx(1.0, abs=1e-6)
    p = np.exp(folded_log_probs(w, counts_to_tokens(head)).astype(np.float64))
    heavy = p > EPS / (SPLIT * n_shards)  # every prefix of these is expanded, so they are cut
    removed = 1.0 - np.exp(cut.log_mass).sum()
    assert heavy.sum() > 20
    assert p[heavy].sum() - 1e-4 <= removed <= p.sum() + 1e-4
    assert (cut.allow.sum(axis=1) >= 1).all() and cut.prefixes.shape[0] == cut.allow.shape[0]
    sampler, drawn = lm.sampler(), []
    for s in range(n_shards):
        pre = draw_prefixes(cut, s, np.random.default_rng(s), 2048)
        raw = sampler.block(2048, lm.block_seed(0, s), 1.0, pre)
        drawn.append(raw[(reduce_counts(raw) == raw).all(axis=1)])  # A2B2 is rejected as AB's twin
    keys = composition_keys(np.concatenate(drawn))
    assert not in_sorted(np.unique(composition_keys(head[heavy])), keys).any()


def test_attribute_skips_counts_the_skipped_draws_before_each_kept_one():
    keep = np.array([False, True, False, False, True, False])
    skipped = np.array([True, False, True, True, False, True])
    before, carry = attribute_skips(keep, skipped, carry=2)
    assert before.tolist() == [3, 2] and carry == 1
    before, carry = attribute_skips(np.array([False]), np.array([True]), carry=1)
    assert before.tolist() == [] and carry == 2


@pytest.mark.parametrize("bad, fragment", [
    (["Fe2O3"], "got list"),
    (np.array([1.5, 2.0]), "dtype float64"),
    (np.array([3, 4], dtype=np.int64), "dtype int64"),
    (np.zeros((2, 2), dtype=np.uint64), "shape \\(2, 2\\)"),
])
def test_a_skip_set_that_is_not_composition_keys_is_one_line(bad, fragment):
    with pytest.raises(ConfigError, match=fragment) as err:
        skip_keys(bad)
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="skip must be composition keys"):
        load_generator("random").iter_counts(10, 0, skip=bad)


@pytest.mark.parametrize("start, stop, fragment", [(-1, 5, r"\[-1, 5\)"), (9, 3, r"\[9, 3\)"),
                                                   (0.5, 3, "start must be an integer, got 0.5")])
def test_a_negative_or_reversed_slice_is_one_line(start, stop, fragment):
    with pytest.raises(ConfigError, match=fragment) as err:
        load_generator("random").iter_slice(start, stop, 0)
    assert "\n" not in str(err.value)


def test_a_partition_past_n_is_one_line():
    from discovery.pipeline import build_spec

    spec = build_spec(1000, "bandgap>1", partition_size=300)
    assert [spec.partition_slice(i) for i in range(4)] == [(0, 300), (300, 600), (600, 900), (900, 1000)]
    for i in (4, -1):
        with pytest.raises(ConfigError, match=f"partition {i} is outside the run: it has partitions 0..3"):
            spec.partition_slice(i)
