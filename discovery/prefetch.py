"""Run an iterator a few items ahead in a background thread.

The generator (TensorFlow, which releases the GIL) then produces the next chunk while the
main thread filters and ranks the previous one, so a 2-core laptop keeps both cores busy.
Order is preserved, so results do not depend on timing.
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
    there is re-raised in the consumer. Call :meth:`close` (or use ``with``) to stop early.
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
        self._stop.set()

    def __enter__(self) -> Prefetcher[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
