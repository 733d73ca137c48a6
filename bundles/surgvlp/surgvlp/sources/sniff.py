"""Recognising what a file holds from its first bytes, never from its name."""

from __future__ import annotations

import re
from pathlib import Path

from surgvlp.errors import SurgVLPError
from surgvlp.sources.input_file import InputFile

_HEAD_BYTES = 192

_VIDEO_BOXES = (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip")
_VIDEO_PREFIXES = (
    b"\x1a\x45\xdf\xa3",  # EBML: Matroska, WebM
    b"\x00\x00\x01",  # MPEG program stream, MPEG-1/2 video, H.264/HEVC Annex B (3-byte start code)
    b"\x00\x00\x00\x01",  # H.264 / HEVC Annex B elementary stream (4-byte start code)
    b"OggS",
    b"FLV",
)
_IMAGE_PREFIXES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff")


def sniff(file: Path | InputFile) -> str | None:
    """``"dicom"``, ``"video"``, ``"image"`` (PNG/JPEG) or None for anything else."""
    file = InputFile.of(file)
    try:
        with file.open() as stream:
            head = stream.read(_HEAD_BYTES)
    except OSError as error:
        raise SurgVLPError(f"{file}: cannot read file: {error.strerror or error}") from error
    if head[128:132] == b"DICM":
        return "dicom"
    if head[4:8] in _VIDEO_BOXES or head.startswith(_VIDEO_PREFIXES):
        return "video"
    if head[:4] == b"RIFF" and head[8:12] in (b"AVI ", b"AVIX"):
        return "video"
    if len(head) > 188 and head[0] == head[188] == 0x47:  # MPEG transport stream sync bytes
        return "video"
    if head.startswith(_IMAGE_PREFIXES):
        return "image"
    return None


def natural_key(path: Path) -> list[int | str]:
    """Sort key that puts ``f_2`` before ``f_10``."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]
