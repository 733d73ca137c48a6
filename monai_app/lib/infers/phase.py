"""``surgvlp_phase``: the phase timeline of a video, zero-shot or through the adapter trained on corrections."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Tuple

from lib.infers.job_task import JobInferTask
from lib.params import flag, number, prompt_set, text
from surgvlp.progress import CancelToken, Progress

DECODERS = ("argmax", "viterbi", "online")
DEFAULTS = {"prompt_set": "cholec80", "decoder": "viterbi", "min_segment": 0.0, "fps": 1.0, "start": None,
            "end": None, "adapter": True}


class PhaseTask(JobInferTask):
    def __init__(self, service, board, datastore) -> None:
        from surgvlp import load_prompt_set

        super().__init__("surgvlp_phase", service, board, datastore,
                         description="Surgical phase timeline of a video (zero-shot from text prompts, or the adapter "
                                     "trained on corrected timelines)",
                         labels=load_prompt_set(DEFAULTS["prompt_set"]).class_names, config=dict(DEFAULTS))

    def parse(self, params: Dict[str, Any]) -> Dict[str, Any]:
        from surgvlp import DecoderSettings

        settings = DecoderSettings(method=text(params, "decoder", DEFAULTS["decoder"], DECODERS),
                                   min_segment=number(params, "min_segment", DEFAULTS["min_segment"]))
        return {"prompt_set": prompt_set(params, DEFAULTS["prompt_set"], "phase"), "decoder": settings,
                "adapter": flag(params, "adapter", DEFAULTS["adapter"])}

    def key_parts(self, options: Dict[str, Any]) -> Tuple[Any, ...]:
        path = self.service.adapter_path(options["prompt_set"].name)
        return (path.stat().st_mtime_ns if options["adapter"] and path.is_file() else None,)

    def _adapter(self, model: Any, options: Dict[str, Any]) -> Any:
        """The trained adapter for this prompt set and checkpoint, when asked for and when there is one."""
        from surgvlp import PhaseAdapter

        path = self.service.adapter_path(options["prompt_set"].name)
        if not options["adapter"] or not path.is_file():
            return None
        adapter = PhaseAdapter.load(path)
        matches = adapter.checkpoint_sha256 == model.sha256 and adapter.class_names == options["prompt_set"].class_names
        return adapter if matches else None

    def work(self, model: Any, source: Any, options: Dict[str, Any], folder: Path, progress: Progress,
             cancel: CancelToken) -> Tuple[None, Dict[str, Any]]:
        import surgvlp

        embeddings = surgvlp.embed(model, source, options["prompt_set"], cache=self.service.cache(),
                                   progress=progress, cancel=cancel)
        timeline = surgvlp.phase_timeline(embeddings, options["decoder"], self._adapter(model, options))
        return None, timeline.to_dict()
