"""The shape every SurgVLP model of the app shares: a stock MONAI Label infer task whose work runs as a job.

A subclass says which parameters it reads (``parse``), what its work is (``work``: frames in, a JSON-able
result and maybe a file out) and which files it answers with. This class turns the stock infer call into the job
protocol of ``lib/jobs.py``: start or join, poll, cancel, and finally the result.
"""

from __future__ import annotations

import os
import tempfile
from abc import abstractmethod
from pathlib import Path
from typing import Any, Dict, Tuple, Union

from monailabel.interfaces.tasks.infer_v2 import InferTask, InferType

from lib.datastores.video_datastore import VideoDatastore
from lib.jobs import Job, JobBoard, request_key
from lib.model_service import ModelService
from lib.params import BadParameter, Sampling, flag
from surgvlp.errors import SurgVLPError
from surgvlp.progress import CancelToken, Progress

JOB_KEYS = ("job", "cancel")


class JobFailed(SurgVLPError):
    """The job ended with an error about its input (a corrupt video, an empty range)."""


class JobInferTask(InferTask):
    """``config`` lists the parameters and their defaults (shown in ``/info`` and in Slicer)."""

    needs_model = True  # False for work that only decodes video (it runs even without weights)

    def __init__(self, name: str, service: ModelService, board: JobBoard, datastore: VideoDatastore,
                 description: str, labels: list[str], config: Dict[str, Any]) -> None:
        super().__init__(type=InferType.OTHERS, labels=labels, dimension=3, description=description, config=config)
        self.name = name
        self.service = service
        self.board = board
        self.datastore = datastore

    def is_valid(self) -> bool:
        return True  # listed even without a model: /info says why it cannot run (see info())

    def info(self) -> Dict[str, Any]:
        status = self.service.status()
        if not self.needs_model:
            status = {**status, "available": True, "reason": None}
        return {**super().info(), **status}

    @abstractmethod
    def parse(self, params: Dict[str, Any]) -> Dict[str, Any]:
        """The model's own parameters, checked, with defaults filled in (raises ``BadParameter``)."""

    @abstractmethod
    def work(self, model: Any, source: Any, options: Dict[str, Any], folder: Path, progress: Progress,
             cancel: CancelToken) -> Tuple[Union[Path, None], Dict[str, Any]]:
        """Run on ``source`` (opened with the request's sampling); files go into ``folder``."""

    def key_parts(self, options: Dict[str, Any]) -> Tuple[Any, ...]:
        """What else decides the answer besides model, video and options (an adapter's version, say)."""
        return ()

    def __call__(self, request: Dict[str, Any]) -> Tuple[Union[str, None], Dict[str, Any]]:
        image_id = request["image"]
        if "job" in request:
            job = self.board.get(request["job"])
            if flag(request, "cancel", False):
                job = self.board.cancel(job.id)
            return self._answer(job)
        if "cancel" in request:
            raise BadParameter("parameter 'cancel' needs the 'job' to cancel")
        options = self.parse(request)
        sampling = Sampling.from_params(request)
        entry = self.datastore.catalogue.entry(image_id)  # 404 before any job starts
        if self.needs_model:
            self.service.check_available()
        key = request_key(self.name, image_id, entry.info, sampling.as_dict(), options, self.key_parts(options),
                          self.service.settings.checkpoint)

        def run(progress: Progress, cancel: CancelToken, folder: Path) -> Tuple[Union[Path, None], Dict[str, Any]]:
            import surgvlp

            data, name = self.datastore.source_data(image_id)
            source = surgvlp.open_source(data, name=name, **sampling.as_dict())
            model = self.service.model() if self.needs_model else None
            return self.work(model, source, options, folder, progress, cancel)

        job = self.board.submit(key, run, f"{self.name} on {image_id}")
        return self._answer(job)

    def _answer(self, job: Job) -> Tuple[Union[str, None], Dict[str, Any]]:
        if job.state == "failed":
            raise JobFailed(job.message)
        if job.state != "done":  # says "untrained" already, before the result does
            return None, {"job": job.status(), "untrained": self.service.status()["untrained"]}
        file, result = job.result
        return self._handout(file), {**result, "job": job.status()}

    @staticmethod
    def _handout(file: Union[Path, None]) -> Union[str, None]:
        """A fresh link to the job's file: the stock endpoint deletes what it sends, and a later poll of the same
        job must still find the result."""
        if file is None:
            return None
        handle, name = tempfile.mkstemp(suffix="".join(file.suffixes), dir=file.parent)
        os.close(handle)
        os.unlink(name)
        os.link(file, name)
        return name
