"""Run a generator in a worker thread so that decoding overlaps with whoever consumes the frames.

A bounded queue keeps memory flat: the worker is at most ``depth`` items ahead of the consumer.
Leaving the consuming loop early (``break``, an exception, garbage collection) stops the worker and
closes the producing generator, so files and decoders are released promptly.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator, Iterator
from typing import TypeVar

T = TypeVar("T")

_DONE = object()


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def iterate_in_background(items: Iterator[T], depth: int = 8, name: str = "surgvlp-background") -> Iterator[T]:
    """Yield what ``items`` yields, produced up to ``depth`` items ahead in a daemon thread named ``name``.

    A generator passed as ``items`` is closed when the consumer stops, early or not.
    """
    buffer: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(item: object) -> bool:
        while not stop.is_set():
            try:
                buffer.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not offer(item):
                    return
            offer(_DONE)
        except BaseException as error:  # handed to the consumer, which re-raises it
            offer(_Failure(error))
        finally:
            if isinstance(items, Generator):
                items.close()

    worker = threading.Thread(target=produce, name=name, daemon=True)
    worker.start()
    try:
        while True:
            item = buffer.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item
    finally:
        stop.set()
        worker.join()
