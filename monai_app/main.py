"""SlicerSurgVLP's MONAI Label app: phase timelines, tool presence and video frames for 3D Slicer.

Started by the stock command::

    monailabel start_server --app monai_app --studies DIR_OR_DICOMWEB_URL --host 127.0.0.1 [--conf KEY VALUE ...]

The app is a thin adapter: the models are the ``surgvlp`` package's public API, the long work runs as jobs
(``lib/jobs.py``) so the server never freezes, and the datastore keeps every version of every correction
(``lib/datastores``). See README.md in this folder for the parameters, the job protocol and the labels.
"""

from __future__ import annotations

import copy
import logging
import sys
from pathlib import Path
from typing import Any, Dict

from monailabel.interfaces.app import MONAILabelApp
from monailabel.interfaces.datastore import Datastore

from lib.datastores.labels import LabelStore
from lib.datastores.video_datastore import VideoDatastore
from lib.datastores.video_folder import VideoFolder
from lib.http_errors import answers_http
from lib.infers.frames import FramesTask
from lib.infers.phase import PhaseTask
from lib.infers.referring import ReferringTask
from lib.infers.tools import ToolsTask
from lib.jobs import JobBoard
from lib.model_service import ModelService
from lib.params import BadParameter
from lib.settings import KNOWN_KEYS, AppSettings, require_local, served_host
from lib.trainers.adapter import AdapterTrainer
from surgvlp.errors import SurgVLPError

logger = logging.getLogger(__name__)


class ModelNotFound(SurgVLPError):
    """An infer call for a model this app does not serve."""


def _builtin_prompt_sets() -> Dict[str, Any]:
    """The built-in prompt sets as ``/info`` shows them (read once: they are package data)."""
    from surgvlp import load_prompt_set
    from surgvlp.recognition.prompts import builtin_prompt_sets

    return {name: load_prompt_set(name).to_dict() for name in builtin_prompt_sets()}


class SurgVLPApp(MONAILabelApp):
    def __init__(self, app_dir: str, studies: str, conf: Dict[str, str]) -> None:
        unknown = sorted(set(conf) - set(KNOWN_KEYS) - {"server_mode", "preload"})
        if unknown:
            logger.warning("ignoring unknown --conf keys %s (known: %s)", ", ".join(unknown), ", ".join(KNOWN_KEYS))
        self.settings = AppSettings.from_conf(conf, studies)
        require_local(served_host(sys.argv), self.settings.allow_remote)
        self.service = ModelService(self.settings)
        self.board = JobBoard(self.settings.jobs)
        self._prompt_sets = _builtin_prompt_sets()
        super().__init__(app_dir=app_dir, studies=studies, conf=conf, name="SurgVLP",
                         description="Zero-shot surgical phase timelines, tool presence and referring segmentation "
                                     "(SurgVLP, HecVL, PeskaVLP)",
                         version="0.1.0")

    def init_datastore(self) -> Datastore:
        if self.studies.startswith(("http://", "https://")):
            from lib.datastores.dicomweb import DicomWebCatalogue

            catalogue = DicomWebCatalogue(self.studies.rstrip("/"))
        else:
            catalogue = VideoFolder(Path(self.studies))
        return VideoDatastore(catalogue, LabelStore(self.settings.state_dir / "labels"), self.settings.max_upload_bytes)

    def init_infers(self) -> Dict[str, Any]:
        datastore = self.datastore()
        return {task.name: task for task in (PhaseTask(self.service, self.board, datastore),
                                             ToolsTask(self.service, self.board, datastore),
                                             FramesTask(self.service, self.board, datastore),
                                             ReferringTask(self.service, self.board, datastore))}

    def init_trainers(self) -> Dict[str, Any]:
        return {"surgvlp_adapter": AdapterTrainer(self.service)}

    def init_strategies(self) -> Dict[str, Any]:
        return {}

    def info(self) -> Dict[str, Any]:
        """The stock ``/infer`` endpoint calls this on every request, inside the event loop: keep it cheap."""
        return {
            **super().info(),
            "surgvlp": {**self.service.status(), "model": self.service.describe(), "prompt_sets": self._prompt_sets},
        }

    @answers_http
    def infer(self, request: Dict[str, Any], datastore: Any = None) -> Dict[str, Any]:
        """An id names a datastore video and nothing else: unlike the stock app, an id that happens to be a path
        on the server (``../secret``, ``/etc/passwd``) is not opened; it is an unknown id (404)."""
        request = copy.deepcopy(request)
        task = self._infers.get(request.get("model", ""))
        if task is None:
            raise ModelNotFound(f"no model {request.get('model')!r}; this server has {', '.join(self._infers)}")
        if not isinstance(request.get("image"), str) or not request["image"]:
            raise BadParameter("give the video's id with ?image=ID (see GET /datastore/?output=all)")
        file, result = task(request)
        return {"label": file, "tag": "original", "file": file, "params": result}

    @answers_http
    def train(self, request: Dict[str, Any]) -> Any:
        return super().train(request)

