"""SAM2 tracking through transformers' ``Sam2VideoModel``, streamed frame by frame with bounded memory.

The tracker is seeded on the start frame with the detected region, as a box and a point on the best cell
(SAM2 then draws the object's outline itself) or as the region's mask (``input_masks``, which SAM2 takes as
the mask of that frame). It then runs forwards to the last sampled frame, and backwards from the start
frame to the first, with the seed as the memory both directions share. Where the tracked object is lost (its
object score below one half, or an empty mask) on a frame where the similarity map is confident, the
tracker is prompted again there: a re-detection, kept as a conditioning frame.

transformers keeps every frame, every output and every memory of a session. A 10-minute clip would then
hold hundreds of 1024 x 1024 float frames; so after each frame the session is cut back to what SAM2 can
still read: the current frame, the memories of the last ``num_maskmem`` frames, the object pointers of the
last ``max_object_pointers_in_encoder``, the seed and the latest re-detections. Frames are decoded in short
runs (backwards too), so neither the frames nor their features are ever held for the whole clip.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from surgvlp.background import iterate_in_background
from surgvlp.errors import SurgVLPError
from surgvlp.network.encoder import pick_device
from surgvlp.progress import CancelToken
from surgvlp.segmentation.detection import Seed, seed
from surgvlp.segmentation.settings import PromptKind, check_prompt_kind
from surgvlp.sources.base import Frame, FrameSource
from surgvlp.untrained_policy import require_untrained_allowed
from surgvlp.weights import Sam2Folder, WeightStore

if TYPE_CHECKING:
    from transformers import Sam2VideoModel, Sam2VideoProcessor

LOST_SCORE = 0.5
"""Below this object score (the sigmoid of SAM2's object logit) the tracked object counts as lost."""
KEPT_REDETECTIONS = 2
"""Re-detections kept as conditioning frames besides the seed: SAM2 attends to all it keeps, at a cost per frame."""
RUN_FRAMES = 16
"""Frames decoded together when walking the clip (backwards a run at a time)."""
OBJECT_ID = 1
HEAVY_OUTPUTS = ("pred_masks", "high_res_masks")
"""Per-frame outputs that SAM2 needs only within the call that made them."""
MEMORY_OUTPUTS = ("maskmem_features", "maskmem_pos_enc")


@dataclass(frozen=True)
class Sam2Tracker:
    """A SAM2 video model on its device with the processor its configuration implies, and where it came from."""

    model: Sam2VideoModel
    processor: Sam2VideoProcessor
    device: torch.device
    weights: Sam2Folder

    @property
    def untrained(self) -> bool:
        return self.weights.untrained

    @property
    def image_size(self) -> int:
        return self.processor.target_size

    def describe(self) -> dict[str, object]:
        """What every segmentation records about the tracker that drew it."""
        return {
            "name": self.weights.name,
            "folder": str(self.weights.folder),
            "model_sha256": self.weights.sha256,
            "image_size": self.image_size,
            "untrained": self.untrained,
        }

    def pixels(self, image: np.ndarray) -> torch.Tensor:
        """(H, W, 3) uint8 RGB -> SAM2's (3, S, S) input: a square resize and the ImageNet normalisation."""
        writable = image if image.flags.writeable else image.copy()  # decoded frames may be read-only views
        return self.processor(images=writable, return_tensors="pt").pixel_values[0]


def _image_size(config) -> int:
    size = config.image_size
    return int(size if isinstance(size, int) else size[0])


def load_sam2(
    name_or_folder: str | Path,
    *,
    device: str | torch.device | None = None,
    allow_untrained: bool = False,
    store: WeightStore | None = None,
) -> Sam2Tracker:
    """Load a SAM2 tracker once: a name fetched into the weights folder (``sam2-tiny``) or a folder in the
    transformers layout. Recorded files are verified against their SHA-256; random weights are refused unless
    ``allow_untrained``."""
    weights = (store or WeightStore()).resolve_sam2(name_or_folder)
    if weights.untrained:
        require_untrained_allowed(f"SAM2 model {weights.folder}", allow_untrained)
    from transformers import Sam2VideoConfig, Sam2VideoModel, Sam2VideoProcessor
    from transformers.models.sam2.image_processing_sam2 import Sam2ImageProcessor
    from transformers.models.sam2_video.video_processing_sam2_video import Sam2VideoVideoProcessor
    from transformers.utils import logging as transformers_logging

    bars_were_on = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()  # the per-tensor loading bar, on every load, even off a terminal
    try:
        config = Sam2VideoConfig.from_pretrained(weights.folder, local_files_only=True)
        model = Sam2VideoModel.from_pretrained(weights.folder, config=config, local_files_only=True)
    except (OSError, ValueError, TypeError, KeyError, RuntimeError) as error:
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise SurgVLPError(f"SAM2 folder {weights.folder} cannot be loaded: {first}") from None
    finally:
        if bars_were_on:
            transformers_logging.enable_progress_bar()
    target = pick_device(device)
    size = _image_size(config)
    square, quarter = {"height": size, "width": size}, {"height": size // 4, "width": size // 4}
    processor = Sam2VideoProcessor(
        image_processor=Sam2ImageProcessor(size=square, mask_size=quarter),
        video_processor=Sam2VideoVideoProcessor(size=square),
    )
    return Sam2Tracker(model.eval().to(target), processor, target, weights)


@dataclass
class TrackedFrame:
    mask: np.ndarray  # (H, W) bool
    score: float  # the object score, sigmoid of SAM2's object logit
    state: str  # "seed", "tracked", "redetected" or "lost"


class _Session:
    """One object tracked through one clip: prompting, stepping, and cutting the session's memory back."""

    def __init__(self, tracker: Sam2Tracker, frame_size: tuple[int, int], prompt: PromptKind, seed_position: int) -> None:
        self.tracker = tracker
        self.frame_size = frame_size
        self.prompt_kind = prompt
        self.session = tracker.processor.init_video_session(inference_device=tracker.device, dtype=torch.float32)
        config = tracker.model.config
        self.memory_frames = config.num_maskmem
        self.pointer_frames = config.max_object_pointers_in_encoder
        self.seed_position = seed_position

    @property
    def _outputs(self) -> dict[str, dict[int, dict]]:
        return self.session.output_dict_per_obj[self.session.obj_id_to_idx(OBJECT_ID)]

    def _result(self, output) -> tuple[np.ndarray, float]:
        score = float(torch.sigmoid(output.object_score_logits.float()).reshape(-1)[0])
        masks = self.tracker.processor.post_process_masks(
            [output.pred_masks.float().cpu()], original_sizes=[list(self.frame_size)], binarize=True
        )
        return masks[0][0, 0].numpy(), score

    def _prompted(self, position: int, pixels: torch.Tensor, region: Seed, kind: PromptKind) -> tuple[np.ndarray, float]:
        processor, session = self.tracker.processor, self.session
        index = session.obj_id_to_idx(OBJECT_ID)
        # A frame already tracked becomes a conditioning frame again, as on a first prompt.
        session.frames_tracked_per_obj[index].pop(position, None)
        self._outputs["non_cond_frame_outputs"].pop(position, None)
        if kind == "box":
            processor.add_inputs_to_inference_session(
                session, frame_idx=position, obj_ids=OBJECT_ID, input_points=[[[list(region.point)]]],
                input_labels=[[[1]]], input_boxes=[[list(region.box)]], original_size=self.frame_size,
            )
        else:
            processor.add_inputs_to_inference_session(session, frame_idx=position, obj_ids=OBJECT_ID, input_masks=region.mask)
        return self._result(self.tracker.model(inference_session=session, frame_idx=position, frame=pixels))

    def prompt(self, position: int, pixels: torch.Tensor, region: Seed) -> tuple[np.ndarray, float]:
        """Prompt the tracker on this frame; a box that SAM2 finds nothing in falls back to the region's mask."""
        mask, score = self._prompted(position, pixels, region, self.prompt_kind)
        if self.prompt_kind == "box" and is_lost(mask, score):
            mask, score = self._prompted(position, pixels, region, "mask")
        return mask, score

    def step(self, position: int, pixels: torch.Tensor, reverse: bool) -> tuple[np.ndarray, float]:
        return self._result(self.tracker.model(inference_session=self.session, frame_idx=position, frame=pixels, reverse=reverse))

    def forget(self, position: int, reverse: bool) -> None:
        """Cut the session back to what SAM2 reads for the next frame (see the module docstring)."""
        def behind(frame: int) -> int:
            return frame - position if reverse else position - frame

        outputs = self._outputs
        for stored in (*outputs["cond_frame_outputs"].values(), *outputs["non_cond_frame_outputs"].values()):
            for key in HEAVY_OUTPUTS:
                stored.pop(key, None)
        tracked = outputs["non_cond_frame_outputs"]
        for frame in list(tracked):
            if behind(frame) >= self.pointer_frames:
                del tracked[frame]
            elif behind(frame) >= self.memory_frames:
                for key in MEMORY_OUTPUTS:
                    tracked[frame].pop(key, None)
        conditioning = outputs["cond_frame_outputs"]
        redetections = sorted((frame for frame in conditioning if frame != self.seed_position), key=behind)
        for frame in redetections[KEPT_REDETECTIONS:]:
            del conditioning[frame]
        frames = self.session.processed_frames
        self.session.processed_frames = {position: frames[position]} if frames and position in frames else {}

    def restart_from_seed(self) -> None:
        """Forget everything tracked, keeping the seed: the other direction starts from it alone."""
        index = self.session.obj_id_to_idx(OBJECT_ID)
        outputs = self._outputs
        outputs["non_cond_frame_outputs"].clear()
        for frame in [frame for frame in outputs["cond_frame_outputs"] if frame != self.seed_position]:
            del outputs["cond_frame_outputs"][frame]
        self.session.frames_tracked_per_obj[index].clear()
        self.session.processed_frames = {}


def is_lost(mask: np.ndarray, score: float) -> bool:
    return score < LOST_SCORE or not mask.any()


def _runs(source: FrameSource) -> list[tuple[int, np.ndarray]]:
    """The source's sampled frames in runs, each with the sampled position of its first frame."""
    runs, first = [], 0
    for run in source.runs(RUN_FRAMES):
        runs.append((first, run))
        first += len(run)
    return runs


def frames_forward(source: FrameSource, first: int) -> Iterator[tuple[int, Frame]]:
    """Sampled frames ``first``, ``first + 1``, ... to the last, with their positions."""
    for start, run in _runs(source):
        if start + len(run) > first:
            skip = max(0, first - start)
            for offset, frame in enumerate(source.frames_at(run[skip:]), start=start + skip):
                yield offset, frame


def frames_backward(source: FrameSource, last: int) -> Iterator[tuple[int, Frame]]:
    """Sampled frames ``last``, ``last - 1``, ... to the first: each run decoded forwards, then handed out reversed."""
    for start, run in reversed(_runs(source)):
        if start <= last:
            frames = list(source.frames_at(run[: last - start + 1]))
            for offset in reversed(range(len(frames))):
                yield start + offset, frames[offset]


def track(
    tracker: Sam2Tracker,
    source: FrameSource,
    probabilities: np.ndarray,
    confident: np.ndarray,
    start: int,
    frame_size: tuple[int, int],
    threshold: float,
    prompt: PromptKind,
    on_frame: Callable[[int, TrackedFrame], None],
    cancel: CancelToken | None = None,
) -> None:
    """Track the region detected on frame ``start`` through every sampled frame of ``source``, both ways.

    ``probabilities`` are the (T, h, w) similarity maps, ``confident`` which frames may seed a re-detection;
    ``on_frame(position, result)`` hears each frame as it is done (forwards from ``start``, then backwards).
    """
    session = _Session(tracker, frame_size, check_prompt_kind(prompt), start)
    passes = ((False, frames_forward(source, start)), (True, frames_backward(source, start - 1)))
    with torch.inference_mode():
        for reverse, frames in passes:
            if reverse:
                session.restart_from_seed()
            for position, frame in iterate_in_background(frames, depth=RUN_FRAMES, name="surgvlp-track-decoder"):
                if cancel is not None:
                    cancel.check()
                pixels = tracker.pixels(frame.image)
                if position == start:
                    mask, score = session.prompt(position, pixels, seed(probabilities[position], frame_size, threshold))
                    state = "seed"
                else:
                    mask, score = session.step(position, pixels, reverse)
                    state = "tracked"
                    if is_lost(mask, score) and confident[position]:
                        mask, score = session.prompt(position, pixels, seed(probabilities[position], frame_size, threshold))
                        state = "redetected"
                    if is_lost(mask, score):
                        mask, state = np.zeros(frame_size, dtype=bool), "lost"
                session.forget(position, reverse)
                on_frame(position, TrackedFrame(mask, score, state))
