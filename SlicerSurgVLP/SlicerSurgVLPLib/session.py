"""What the module does with the server, step by step, without Slicer: the module's logic calls these
from a worker thread and puts what they return into the scene on the GUI thread.

The calls only fetch and send; they keep no state but the server's ``/info`` answer, so running one in a
thread can never race the GUI.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from .client import Answer, CancelCheck, Case, Progress, ProgressCallback, ServerClient
from .errors import Cancelled, ClientError
from .prompts import PromptTable
from .segmentations import Segmentation
from .timeline import PhaseTimeline, ToolTimeline
from .volumes import FrameVolume

PHASE_MODEL = "surgvlp_phase"
TOOLS_MODEL = "surgvlp_tools"
FRAMES_MODEL = "surgvlp_frames"
REFERRING_MODEL = "surgvlp_referring"
ADAPTER_TRAINER = "surgvlp_adapter"
DECODERS = ("argmax", "viterbi", "online")
SEGMENTATION_SUFFIX = "#segmentation"  # the label id of a case's segmentation: IMAGE_ID#segmentation
_TRAINING_RUNNING = ("SUBMITTED", "RUNNING")  # stock MONAI Label task states; then DONE, ERROR or STOPPED


@dataclass(frozen=True)
class ModelStatus:
    """A model as ``/info`` lists it; ``reason`` says why it cannot run, or what it waits for (loading)."""

    name: str
    available: bool
    reason: str | None
    untrained: bool | None  # None while the server does not know yet (its model is still loading)


@dataclass(frozen=True)
class LoadedFrames:
    volume: FrameVolume
    times: np.ndarray
    untrained: bool


@dataclass(frozen=True)
class Version:
    number: int
    ts: Any
    name: str | None


class Session:
    """A connection to one server: its ``/info`` and the calls the module makes."""

    def __init__(self, client: ServerClient, info: dict[str, Any]) -> None:
        self.client = client
        self.info = info

    @classmethod
    def connect(cls, url: str, **client_options: Any) -> Session:
        client = ServerClient(url, **client_options)
        info = client.info()
        if not isinstance(info.get("models"), dict) or PHASE_MODEL not in info["models"]:
            raise ClientError(f"{client.url} is a MONAI Label server without the {PHASE_MODEL} model; "
                              "start it with --app monai_app")
        return cls(client, info)

    # -- what the server offers -----------------------------------------------------------------------
    def models(self) -> list[ModelStatus]:
        """Every model, with the server's reason when it cannot run (and the command that fixes it)."""
        return [ModelStatus(name, bool(entry.get("available", True)), entry.get("reason"),
                            None if entry.get("untrained") is None else bool(entry["untrained"]))
                for name, entry in sorted(self.info.get("models", {}).items())]

    def model(self, name: str) -> ModelStatus | None:
        return next((status for status in self.models() if status.name == name), None)

    @property
    def untrained(self) -> bool:
        return bool((self.info.get("surgvlp") or {}).get("untrained", False))

    def prompt_sets(self, task: str = "phase") -> dict[str, PromptTable]:
        sets = (self.info.get("surgvlp") or {}).get("prompt_sets") or {}
        tables = {name: PromptTable.from_prompt_set(data, name) for name, data in sets.items()}
        return {name: table for name, table in tables.items() if table.task == task}

    def training_stats(self) -> dict[str, Any]:
        """The adapter's stats (stock ``train_stats``): ``trained`` and, per prompt set, what it learnt from."""
        return dict((self.info.get("train_stats") or {}).get(ADAPTER_TRAINER) or {})

    def training_summary(self) -> str:
        stats = self.training_stats()
        adapters = stats.get("adapters") or {}
        if not stats.get("trained") or not adapters:
            return "The adapter is not trained yet: save corrected timelines as final, then train."
        lines = []
        for name, adapter in sorted(adapters.items()):
            cases = adapter.get("cases") or []
            text = f"{name}: trained on {len(cases) if isinstance(cases, list) else cases} case(s)"
            if adapter.get("frames") is not None:
                text += f", {adapter['frames']} frames"
            if adapter.get("training_accuracy") is not None:
                text += f", {100 * float(adapter['training_accuracy']):.1f} % of their frames fitted"
            if adapter.get("final_loss") is not None:
                text += f", final loss {float(adapter['final_loss']):.3f}"
            if adapter.get("untrained_encoder"):
                text += " (on an UNTRAINED encoder)"
            lines.append(text)
        return "; ".join(lines)

    def refresh(self) -> None:
        self.info = self.client.info()

    def cases(self) -> list[Case]:
        return self.client.cases()

    # -- jobs -----------------------------------------------------------------------------------------
    def _run(self, model: str, case: str, params: dict[str, Any], progress: ProgressCallback | None,
             cancelled: CancelCheck | None) -> Answer:
        status = self.model(model)
        if status is None:
            raise ClientError(f"the server has no {model} model")
        if not status.available:
            raise ClientError(f"{model} is not available: {status.reason or 'the server does not say why'}")
        return self.client.run_job(model, case, params, progress, cancelled)

    def load_frames(self, case: str, progress: ProgressCallback | None = None, cancelled: CancelCheck | None = None,
                    **params: Any) -> LoadedFrames:
        """The sampled frames of ``case`` (params: ``fps``, ``start``, ``end``, ``max_size``)."""
        answer = self._run(FRAMES_MODEL, case, params, progress, cancelled)
        if "image" not in answer.files:
            raise ClientError(f"{FRAMES_MODEL}: the server's answer has no frames volume")
        volume = FrameVolume.from_nrrd(answer.files["image"], f"frames of {case}")
        times = np.asarray(answer.json.get("times", []), dtype=np.float64)
        if times.shape != (volume.count,):
            raise ClientError(f"{FRAMES_MODEL}: {times.size} frame times for {volume.count} frames")
        return LoadedFrames(volume, times, answer.json.get("untrained", True) is not False)

    def recognise_phases(self, case: str, prompt_set: str | PromptTable, decoder: str = "viterbi",
                         progress: ProgressCallback | None = None, cancelled: CancelCheck | None = None,
                         **params: Any) -> PhaseTimeline:
        if decoder not in DECODERS:
            raise ClientError(f"decoder must be one of {', '.join(DECODERS)}, got {decoder!r}")
        chosen = prompt_set if isinstance(prompt_set, str) else prompt_set.to_prompt_set()
        answer = self._run(PHASE_MODEL, case, {**params, "prompt_set": chosen, "decoder": decoder},
                           progress, cancelled)
        return PhaseTimeline(_result(answer.json), f"phases of {case}")

    def recognise_tools(self, case: str, progress: ProgressCallback | None = None,
                        cancelled: CancelCheck | None = None, **params: Any) -> ToolTimeline:
        answer = self._run(TOOLS_MODEL, case, params, progress, cancelled)
        return ToolTimeline.from_document(_result(answer.json), f"tools of {case}")

    def segment(self, case: str, text: str, progress: ProgressCallback | None = None,
                cancelled: CancelCheck | None = None, **params: Any) -> tuple[Segmentation, dict[str, Any]]:
        """Referring segmentation of ``text`` over the frames: the ``.seg.nrrd`` and the answer's JSON."""
        if not text.strip():
            raise ClientError("type what to segment, e.g. 'the gallbladder'")
        answer = self._run(REFERRING_MODEL, case, {**params, "text": text}, progress, cancelled)
        if "image" not in answer.files:
            raise ClientError(f"{REFERRING_MODEL}: the server's answer has no segmentation file")
        return Segmentation.from_nrrd(answer.files["image"], f"segmentation of {case}"), _result(answer.json)

    # -- labels ---------------------------------------------------------------------------------------
    def save_timeline(self, case: str, timeline: PhaseTimeline) -> dict[str, Any]:
        return self.client.save_label(case, "timeline.json", timeline.to_json())

    def save_segmentation(self, case: str, segmentation: Segmentation) -> dict[str, Any]:
        return self.client.save_label(case, "segmentation.seg.nrrd", segmentation.to_nrrd())

    def saved_timeline(self, case: str, version: int | None = None) -> PhaseTimeline:
        data = self.client.label(case, version=version)
        return PhaseTimeline.from_json(data, f"{case} version {version or 'latest'}")

    def saved_segmentation(self, case: str, version: int | None = None) -> Segmentation:
        data = self.client.label(case + SEGMENTATION_SUFFIX, version=version)
        return Segmentation.from_nrrd(data, f"segmentation of {case}")

    def history(self, label_id: str) -> list[Version]:
        """The saved versions of a label (the case id for its timeline), oldest first; [] when none."""
        try:
            info = self.client.label_info(label_id)
        except ClientError as error:
            if error.status == 404:
                return []
            raise
        return [Version(int(entry["version"]), entry.get("ts"), entry.get("name"))
                for entry in info.get("versions") or [] if isinstance(entry, dict) and "version" in entry]

    # -- training -------------------------------------------------------------------------------------
    def train_adapter(self, progress: ProgressCallback | None = None, cancelled: CancelCheck | None = None,
                      poll: float = 1.0, limit: float = 3600.0) -> dict[str, Any]:
        """Train the adapter from every case with a ``final`` timeline; the new stats when it ends."""
        self.client.start_training(ADAPTER_TRAINER)
        started = time.monotonic()
        while True:
            status = self.client.training_status() or {}
            state = str(status.get("status", "")).upper()
            details = [_log_message(line) for line in status.get("details") or []]
            if progress is not None:
                progress(Progress(state.lower() or "queued", message=details[-1] if details else "training"))
            if state and state not in _TRAINING_RUNNING:
                break
            if cancelled is not None and cancelled():
                self.client.stop_training()
                raise Cancelled("training was stopped")
            if time.monotonic() - started > limit:
                raise ClientError(f"training did not end within {limit:.0f} s; it goes on on the server")
            time.sleep(poll)
        if state != "DONE":
            raise ClientError(f"training ended {state.lower()}: {details[-1] if details else 'see the server log'}")
        self.refresh()
        return self.training_stats()


def _result(payload: dict[str, Any]) -> dict[str, Any]:
    """The result document of a finished job: the answer without its job record."""
    return {key: value for key, value in payload.items() if key != "job"}


def _log_message(line: Any) -> str:
    """A training log line without its timestamp and logger prefix, short enough for a progress dialog."""
    text = str(line).rsplit(" - ", 1)[-1].strip()
    return text if len(text) <= 120 else text[:117] + "..."
