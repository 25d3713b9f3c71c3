"""Run an iterator a few items ahead in a background thread.

The generator (TensorFlow, which releases the GIL) then produces the next chunk while the
main thread filters and ranks the previous one, so a 2-core laptop keeps both cores busy.
Order is preserved, so results do not depend on timing.

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
        self._thread = threading.Thread(target=self._work, args=(source,), daemon=True)
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

    def close(self) -> None:
        """Stop the producer and wait for it (the item in progress, then ``source.close()``)."""
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join()

    def __enter__(self) -> Prefetcher[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
