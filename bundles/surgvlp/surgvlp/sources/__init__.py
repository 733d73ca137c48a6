"""Frame sources: every video, DICOM object and frame folder read through one interface.

Example::

    source = open_source("case.mp4", fps=1.0)   # or a DICOM file, a frame folder, a DICOM series folder
    len(source), source.duration, source.content_id
    for frame in source:                        # decoded in a background thread
        frame.image, frame.time, frame.index    # (H, W, 3) uint8 RGB, seconds, source frame index

What a path holds is recognised from its content (see :mod:`surgvlp.sources.sniff`), never from its
extension. Sampling picks, for each target time ``start + k / fps``, the first frame at or after the
target minus half a native frame interval (:mod:`surgvlp.sources.sampling`).
"""

from __future__ import annotations

from pathlib import Path

from surgvlp.errors import SurgVLPError
from surgvlp.sources.base import Frame, FrameSource
from surgvlp.sources.dicom_file import read_dicom
from surgvlp.sources.dicom_frames import DicomFramesSource
from surgvlp.sources.dicom_series import DicomSeriesSource
from surgvlp.sources.dicom_video import DicomVideoSource
from surgvlp.sources.frame_folder import FPS_SIDECAR, FrameFolderSource
from surgvlp.sources.sniff import natural_key, sniff
from surgvlp.sources.video import VideoSource

__all__ = [
    "FPS_SIDECAR",
    "DicomFramesSource",
    "DicomSeriesSource",
    "DicomVideoSource",
    "Frame",
    "FrameFolderSource",
    "FrameSource",
    "VideoSource",
    "open_source",
]


def open_source(
    path: str | Path,
    fps: float | None = 1.0,
    start: float | None = None,
    end: float | None = None,
    folder_fps: float | None = None,
) -> FrameSource:
    """Open a video file, DICOM file, frame folder or DICOM series folder, sampled at ``fps``.

    ``fps=None`` yields every native frame; ``start``/``end`` (seconds) restrict the range;
    ``folder_fps`` sets the frame rate of a frame folder or DICOM series (ignored for files).
    """
    path = Path(path)
    sampling = {"fps": fps, "start": start, "end": end}
    if path.is_dir():
        return _open_folder(path, folder_fps, sampling)
    if not path.exists():
        raise SurgVLPError(f"{path}: no such file or folder")
    kind = sniff(path)
    if kind == "video":
        return VideoSource(path, **sampling)
    if kind == "dicom":
        dicom = read_dicom(path)
        if dicom.is_video:
            return DicomVideoSource(dicom, **sampling)
        return DicomFramesSource(dicom, **sampling)
    if kind == "image":
        raise SurgVLPError(f"{path}: is a single image; put the frames of a video in a folder and open the folder")
    if path.stat().st_size == 0:
        raise SurgVLPError(f"{path}: is empty")
    raise SurgVLPError(
        f"{path}: unrecognised content: not a video container (mp4, mov, mkv, webm, avi, mpeg), a DICOM file, "
        "a frame folder or a DICOM series folder"
    )


def _open_folder(folder: Path, folder_fps: float | None, sampling: dict) -> FrameSource:
    """A folder is a frame folder or a DICOM series, depending on which files it holds."""
    if folder_fps is not None and not folder_fps > 0:
        raise SurgVLPError(f"{folder}: folder frame rate must be positive, got folder_fps={folder_fps}")
    try:
        files = sorted((entry for entry in folder.iterdir() if entry.is_file()), key=natural_key)
    except OSError as error:
        raise SurgVLPError(f"{folder}: cannot read folder: {error.strerror or error}") from error
    kinds = {path: sniff(path) for path in files if path.name != "DICOMDIR"}
    images = [path for path, kind in kinds.items() if kind == "image"]
    dicoms = [path for path, kind in kinds.items() if kind == "dicom"]
    if images and dicoms:
        raise SurgVLPError(f"{folder}: holds both image files and DICOM files; keep one kind of frame per folder")
    if images:
        return FrameFolderSource(folder, images, folder_fps=folder_fps, **sampling)
    if dicoms:
        return DicomSeriesSource(folder, dicoms, folder_fps=folder_fps, **sampling)
    raise SurgVLPError(f"{folder}: holds no PNG/JPEG frames and no DICOM instances")
