"""A referring segmentation of one clip: the label volume, what each frame's mask rests on, and its provenance."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from surgvlp import __version__

SCHEMA = "surgvlp.segmentation/1"
Mode = Literal["sam2", "coarse"]
STATES = ("seed", "tracked", "redetected", "lost", "detected", "none")
"""How a frame's mask came about: the tracker's seed, tracked, prompted again after the object was lost, lost
(empty), found by the similarity map alone (coarse mode), or not looked for (no start frame; not confident)."""


@dataclass(frozen=True)
class Segmentation:
    """Masks of the text's target on every sampled frame, in the order and size of ``surgvlp.read_frames(source)``.

    ``labels`` is (T, H, W) uint8, 1 on the target: slice ``t`` belongs to ``times[t]`` (seconds) and source
    frame ``indices[t]``, so it lies over ``read_frames(source).images[t]``. ``scores`` are per frame: SAM2's
    object score in ``"sam2"`` mode, the best cell's probability in ``"coarse"`` mode; ``detection_scores`` are
    always the latter. ``start_frame`` is the position tracking started from, None when the target was never
    found confidently (then every mask is empty).
    """

    labels: np.ndarray
    times: np.ndarray
    indices: np.ndarray
    scores: np.ndarray
    detection_scores: np.ndarray
    states: tuple[str, ...]
    start_frame: int | None
    mode: Mode
    text: str
    negatives: tuple[str, ...]
    untrained: bool
    source: dict[str, Any]
    model: dict[str, Any]
    sam2: dict[str, Any] | None
    settings: dict[str, Any]

    @property
    def areas(self) -> np.ndarray:
        """(T,) target pixels on each frame."""
        return self.labels.reshape(len(self.labels), -1).sum(axis=1, dtype=np.int64)

    @property
    def redetections(self) -> list[int]:
        """Positions where the tracker was prompted again after losing the target."""
        return [position for position, state in enumerate(self.states) if state == "redetected"]

    def to_dict(self) -> dict[str, Any]:
        """Everything but the masks, for the JSON output (see docs/segmentation-schema.md)."""
        height, width = self.labels.shape[1:]
        start = self.start_frame
        return {
            "schema": SCHEMA,
            "mode": self.mode,
            "untrained": self.untrained,
            "prompt": {"text": self.text, "negatives": list(self.negatives)},
            "source": self.source,
            "model": self.model,
            "sam2": self.sam2,
            "settings": self.settings,
            "software": {"surgvlp": __version__},
            "frame_size": [width, height],
            "start_frame": start,
            "start_time": None if start is None else round(float(self.times[start]), 6),
            "redetections": self.redetections,
            "frames": {
                "time": np.round(self.times, 6).tolist(),
                "index": self.indices.tolist(),
                "score": np.round(self.scores.astype(np.float64), 6).tolist(),
                "detection_score": np.round(self.detection_scores.astype(np.float64), 6).tolist(),
                "area": self.areas.tolist(),
                "state": list(self.states),
            },
        }

    def write(self, out: Path | None = None, *, nifti: Path | None = None, json: Path | None = None) -> None:
        """Write the ``.seg.nrrd``, NIfTI and JSON files asked for; they appear together or not at all."""
        from surgvlp.segmentation.outputs import write_outputs

        write_outputs(self, seg_nrrd=out, nifti=nifti, json=json)
