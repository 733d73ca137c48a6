"""Where the videos of a datastore come from: a folder here, or a PACS over DICOMweb (``dicomweb.py``).

The datastore (``video_datastore.py``) keeps labels the same way for both; a catalogue only lists what it holds
and hands out the bytes or the path of one video for the core's ``surgvlp.open_source``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Union

from surgvlp.errors import SurgVLPError

SourceData = Union[Path, bytes, BinaryIO]


class ImageNotFound(SurgVLPError):
    """An image id that names no video of this datastore (ids are never paths)."""


class UploadRefused(SurgVLPError):
    """This datastore does not take the upload (a PACS is written by the PACS, an existing case is kept)."""


@dataclass(frozen=True)
class VideoEntry:
    id: str
    info: dict[str, Any] = field(default_factory=dict)


class VideoCatalogue(ABC):
    @property
    @abstractmethod
    def description(self) -> str:
        """Where the videos are, for ``/info`` and messages."""

    @abstractmethod
    def entries(self) -> dict[str, VideoEntry]:
        """Every video by id, listed afresh (the folder or the PACS may have changed since the last call)."""

    @abstractmethod
    def source_data(self, image_id: str) -> tuple[SourceData, str]:
        """What ``surgvlp.open_source`` reads for ``image_id``, and the name messages use for it."""

    def uri(self, image_id: str) -> str:
        """A local path for the stock download endpoint; empty where the video is not a local file."""
        return ""

    def keep_label(self, image_id: str, kind: str, file: Path) -> dict[str, Any]:
        """Also file a saved label where the video lives (a PACS); returns what the label's record notes about it."""
        return {}

    def add(self, image_id: str, file: Path) -> str:
        raise UploadRefused(f"{self.description} takes no uploads through MONAI Label; add videos to it directly")

    def entry(self, image_id: str) -> VideoEntry:
        entry = self.entries().get(image_id)
        if entry is None:
            raise ImageNotFound(f"no video {image_id!r} in {self.description}")
        return entry
