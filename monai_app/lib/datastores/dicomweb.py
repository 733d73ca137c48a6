"""A PACS as a catalogue (``--studies http://HOST:PORT/dicom-web``): its video instances, by SOPInstanceUID.

Listing and retrieval are :class:`~lib.datastores.dicomweb_videos.DicomWebVideos`; this only gives them the
catalogue's shape. A video is fetched whole into memory for each job and decoded there, never written to disk.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from lib.datastores.catalogue import ImageNotFound, SourceData, VideoCatalogue, VideoEntry
from lib.datastores.dicomweb_videos import DicomWebVideos, VideoInstance
from lib.datastores.orthanc_attachments import OrthancAttachments
from lib.datastores.pacs_http import PacsError, UnknownVideo

logger = logging.getLogger(__name__)
DICOMWEB_SUFFIX = "/dicom-web"


class DicomWebCatalogue(VideoCatalogue):
    def __init__(self, url: str) -> None:
        self.pacs = DicomWebVideos(url)
        root = url[: -len(DICOMWEB_SUFFIX)] if url.endswith(DICOMWEB_SUFFIX) else None
        self.attachments = OrthancAttachments(root) if root else None

    @property
    def description(self) -> str:
        return f"the DICOMweb server {self.pacs.url}"

    def entries(self) -> dict[str, VideoEntry]:
        return {video.id: _entry(video) for video in self.pacs.videos()}

    def entry(self, image_id: str) -> VideoEntry:
        """One QIDO-RS lookup, not a whole listing."""
        return _entry(self._video(image_id))

    def source_data(self, image_id: str) -> tuple[SourceData, str]:
        video = self._video(image_id)
        try:
            return self.pacs.retrieve(video), video.info["name"]
        except UnknownVideo as error:
            raise ImageNotFound(str(error)) from None

    def keep_label(self, image_id: str, kind: str, file: Path) -> dict[str, Any]:
        """A final label is also attached to its video in Orthanc; a PACS that refuses keeps the local copy only,
        and the label's record says so."""
        if self.attachments is None:
            return {"pacs_copy": "not stored: the DICOMweb server is not an Orthanc at .../dicom-web"}
        try:
            self.attachments.store(image_id, f"surgvlp-{kind}", file.read_bytes())
        except PacsError as error:
            logger.warning("label of %s kept locally only: %s", image_id, error)
            return {"pacs_copy": f"not stored: {error}"}
        return {"pacs_copy": f"attachment surgvlp-{kind}"}

    def _video(self, image_id: str) -> VideoInstance:
        try:
            return self.pacs.video(image_id)
        except UnknownVideo as error:
            raise ImageNotFound(f"no video {image_id!r} in {self.description}: {error}") from None


def _entry(video: VideoInstance) -> VideoEntry:
    return VideoEntry(video.id, dict(video.info))
