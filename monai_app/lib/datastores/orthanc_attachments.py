"""Labels filed back into Orthanc beside the video they describe, as attachments of its instance.

DICOMweb has no place for a timeline JSON or a ``.seg.nrrd`` (and no DICOM SEG can reference a video
source, DESIGN section 4), so this uses Orthanc's own REST API at its root URL (the DICOMweb URL without
``/dicom-web``): ``PUT /instances/{id}/attachments/{name}``. Orthanc accepts only the names registered in
its ``UserContentType`` setting and serves each with the content type registered there; ``orthanc.json``
registers ``surgvlp-timeline`` (application/json) and ``surgvlp-segmentation`` (application/octet-stream).
An attachment holds one copy: storing again replaces it, so Orthanc holds the latest label and the app's
own label store keeps every version. The DICOM instance itself is never changed.
"""

from __future__ import annotations

import re

from surgvlp.errors import SurgVLPError

from lib.datastores.pacs_http import PacsEndpoint, PacsError, UnknownVideo, check_video_id

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


class OrthancAttachments:
    """Attachments of video instances on one Orthanc, ``url`` its REST root (``http://127.0.0.1:8042``)."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        self._server = PacsEndpoint(url, timeout, example="http://127.0.0.1:8042")
        self.url = self._server.url

    def store(self, video_id: str, name: str, data: bytes) -> None:
        """Attach ``data`` to the instance ``video_id`` (a SOPInstanceUID) under ``name``, replacing what was there."""
        path = f"{self._instance_path(video_id)}/attachments/{_checked_name(name)}"
        refused = PacsError(
            f"{self.url}: Orthanc does not accept attachments named {name!r}: register the name under "
            "UserContentType in its configuration (monai_app/orthanc.json registers surgvlp-timeline and "
            "surgvlp-segmentation)"
        )
        headers = {"Content-Type": "application/octet-stream"}
        with self._server.request("PUT", path, f"storing {name} of {video_id}", headers, bytes(data), refused) as answer:
            self._server.read(answer, f"storing {name} of {video_id}")

    def read(self, video_id: str, name: str) -> tuple[bytes, str] | None:
        """The attachment ``name`` of ``video_id`` and the content type Orthanc serves it with; None if there is none."""
        path = f"{self._instance_path(video_id)}/attachments/{_checked_name(name)}/data"
        doing = f"reading {name} of {video_id}"
        try:
            with self._server.request("GET", path, doing, {}, not_found=_Absent()) as answer:
                return self._server.read(answer, doing), answer.headers.get("Content-Type", "application/octet-stream")
        except _Absent:
            return None

    def _instance_path(self, video_id: str) -> str:
        """Orthanc's REST path of the instance with this SOPInstanceUID."""
        uid = check_video_id(video_id)
        found = self._server.json("POST", "/tools/lookup", f"looking up {uid}", uid.encode("ascii"))
        if not isinstance(found, list):
            raise PacsError(f"{self.url}: looking up {uid} answered something that is not a list")
        paths = [item.get("Path") for item in found if isinstance(item, dict) and item.get("Type") == "Instance"]
        if not paths or not isinstance(paths[0], str):
            raise UnknownVideo(f"{uid}: no such instance on {self.url}")
        return paths[0]


class _Absent(SurgVLPError):
    """An attachment that was never stored (Orthanc answers 404)."""


def _checked_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise SurgVLPError(f"{name!r}: not an attachment name (letters, digits, '-' and '_', at most 64)")
    return name
