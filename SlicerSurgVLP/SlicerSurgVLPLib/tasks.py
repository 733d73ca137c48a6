"""Server calls off the GUI thread: a worker thread with progress reports and a cancel flag.

Slicer's GUI must never wait for the network, and Qt objects must only be touched from the GUI thread.
So a ``BackgroundTask`` runs a plain function in a thread and only records what happens (the latest
progress, the result or the error); the module polls it from a Qt timer and updates its progress dialog
and scene on the GUI thread. Nothing here imports Qt, so it is tested with pytest.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

from .client import CancelCheck, Progress, ProgressCallback
from .errors import ClientError

Work = Callable[[ProgressCallback, CancelCheck], Any]


class BackgroundTask:
    """``work(progress, cancelled)`` run in a daemon thread; ``result()`` returns its value or raises its error."""

    def __init__(self, work: Work, title: str) -> None:
        self.title = title
        self._work = work
        self._cancel = threading.Event()
        self._finished = threading.Event()
        self._lock = threading.Lock()
        self._progress = Progress("queued", message=title)
        self._value: Any = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"SlicerSurgVLP: {title}", daemon=True)

    def start(self) -> BackgroundTask:
        self._thread.start()
        return self

    @property
    def finished(self) -> bool:
        return self._finished.is_set()

    @property
    def progress(self) -> Progress:
        with self._lock:
            return self._progress

    def cancel(self) -> None:
        """Ask the work to stop; a job on the server is cancelled at its next poll."""
        self._cancel.set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._finished.wait(timeout)

    def result(self) -> Any:
        if not self.finished:
            raise ClientError(f"{self.title} is still running")
        if self._error is not None:
            raise self._error
        return self._value

    def _report(self, progress: Progress) -> None:
        with self._lock:
            self._progress = progress

    def _run(self) -> None:
        try:
            self._value = self._work(self._report, self._cancel.is_set)
        except BaseException as error:  # handed to the GUI thread, which shows it as one line
            self._error = error
        finally:
            self._finished.set()
