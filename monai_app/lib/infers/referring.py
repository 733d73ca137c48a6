"""``surgvlp_referring``: a text prompt becomes masks on every sampled frame ("show me the clipper").

The label volume matches the ``surgvlp_frames`` volume of the same sampling slice by slice (at the native frame
size; a downsized frames volume has a larger spacing, so both cover the same extent in Slicer). Without SAM2
weights the masks come from the similarity maps alone, and every output says ``"mode": "coarse"``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Tuple

from lib.infers.job_task import JobInferTask
from lib.params import BadParameter
from surgvlp.progress import CancelToken, Progress

DEFAULTS = {"text": None, "negatives": ["tissue", "background"], "fps": 1.0, "start": None, "end": None}


class ReferringTask(JobInferTask):
    def __init__(self, service, board, datastore) -> None:
        super().__init__("surgvlp_referring", service, board, datastore,
                         description="Referring segmentation: masks of what a text names, tracked through the video",
                         labels=[], config=dict(DEFAULTS))

    def info(self) -> Dict[str, Any]:
        return {**super().info(), **self.service.sam2_status()}

    def parse(self, params: Dict[str, Any]) -> Dict[str, Any]:
        from surgvlp.segmentation.prompts import check_prompts

        negatives = params.get("negatives", DEFAULTS["negatives"])
        if isinstance(negatives, str):
            negatives = [part.strip() for part in negatives.split(",")]
        if not isinstance(negatives, list):
            raise BadParameter("parameter 'negatives' must be a list of texts or one comma-separated text")
        target, *contrasts = check_prompts(params.get("text") or "", negatives)
        return {"text": target.strip(), "negatives": [item.strip() for item in contrasts],
                "sam2": self.service.settings.sam2}

    def work(self, model: Any, source: Any, options: Dict[str, Any], folder: Path, progress: Progress,
             cancel: CancelToken) -> Tuple[Path, Dict[str, Any]]:
        import surgvlp

        segmentation = surgvlp.segment(model, source, options["text"], negatives=options["negatives"],
                                       sam2=self.service.sam2(), threads=None, progress=progress, cancel=cancel)
        path = folder / "segmentation.seg.nrrd"
        segmentation.write(path)
        return path, segmentation.to_dict()
