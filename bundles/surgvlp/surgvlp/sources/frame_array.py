"""A source's sampled frames as one array, for callers that hand the pixels on (the server sends them to Slicer)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from surgvlp.errors import SurgVLPError
from surgvlp.progress import CancelToken, Progress
from surgvlp.sources.base import FrameSource

PROGRESS_EVERY = 16
"""Frames between progress reports and cancel checks: decoding one frame takes milliseconds."""


@dataclass(frozen=True)
class SampledFrames:
    images: np.ndarray  # (T, H, W, 3) uint8 RGB
    times: np.ndarray  # (T,) seconds from the start of the source
    indices: np.ndarray  # (T,) frame index in the source


def read_frames(source: FrameSource, progress: Progress | None = None, cancel: CancelToken | None = None) -> SampledFrames:
    """Every sampled frame of ``source``, in order, with its exact time; all frames must share one size.

    The array is allocated once from the first frame's size (T x H x W x 3 bytes), so memory is what the
    frames need and no more.
    """
    total = len(source)
    images: np.ndarray | None = None
    times = np.empty(total, dtype=np.float64)
    indices = np.empty(total, dtype=np.int64)
    for position, frame in enumerate(source):
        if cancel is not None and position % PROGRESS_EVERY == 0:
            cancel.check()
        if images is None:
            images = np.empty((total, *frame.image.shape), dtype=np.uint8)
        if frame.image.shape != images.shape[1:]:
            raise SurgVLPError(
                f"{source}: frame {frame.index} is {frame.image.shape[1]}x{frame.image.shape[0]}, the first was "
                f"{images.shape[2]}x{images.shape[1]}; frames of one array must share a size"
            )
        images[position], times[position], indices[position] = frame.image, frame.time, frame.index
        if progress is not None and (position + 1) % PROGRESS_EVERY == 0:
            progress(position + 1, total)
    if images is None:
        raise SurgVLPError(f"{source}: no frames in the requested range")
    if progress is not None:
        progress(total, total)
    return SampledFrames(images, times, indices)
