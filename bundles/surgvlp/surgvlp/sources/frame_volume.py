"""A source's sampled frames as one RGB volume file that 3D Slicer opens without any video decoder.

Slicer cannot decode H.264 or DICOM video, so the server decodes for it: one slice per sampled frame, written as a
raw NRRD vector volume (sizes ``3 W H T``, kinds ``RGB-color domain domain domain``), which Slicer loads as an
RGB volume and the module splits into a sequence. Frames are streamed to the file as they are decoded, so a long
video needs the memory of one frame, not of all of them. ``max_size`` shrinks frames whose longer side is larger
(a one-hour video at 1 fps and full HD would be 22 GB); the in-plane spacing grows by the same factor, so a label
volume made at the native size (a referring segmentation) still lies on the same physical extent.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from surgvlp.atomic import atomic_write
from surgvlp.errors import SurgVLPError
from surgvlp.progress import CancelToken, Progress
from surgvlp.sources.base import FrameSource
from surgvlp.sources.frame_array import PROGRESS_EVERY


@dataclass(frozen=True)
class FrameVolume:
    times: np.ndarray  # (T,) seconds from the start of the source
    indices: np.ndarray  # (T,) frame index in the source
    shape: tuple[int, int, int, int]  # (T, H, W, 3) as written
    spacing: float  # in-plane pixel size as written, in native pixels


def _header(shape: tuple[int, int, int, int], spacing: float) -> bytes:
    frames, height, width, _ = shape
    return (
        "NRRD0004\n"
        "# surgvlp sampled video frames: one slice per frame\n"
        "type: uint8\n"
        "dimension: 4\n"
        "space: left-posterior-superior\n"
        f"sizes: 3 {width} {height} {frames}\n"
        f"space directions: none ({spacing!r},0,0) (0,{spacing!r},0) (0,0,1)\n"
        "kinds: RGB-color domain domain domain\n"
        "endian: little\n"
        "encoding: raw\n"
        "space origin: (0,0,0)\n"
        "\n"
    ).encode("ascii")


def _target_size(height: int, width: int, max_size: int | None) -> tuple[int, int, float]:
    longest = max(height, width)
    if max_size is None or longest <= max_size:
        return height, width, 1.0
    scale = max_size / longest
    return max(1, round(height * scale)), max(1, round(width * scale)), longest / max_size


def write_frame_volume(
    source: FrameSource,
    path: Path,
    max_size: int | None = None,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
) -> FrameVolume:
    """Write every sampled frame of ``source`` to ``path`` (NRRD); nothing is left at ``path`` if it fails."""
    from PIL import Image

    if max_size is not None and max_size < 16:
        raise SurgVLPError(f"max_size {max_size}: frames need at least 16 pixels on their longer side")
    total = len(source)
    times, indices = np.empty(total, np.float64), np.empty(total, np.int64)
    written, shape, spacing = 0, None, 1.0
    with atomic_write(Path(path)) as stream:
        for position, frame in enumerate(source):
            if cancel is not None and position % PROGRESS_EVERY == 0:
                cancel.check()
            image = frame.image
            if shape is None:
                height, width, spacing = _target_size(*image.shape[:2], max_size)
                native = image.shape
                shape = (total, height, width, 3)
                stream.write(_header(shape, spacing))
            if image.shape != native:
                raise SurgVLPError(f"{source}: frame {frame.index} is {image.shape[1]}x{image.shape[0]}, the first was "
                                   f"{native[1]}x{native[0]}; frames of one volume must share a size")
            if image.shape[:2] != shape[1:3]:
                image = np.asarray(Image.fromarray(image).resize((shape[2], shape[1]), Image.BILINEAR))
            stream.write(np.ascontiguousarray(image, dtype=np.uint8).tobytes())
            times[position], indices[position] = frame.time, frame.index
            written += 1
            if progress is not None and written % PROGRESS_EVERY == 0:
                progress(written, total)
        if shape is None:
            raise SurgVLPError(f"{source}: no frames in the requested range")
        if written != total:
            raise SurgVLPError(f"{source}: {written} frames decoded, {total} expected; the video may be truncated")
    if progress is not None:
        progress(total, total)
    return FrameVolume(times, indices, shape, spacing)
