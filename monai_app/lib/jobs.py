"""Long work off the request: the stock ``/infer`` call runs inside the server's event loop, so a ten-minute
timeline computed there would freeze ``/info``, ``/datastore`` and every other client for ten minutes.

Here an infer call starts (or joins) a job and answers at once with its id and progress; the same call with
``{"job": ID}`` polls it and finally returns the result, and ``{"job": ID, "cancel": true}`` stops it within one
batch. No call ever waits for a job: anything that blocks inside the request blocks every other client too. Identical requests (same model, video and parameters) share one job, so eight clients asking for the same
timeline cost one computation. Finished jobs are kept for a while so that late pollers still get their answer.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from surgvlp.errors import SurgVLPError
from surgvlp.progress import CancelToken, Cancelled, Progress

KEEP_FINISHED_S = 3600.0

Work = Callable[[Progress, CancelToken, Path], Any]
"""A job's work: it reports progress, honours the token, and writes any files into the folder it is given,
which lives as long as the job (removed at once if the job fails or is cancelled)."""


class JobNotFound(SurgVLPError):
    """A job id the server does not know (never started, or finished long ago)."""


@dataclass
class Job:
    id: str
    key: str
    state: str = "queued"  # queued, running, done, failed, cancelled
    done: int = 0
    total: int | None = None
    message: str = ""
    result: Any = None
    error: SurgVLPError | None = None
    finished_at: float | None = None
    folder: Path | None = None
    cancel_token: CancelToken = field(default_factory=CancelToken)

    def progress(self, done: int, total: int) -> None:
        self.done, self.total = done, total

    def status(self) -> dict[str, Any]:
        return {"id": self.id, "state": self.state, "done": self.done, "total": self.total, "message": self.message}


def _canonical(value: Any) -> Any:
    to_dict = getattr(value, "to_dict", None)
    return to_dict() if callable(to_dict) else str(value)


def request_key(*parts: Any) -> str:
    """The identity of a request: its parts as canonical JSON, hashed (parameter order does not matter)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=_canonical).encode()).hexdigest()


class JobBoard:
    def __init__(self, workers: int) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="surgvlp-job")
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}
        self._by_key: dict[str, Job] = {}

    def submit(self, key: str, work: Work, message: str) -> Job:
        """Start ``work`` under ``key``, or return the job already doing (or done with) it.

        A failed or cancelled job is not reused: asking again tries again.
        """
        with self._lock:
            self._forget_old()
            job = self._by_key.get(key)
            if job is not None and job.state not in ("failed", "cancelled"):
                return job
            job = Job(id=uuid.uuid4().hex[:16], key=key, message=message)
            self._jobs[job.id] = job
            self._by_key[key] = job
        self._pool.submit(self._run, job, work)
        return job

    def _run(self, job: Job, work: Work) -> None:
        if job.cancel_token.cancelled:
            self._finish(job, "cancelled")
            return
        job.state = "running"
        job.folder = Path(tempfile.mkdtemp(prefix="surgvlp-job-"))
        try:
            job.result = work(job.progress, job.cancel_token, job.folder)
        except Cancelled:
            self._finish(job, "cancelled")
        except SurgVLPError as error:
            job.error = error
            job.message = str(error)
            self._finish(job, "failed")
        except Exception as error:  # a bug: the job must still end, and say so; the log keeps the traceback
            job.error = SurgVLPError(f"internal error ({type(error).__name__}); see the server log")
            job.message = str(job.error)
            self._finish(job, "failed")
            raise
        else:
            self._finish(job, "done")

    def _finish(self, job: Job, state: str) -> None:
        if state != "done":
            self._remove_files(job)
        job.state, job.finished_at = state, time.monotonic()

    @staticmethod
    def _remove_files(job: Job) -> None:
        if job.folder is not None:
            shutil.rmtree(job.folder, ignore_errors=True)

    def _forget_old(self) -> None:
        now = time.monotonic()
        for job in [job for job in self._jobs.values() if job.finished_at and now - job.finished_at > KEEP_FINISHED_S]:
            self._remove_files(job)
            del self._jobs[job.id]
            if self._by_key.get(job.key) is job:
                del self._by_key[job.key]

    def get(self, job_id: str) -> Job:
        with self._lock:
            job = self._jobs.get(str(job_id))
        if job is None:
            raise JobNotFound(f"no job {job_id!r} on this server (finished jobs are kept {KEEP_FINISHED_S / 3600:g} h)")
        return job

    def cancel(self, job_id: str) -> Job:
        job = self.get(job_id)
        job.cancel_token.cancel()
        if job.state == "queued":
            self._finish(job, "cancelled")
        elif job.state == "running":
            job.message = "cancelling: stops after the current batch"
        return job
