import time

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
