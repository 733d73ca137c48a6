"""Progress reports and cancellation for long work (a one-hour video, a server job, a Slicer button).

A caller hands a :class:`CancelToken` and a progress callback to the pipeline; the pipeline reports after every
batch and checks the token between batches, so a cancel takes effect within one batch. Cancelling raises
:class:`Cancelled`, which unwinds before anything is cached or written: a cancelled run leaves nothing behind.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from surgvlp.errors import SurgVLPError

Progress = Callable[[int, int], None]
"""Called with (frames done, frames in all) after each batch."""


def progress_bar(total: int, desc: str) -> tuple[Any, Progress]:
    """A tqdm bar over frames, drawn on a terminal only, and the progress callback that drives it."""
    from tqdm import tqdm

    bar = tqdm(total=total, unit="frame", desc=desc, disable=None)

    def report(done: int, _total: int) -> None:
        bar.update(done - bar.n)

    return bar, report


class Cancelled(SurgVLPError):
    """The caller cancelled the work; nothing was cached or written."""


class CancelToken:
    """Set from any thread (a GUI button, a server request); checked by the worker between batches."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        """Raise :class:`Cancelled` once :meth:`cancel` has been called."""
        if self._event.is_set():
            raise Cancelled("cancelled")
