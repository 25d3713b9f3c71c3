import time

import numpy as np
import pytest

from discovery.prefetch import Prefetcher


def test_order_and_completeness():
    assert list(Prefetcher(iter(range(100)), depth=3)) == list(range(100))
    assert list(Prefetcher(iter([]))) == []


def test_source_error_reaches_consumer():
    def source():
        yield 1
        raise ValueError("bad chunk 2")

    stream = Prefetcher(source())
    assert next(stream) == 1
    with pytest.raises(ValueError, match="bad chunk 2"):
        next(stream)


def test_close_stops_the_producer_early():
    produced = []

    def source():
        for i in range(1000):
            produced.append(i)
            yield i

    with Prefetcher(source(), depth=2) as stream:
        assert next(stream) == 0
    stream._thread.join(timeout=2)
    assert not stream._thread.is_alive()
    assert len(produced) <= 5  # a couple ahead, not the whole source


def test_runs_ahead_while_consumer_works():
    def source():
        for i in range(4):
            time.sleep(0.1)  # "generator" work
            yield i

    t0 = time.perf_counter()
    stream = Prefetcher(source(), depth=2)
    for _ in stream:
        time.sleep(0.1)  # "filter" work, overlapped with the next item's production
    wall = time.perf_counter() - t0
    assert wall < 0.75 and stream.seconds >= 0.4  # serial would take 0.8 s


def test_close_waits_for_the_producer_and_closes_the_source():
    """Issue 26 item 11: a producer thread still inside TensorFlow when the interpreter exits
    aborts the process (exit 134, 'terminate called without an active exception'); closing
    the stream, as an error ending the run does, must leave no producer running."""
    closed = []

    def source():
        try:
            for i in range(1000):
                time.sleep(0.2)  # a chunk's generation, the GIL released
                yield i
        finally:
            closed.append(True)

    with pytest.raises(RuntimeError, match="filter failed"):
        with Prefetcher(source(), depth=2) as stream:
            next(stream)
            raise RuntimeError("filter failed")
    assert not stream._thread.is_alive() and closed == [True]


class _Spec:
    """What PartitionStreams reads of a RunSpec: partitions of 300 rows, seed, batch size."""

    seed, batch_size = 0, 64

    def partition_slice(self, i):
        return 300 * i, 300 * (i + 1)


class _Numbered:
    """A generator stand-in: row r of the sequence is [r, 0, ...]; counts its slices."""

    def __init__(self):
        self.slices = []

    def iter_slice(self, start, stop, seed, batch_size, skip, tally):
        self.slices.append((start, stop))  # at the call, as the real ones check their arguments
        return (np.arange(b, min(b + batch_size, stop))[:, None] * np.ones((1, 3), dtype=np.int64)
                for b in range(start, stop, batch_size))


def _rows(stream):
    with stream.prefetcher as p:
        return np.concatenate(list(p))[:, 0]


def test_partition_streams_start_the_next_partition_when_one_is_done():
    from discovery.prefetch import PartitionStreams

    gen, spec = _Numbered(), _Spec()
    streams = PartitionStreams(gen, skip=None)
    first = streams.open(spec, 0, then=2)
    assert list(_rows(first)) == list(range(300))
    assert gen.slices == [(0, 300), (600, 900)]  # partition 2 started before it was asked for
    ahead = streams._ahead
    second = streams.open(spec, 2, then=3)  # the one started ahead, now told what follows it
    assert second is ahead and list(_rows(second)) == list(range(600, 900))
    assert gen.slices == [(0, 300), (600, 900), (900, 1200)]
    ahead = streams._ahead
    third = streams.open(spec, 3)
    assert third is ahead and list(_rows(third)) == list(range(900, 1200))
    assert streams._ahead is None and len(gen.slices) == 3  # nothing follows the last


def test_partition_streams_start_nothing_once_closed():
    from discovery.prefetch import PartitionStreams

    gen, spec = _Numbered(), _Spec()
    streams = PartitionStreams(gen, skip=None)
    first = streams.open(spec, 0, then=1)
    streams.close()  # the run stopped: partition 1 is not started when 0's generator ends
    assert list(_rows(first)) == list(range(300))
    assert streams._ahead is None and gen.slices == [(0, 300)]


def test_partition_streams_close_what_is_not_asked_for():
    from discovery.prefetch import PartitionStreams

    gen, spec = _Numbered(), _Spec()
    streams = PartitionStreams(gen, skip=None)
    _rows(streams.open(spec, 0, then=1))
    ahead = streams._ahead
    other = streams.open(spec, 3)  # not the one started ahead: that one is stopped
    assert not ahead.prefetcher._thread.is_alive()
    assert list(_rows(other)) == list(range(900, 1200))
    _rows(streams.open(spec, 4, then=5))
    ahead = streams._ahead
    streams.close()  # the run ended before partition 5
    assert streams._ahead is None and not ahead.prefetcher._thread.is_alive()
