"""Frame sources: every video, DICOM object and frame folder read through one interface.

Example::

    source = open_source("case.mp4", fps=1.0)   # or a DICOM file, a frame folder, a DICOM series folder,
                                                # or the bytes (or a binary file object) of a video or DICOM file
    len(source), source.duration, source.content_id
    for frame in source:                        # decoded in a background thread
        frame.image, frame.time, frame.index    # (H, W, 3) uint8 RGB, seconds, source frame index

What a path holds is recognised from its content (see :mod:`surgvlp.sources.sniff`), never from its
extension. Bytes are decoded where they lie, in memory, and get the content id of the same file on disk.
Sampling picks, for each target time ``start + k / fps``, the first frame at or after the target minus
half a native frame interval (:mod:`surgvlp.sources.sampling`).
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
from surgvlp.sources.input_file import InputFile, SourceData
from surgvlp.sources.sniff import natural_key, sniff
from surgvlp.sources.video import VideoSource

_IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".jpe", ".jp2", ".j2k", ".bmp", ".tif", ".tiff", ".gif", ".webp"})

__all__ = [
    "FPS_SIDECAR",
    "DicomFramesSource",
    "DicomSeriesSource",
    "DicomVideoSource",
    "Frame",
    "FrameFolderSource",
    "FrameSource",
    "InputFile",
    "VideoSource",
    "open_source",
]


def open_source(
    source: SourceData,
    fps: float | None = 1.0,
    start: float | None = None,
    end: float | None = None,
    folder_fps: float | None = None,
    name: str | None = None,
) -> FrameSource:
    """Open a video file, DICOM file, frame folder or DICOM series folder, sampled at ``fps``.

    ``source`` is a path, or the bytes of a video or DICOM file (``bytes`` or a binary file object, read from
    its current position to the end, as a DICOM object fetched from a PACS arrives), which ``name`` then
    labels in messages. ``fps=None`` yields every native frame; ``start``/``end`` (seconds) restrict the
    range; ``folder_fps`` sets the frame rate of a frame folder or DICOM series (ignored for files).
    """
    sampling = {"fps": fps, "start": start, "end": end}
    if isinstance(source, (str, Path)):
        path = Path(source)
        if path.is_dir():
            return _open_folder(path, folder_fps, sampling)
        if not path.exists():
            raise SurgVLPError(f"{path}: no such file or folder")
    file = InputFile.of(source, name)
    kind = sniff(file)
    if kind == "video":
        return VideoSource(file, **sampling)
    if kind == "dicom":
        dicom = read_dicom(file)
        if dicom.is_video:
            return DicomVideoSource(dicom, **sampling)
        return DicomFramesSource(dicom, **sampling)
    if kind == "image":
        raise SurgVLPError(f"{file}: is a single image; put the frames of a video in a folder and open the folder")
    if _is_empty(file):
        raise SurgVLPError(f"{file}: is empty")
    raise SurgVLPError(
        f"{file}: unrecognised content: not a video container (mp4, mov, mkv, webm, avi, mpeg), a DICOM file, "
        "a frame folder or a DICOM series folder"
    )


def _is_empty(file: InputFile) -> bool:
    return file.path.stat().st_size == 0 if file.path is not None else not file.data


def _open_folder(folder: Path, folder_fps: float | None, sampling: dict) -> FrameSource:
    """A folder is a frame folder or a DICOM series, depending on which files it holds.

    A file named like a frame (an image extension, or a number at the end of its name) that is neither a
    PNG/JPEG image nor a DICOM instance is refused rather than skipped, so that a frame never silently
    goes missing; other files (notes, the frame-rate sidecar, hidden files) are left alone.
    """
    if folder_fps is not None and not folder_fps > 0:
        raise SurgVLPError(f"{folder}: folder frame rate must be positive, got folder_fps={folder_fps}")
    try:
        files = sorted((entry for entry in folder.iterdir() if entry.is_file()), key=natural_key)
    except OSError as error:
        raise SurgVLPError(f"{folder}: cannot read folder: {error.strerror or error}") from error
    files = [path for path in files if path.name != "DICOMDIR" and not path.name.startswith(".")]
    kinds = {path: sniff(path) for path in files}
    images = [path for path, kind in kinds.items() if kind == "image"]
    dicoms = [path for path, kind in kinds.items() if kind == "dicom"]
    if images and dicoms:
        raise SurgVLPError(f"{folder}: holds both image files and DICOM files; keep one kind of frame per folder")
    unreadable = [path for path, kind in kinds.items() if kind is None and _named_like_a_frame(path)]
    if unreadable:
        raise SurgVLPError(
            f"{unreadable[0]}: is named like a frame but is not a PNG/JPEG image or a DICOM instance"
            + (f" (nor are {len(unreadable) - 1} more files in the folder)" if len(unreadable) > 1 else "")
            + "; remove it from the folder or replace it with the frame"
        )
    if images:
        return FrameFolderSource(folder, images, folder_fps=folder_fps, **sampling)
    if dicoms:
        return DicomSeriesSource(folder, dicoms, folder_fps=folder_fps, **sampling)
    raise SurgVLPError(f"{folder}: holds no PNG/JPEG frames and no DICOM instances")


def _named_like_a_frame(path: Path) -> bool:
    return path.suffix.lower() in _IMAGE_SUFFIXES or path.stem[-1:].isdigit()
