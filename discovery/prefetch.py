"""Run an iterator a few items ahead in a background thread.

The generator (TensorFlow, which releases the GIL) then produces the next chunk while the
main thread filters and ranks the previous one, so a 2-core laptop keeps both cores busy.
Order is preserved, so results do not depend on timing. ``PartitionStreams`` chains a run's
partitions: the next partition's generator starts when the current one's is done.

Closing waits for the thread to finish the item it is working on. A thread left running
inside TensorFlow when the interpreter exits (an error or a refusal ending the run) is torn
down by ``pthread_exit`` as it reacquires the GIL, which unwinds through pybind11's
``gil_scoped_release`` and aborts the process: exit code 134 and "terminate called without an
active exception" instead of the run's own exit code (issue 26 item 11).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from typing import Generic, TypeVar

T = TypeVar("T")
_DONE = object()


class _Failure:
    def __init__(self, exc: BaseException):
        self.exc = exc


class Prefetcher(Generic[T]):
    """Iterates ``source`` in a daemon thread, at most ``depth`` items ahead.

    ``seconds`` is the time spent inside ``source`` (its own compute); an exception raised
    there is re-raised in the consumer. Call :meth:`close` (or use ``with``) to stop early:
    it returns once the thread has stopped (after the item in progress) and closed ``source``.
    """

    def __init__(self, source: Iterator[T], depth: int = 2):
        self.seconds = 0.0
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, args=(source,), daemon=True,
                                        name="discovery-prefetch")
        self._thread.start()

    def _work(self, source: Iterator[T]) -> None:
        try:
            while not self._stop.is_set():
                t0 = time.perf_counter()
                item = next(source, _DONE)
                self.seconds += time.perf_counter() - t0
                self._put(item)
                if item is _DONE:
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            self._put(_Failure(exc))
        finally:
            close = getattr(source, "close", None)  # a generator's cleanup runs here, in its thread
            if close is not None:
                try:
                    close()
                except Exception:  # noqa: BLE001 - stopping: nothing left to report it to
                    pass

    def _put(self, item: object) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def __iter__(self) -> Prefetcher[T]:
        return self

    def __next__(self) -> T:
        item = self._queue.get()
        if item is _DONE:
            self.close()
            raise StopIteration
        if isinstance(item, _Failure):
            self.close()
            raise item.exc
        return item

    @property
    def stopping(self) -> bool:
        """Whether ``close`` was called."""
        return self._stop.is_set()

    def close(self) -> None:
        """Stop the producer and wait for it (the item in progress, then ``source.close()``)."""
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join()

    def __enter__(self) -> Prefetcher[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PartitionStream:
    """One partition's samples running ahead in a ``Prefetcher``, with its skip tally."""

    def __init__(self, spec, index: int, then: int | None):
        from discovery.generation.base import SkipTally

        self.spec, self.index, self.tally = spec, index, SkipTally()
        self.prefetcher: Prefetcher | None = None
        self._then, self._done, self._lock = then, False, threading.Lock()

    def follow_with(self, then: int | None) -> None:
        """Name the partition to start when this one's generator is done (if not done yet)."""
        with self._lock:
            self._then = None if self._done else then

    def finished(self) -> int | None:
        """Mark the generator done; the partition to start next, if any."""
        with self._lock:
            self._done = True
            return self._then


class PartitionStreams:
    """The generator's stream of each partition of a run (``sampler.iter_slice`` skipping
    ``skip``), each in a ``Prefetcher``. Opened with the partition that follows (``then``), a
    stream starts that one's as soon as its own generator is done: the next partition samples
    while this one's last batches are filtered and ranked, instead of after (~1-2 s per
    partition with a core idle). A stream started ahead and not asked for is closed."""

    def __init__(self, sampler, skip):
        self.sampler, self.skip = sampler, skip
        self._ahead: PartitionStream | None = None
        # _ahead is set from a generator's thread: under the lock, and never after close()
        self._lock, self._closed = threading.Lock(), False

    def open(self, spec, index: int, then: int | None = None) -> PartitionStream:
        """Partition ``index``'s stream: the one started ahead for it, else a new one."""
        with self._lock:
            ahead, self._ahead, self._closed = self._ahead, None, False
        if ahead is not None and ahead.spec is spec and ahead.index == index:
            ahead.follow_with(then)
            return ahead
        if ahead is not None:
            ahead.prefetcher.close()
        return self._start(spec, index, then)

    def close(self) -> None:
        """Stop a stream started ahead (the run ended before asking for it), and start none
        until the next ``open``."""
        with self._lock:
            ahead, self._ahead, self._closed = self._ahead, None, True
        if ahead is not None:
            ahead.prefetcher.close()

    def _start(self, spec, index: int, then: int | None) -> PartitionStream:
        stream = PartitionStream(spec, index, then)
        start, stop = spec.partition_slice(index)
        source = self.sampler.iter_slice(start, stop, spec.seed, spec.batch_size, self.skip, stream.tally)
        stream.prefetcher = Prefetcher(self._then_next(source, stream))
        return stream

    def _then_next(self, source: Iterator, stream: PartitionStream) -> Iterator:
        """``source``'s batches; once it is done, the next partition's stream starts (in this
        generator's thread, before the consumer hears that this one ended)."""
        yield from source
        then = stream.finished()
        if then is None:
            return
        with self._lock:  # not once the run has stopped, nor for a stream being closed
            if self._closed or stream.prefetcher.stopping:
                return
            try:
                self._ahead = self._start(stream.spec, then, None)
            except Exception:  # noqa: BLE001 - not this partition's failure: the next one opens anew
                self._ahead = None
