"""``surgvlp_frames``: the sampled frames as an RGB volume, so Slicer shows the video without a video decoder.

The frames are the ones the other models see (same sampling parameters, same times), so a timeline or a
segmentation lines up with them slice by slice.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Tuple

from lib.infers.job_task import JobInferTask
from lib.params import number
from surgvlp.progress import CancelToken, Progress

DEFAULTS = {"fps": 1.0, "start": None, "end": None, "max_size": 640}
MAX_SIZE_LIMIT = 8192


class FramesTask(JobInferTask):
    needs_model = False

    def __init__(self, service, board, datastore) -> None:
        super().__init__("surgvlp_frames", service, board, datastore,
                         description="The sampled frames of a video as an RGB volume (NRRD, one slice per frame)",
                         labels=[], config=dict(DEFAULTS))

    def parse(self, params: Dict[str, Any]) -> Dict[str, Any]:
        size = number(params, "max_size", DEFAULTS["max_size"], 16, MAX_SIZE_LIMIT)
        return {"max_size": None if size is None else int(size)}

    def work(self, model: Any, source: Any, options: Dict[str, Any], folder: Path, progress: Progress,
             cancel: CancelToken) -> Tuple[Path, Dict[str, Any]]:
        import surgvlp

        path = folder / "frames.nrrd"
        volume = surgvlp.write_frame_volume(source, path, options["max_size"], progress=progress, cancel=cancel)
        return path, {
            "times": volume.times.round(6).tolist(),
            "indices": volume.indices.tolist(),
            "shape": list(volume.shape),
            "spacing": volume.spacing,
            "source": source.description,
            "untrained": bool(self.service.status()["untrained"]),
        }
