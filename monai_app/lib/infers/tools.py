"""``surgvlp_tools``: which instruments are in view when, from text prompts alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Tuple

from lib.infers.job_task import JobInferTask
from lib.params import number, prompt_set
from surgvlp.progress import CancelToken, Progress

DEFAULTS = {"prompt_set": "cholec80-tools", "threshold": 0.5, "min_segment": 0.0, "fps": 1.0, "start": None,
            "end": None}


class ToolsTask(JobInferTask):
    def __init__(self, service, board, datastore) -> None:
        from surgvlp import load_prompt_set

        super().__init__("surgvlp_tools", service, board, datastore,
                         description="Tool presence over a video (zero-shot from text prompts)",
                         labels=load_prompt_set(DEFAULTS["prompt_set"]).class_names, config=dict(DEFAULTS))

    def parse(self, params: Dict[str, Any]) -> Dict[str, Any]:
        return {"prompt_set": prompt_set(params, DEFAULTS["prompt_set"], "tool"),
                "threshold": number(params, "threshold", DEFAULTS["threshold"], 0.0, 1.0, inclusive_low=False),
                "min_segment": number(params, "min_segment", DEFAULTS["min_segment"])}

    def work(self, model: Any, source: Any, options: Dict[str, Any], folder: Path, progress: Progress,
             cancel: CancelToken) -> Tuple[None, Dict[str, Any]]:
        import surgvlp

        embeddings = surgvlp.embed(model, source, options["prompt_set"], cache=self.service.cache(),
                                   progress=progress, cancel=cancel)
        timeline = surgvlp.tool_timeline(embeddings, options["threshold"], options["min_segment"])
        return None, timeline.to_dict()
