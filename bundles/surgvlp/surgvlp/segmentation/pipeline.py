"""Referring segmentation of one frame source: similarity maps -> start frame -> SAM2 tracking or coarse masks.

The CLI, the MONAI Label app and the benchmark all come through :func:`segment`, so a mask means the same
wherever it was made. :func:`segment_maps` is the second half alone, for callers that already hold the maps.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from surgvlp.errors import SurgVLPError
from surgvlp.network.loading import LoadedModel
from surgvlp.progress import CancelToken, Progress
from surgvlp.segmentation.coarse import coarse_masks
from surgvlp.segmentation.detection import frame_scores, start_frame
from surgvlp.segmentation.prompts import DEFAULT_NEGATIVES, check_prompts
from surgvlp.segmentation.result import Segmentation
from surgvlp.segmentation.settings import DetectionSettings, PromptKind, check_prompt_kind
from surgvlp.segmentation.similarity import SimilarityMaps, similarity_maps
from surgvlp.segmentation.tracking import Sam2Tracker, TrackedFrame, load_sam2, track
from surgvlp.sources import FrameSource

DEFAULT_THREADS = 1
"""Torch CPU threads while segmenting. SAM2's many small operations scale badly: on a 2-core machine shared
with anything else, two threads were 40 times slower per frame than one."""


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``threads`` intra-op CPU threads (None: as they are), restoring the setting after."""
    if threads is None:
        yield
        return
    if not isinstance(threads, int) or threads < 1:
        raise SurgVLPError(f"threads must be a whole number, at least 1, got {threads!r}")
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _tracker(sam2: Sam2Tracker | str | Path | None, model: LoadedModel, allow_untrained: bool) -> Sam2Tracker | None:
    if sam2 is None or isinstance(sam2, Sam2Tracker):
        return sam2
    return load_sam2(sam2, device=model.encoder.device, allow_untrained=allow_untrained)


def segment(
    model: LoadedModel,
    source: FrameSource,
    text: str,
    *,
    negatives: Sequence[str] = DEFAULT_NEGATIVES,
    sam2: Sam2Tracker | str | Path | None = None,
    allow_untrained: bool = False,
    threshold: float = 0.5,
    confidence: float = 0.8,
    consecutive: int = 3,
    prompt: PromptKind = "box",
    threads: int | None = DEFAULT_THREADS,
    batch_size: int = 8,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
) -> Segmentation:
    """Masks of what ``text`` names on every sampled frame of ``source``, training-free.

    ``negatives`` are what the target is contrasted with on every cell of the similarity map. ``sam2`` is a
    loaded :class:`Sam2Tracker` (load it once with :func:`surgvlp.load_sam2` to serve many requests), a fetched
    name (``sam2-tiny``) or a folder; None gives the coarse masks of the maps alone (``mode: "coarse"``).
    ``allow_untrained`` applies to a SAM2 folder loaded here. ``threshold``, ``confidence`` and ``consecutive``
    are the :class:`~surgvlp.segmentation.detection.DetectionSettings`; ``prompt`` seeds SAM2 with a box and
    a point (``"box"``) or the region's mask (``"mask"``). ``threads`` sets torch's CPU threads for the call.
    ``progress`` hears (steps done, steps in all): one step per frame for the maps, and with SAM2 one more per
    frame tracked; ``cancel`` is checked between batches and frames, and a cancel raises
    :class:`surgvlp.Cancelled` before anything is returned.
    """
    settings = DetectionSettings(threshold, confidence, consecutive)
    check_prompts(text, negatives)
    check_prompt_kind(prompt)
    with torch_threads(threads):
        tracker = _tracker(sam2, model, allow_untrained)
        total = len(source) * (2 if tracker is not None else 1)
        maps = similarity_maps(model, source, text, negatives, batch_size=batch_size, progress=progress, total=total, cancel=cancel)
        return segment_maps(
            maps, source, tracker=tracker, settings=settings, prompt=prompt, threads=threads, progress=progress, cancel=cancel
        )


def segment_maps(
    maps: SimilarityMaps,
    source: FrameSource,
    *,
    tracker: Sam2Tracker | None = None,
    settings: DetectionSettings | None = None,
    prompt: PromptKind = "box",
    threads: int | None = DEFAULT_THREADS,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
) -> Segmentation:
    """:func:`segment` from similarity maps already made for ``source``: detection, then tracking or coarse masks."""
    settings = settings or DetectionSettings()
    if len(maps) != len(source):
        raise SurgVLPError(f"the similarity maps cover {len(maps)} frames, the source samples {len(source)}")
    count = len(maps)
    detection = frame_scores(maps)
    confident = detection >= settings.confidence
    start = start_frame(confident, settings.consecutive)
    labels = np.zeros((count, *maps.frame_size), dtype=np.uint8)
    scores = np.zeros(count, dtype=np.float32)
    states = ["none"] * count
    total = count * (2 if tracker is not None else 1)
    done = count

    def tracked(position: int, result: TrackedFrame) -> None:
        nonlocal done
        labels[position], scores[position], states[position] = result.mask, result.score, result.state
        done += 1
        if progress is not None:
            progress(done, total)

    def detected(position: int, mask: np.ndarray, state: str) -> None:
        labels[position], scores[position], states[position] = mask, detection[position], state

    with torch_threads(threads):
        if tracker is None:
            coarse_masks(maps, confident, settings.threshold, detected)
        elif start is not None:
            track(tracker, source, maps.probabilities, confident, start, maps.frame_size, settings.threshold, prompt, tracked, cancel)
    if progress is not None:
        progress(total, total)
    untrained = bool(maps.model.get("untrained")) or (tracker is not None and tracker.untrained)
    return Segmentation(
        labels=labels,
        times=maps.times,
        indices=maps.indices,
        scores=scores,
        detection_scores=detection.astype(np.float32),
        states=tuple(states),
        start_frame=start,
        mode="coarse" if tracker is None else "sam2",
        text=maps.text,
        negatives=maps.negatives,
        untrained=untrained,
        source=source.description,
        model=maps.model,
        sam2=None if tracker is None else tracker.describe(),
        settings=settings.to_dict() | {"prompt": prompt if tracker is not None else None, "threads": threads},
    )
