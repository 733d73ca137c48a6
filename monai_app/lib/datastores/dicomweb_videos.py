"""The video instances of a DICOMweb server (a PACS such as Orthanc): listed with QIDO-RS, fetched with WADO-RS.

MONAI Label's own DICOMweb datastore converts series to volumes with SimpleITK, which cannot read MPEG
video, and downloads dcmqi at start-up; this class does neither. It lists DICOM video and multi-frame
instances and fetches one instance as the bytes of its DICOM file, which ``surgvlp.open_source`` decodes
where they lie in memory (same frames and same content id as the file on disk).

Only the configured base URL is ever contacted: the retrieve URLs a server puts in its answers are ignored
(Orthanc builds them from its ``Host`` setting), no proxy is used and no redirect is followed. Nothing is
fetched until a method is called. Errors: :class:`~lib.datastores.pacs_http.PacsError` (unreachable, bad
answer) and :class:`~lib.datastores.pacs_http.UnknownVideo` (no such video).

Example::

    pacs = DicomWebVideos("http://127.0.0.1:8042/dicom-web")
    for video in pacs.videos():
        video.id, video.info["name"], video.info["frames"]
    source = surgvlp.open_source(pacs.retrieve(video.id), fps=1, name=video.info["name"])
"""

from __future__ import annotations

import http.client
import io
from dataclasses import dataclass
from email.message import Message
from typing import Any, BinaryIO
from urllib.parse import urlencode

from pydicom.datadict import tag_for_keyword

from surgvlp.errors import SurgVLPError
from surgvlp.sources.dicom_uids import MULTIFRAME_SOP_CLASSES, VIDEO_SOP_CLASSES, uid_name

from lib.datastores.pacs_http import PacsEndpoint, PacsError, UnknownVideo, check_video_id

_ATTRIBUTES = (
    "SOPClassUID",
    "SOPInstanceUID",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "PatientID",
    "PatientName",
    "StudyDate",
    "StudyDescription",
    "SeriesDescription",
    "SeriesNumber",
    "InstanceNumber",
    "Modality",
    "NumberOfFrames",
    "Rows",
    "Columns",
    "FrameTime",
    "CineRate",
)
"""What each listed instance reports; QIDO-RS answers carry them under their hexadecimal tags."""

_TAGS = {keyword: f"{tag_for_keyword(keyword):08X}" for keyword in _ATTRIBUTES}
_RETRIEVE_ACCEPT = 'multipart/related; type="application/dicom"; transfer-syntax=*'
"""WADO-RS media type of the file as stored: without ``transfer-syntax=*`` Orthanc transcodes, and fails on video (500)."""
_CHUNK = 1 << 20
_TAIL = 1 << 16
"""How far from the end of a multipart answer its closing delimiter may lie (the epilogue is tiny)."""


@dataclass(frozen=True)
class VideoInstance:
    """One listed instance: ``id`` is its SOPInstanceUID, ``info`` what a datastore shows about it."""

    id: str
    study_uid: str
    series_uid: str
    info: dict[str, Any]


class DicomWebVideos:
    """The DICOM video (Video Endoscopic, Photographic, Microscopic) and multi-frame instances of one server.

    ``url`` is the DICOMweb root, e.g. ``http://127.0.0.1:8042/dicom-web``; ``timeout`` (seconds) bounds each
    connect and each read; ``page_size`` is the QIDO-RS ``limit`` per request when listing.
    """

    def __init__(self, url: str, timeout: float = 30.0, page_size: int = 500) -> None:
        if not isinstance(page_size, int) or page_size < 1:
            raise SurgVLPError(f"page_size {page_size!r}: must be a whole number of instances, at least 1")
        self._server = PacsEndpoint(url, timeout, example="http://127.0.0.1:8042/dicom-web")
        self.url = self._server.url
        self.page_size = page_size

    def videos(self) -> list[VideoInstance]:
        """Every video and multi-frame instance (one QIDO-RS search per page), sorted by study, series, instance."""
        classes = ",".join(sorted(VIDEO_SOP_CLASSES | MULTIFRAME_SOP_CLASSES))
        found: dict[str, VideoInstance] = {}
        offset = 0
        while True:
            query = {"SOPClassUID": classes, "limit": self.page_size, "offset": offset}
            page = [_instance(item) for item in self._search(query)]
            new = {instance.id: instance for instance in page if instance.id not in found}
            found.update(new)
            if len(page) < self.page_size or not new:  # the last page, or a server that ignores the offset
                break
            offset += len(page)
        return sorted((instance for instance in found.values() if _is_video(instance)), key=_listing_order)

    def video(self, video_id: str) -> VideoInstance:
        """The video instance ``video_id`` (a SOPInstanceUID), looked up on the server now."""
        matches = [_instance(item) for item in self._search({"SOPInstanceUID": check_video_id(video_id)})]
        matches = [instance for instance in matches if instance.id == video_id]
        if not matches:
            raise UnknownVideo(f"{video_id}: no such instance on {self.url}")
        instance = matches[0]
        if not _is_video(instance):
            frames = instance.info["frames"]
            raise UnknownVideo(
                f"{video_id}: is a {instance.info['sop_class']} instance with {frames or 1} frame(s), not a video"
            )
        return instance

    def retrieve(self, video: str | VideoInstance) -> bytes:
        """The DICOM file of a video instance, as stored on the server (WADO-RS), read into one buffer."""
        instance = video if isinstance(video, VideoInstance) else self.video(video)
        path = f"/studies/{instance.study_uid}/series/{instance.series_uid}/instances/{instance.id}"
        doing = f"retrieving {instance.id}"
        gone = UnknownVideo(f"{instance.id}: no longer on {self.url}")
        with self._server.request("GET", path, doing, {"Accept": _RETRIEVE_ACCEPT}, not_found=gone) as response:
            try:
                return _read_single_part(response, response.headers.get("Content-Type", ""))
            except PacsError as error:
                raise PacsError(f"{self.url}: {doing}: {error}") from None
            except (OSError, http.client.HTTPException) as error:
                raise PacsError(f"{self.url}: {doing}: connection lost: {error}") from error

    def _search(self, query: dict[str, Any]) -> list[dict[str, Any]]:
        """One QIDO-RS instance search, returning the DICOM JSON objects."""
        parameters = [*query.items(), *(("includefield", keyword) for keyword in _ATTRIBUTES)]
        answer = self._server.json("GET", f"/instances?{urlencode(parameters)}", "searching")
        if answer is None:  # 204 No Content: nothing matched
            return []
        if not isinstance(answer, list) or not all(isinstance(item, dict) for item in answer):
            raise PacsError(f"{self.url}: searching answered something that is not a DICOM JSON list")
        return answer


def _read_single_part(stream: BinaryIO, content_type: str) -> bytes:
    """The body of the one part of a multipart answer (``content_type`` is the answer's), in a single buffer.

    The bytes go from the socket into one growing buffer (no list of chunks joined at the end); the closing
    delimiter is then found in its last bytes and cut off in place, so the result is that buffer itself.
    """
    header = Message()
    header["Content-Type"] = content_type
    boundary = header.get_param("boundary")
    if header.get_content_type() != "multipart/related" or not isinstance(boundary, str) or not boundary:
        raise PacsError(f"the answer is {content_type or 'untyped'}, not multipart/related with a boundary")
    delimiter = b"--" + boundary.encode("ascii", "replace")
    while True:  # the preamble, normally empty, ends at the first delimiter line
        line = stream.readline(len(delimiter) + 1024)
        if not line:
            raise PacsError("the multipart answer holds no part")
        if line.rstrip(b"\r\n") == delimiter:
            break
    headers = http.client.parse_headers(stream)
    if headers.get_content_type() != "application/dicom":
        raise PacsError(f"the answer holds {headers.get_content_type()}, not application/dicom")
    buffer = io.BytesIO()
    chunk = bytearray(_CHUNK)
    view = memoryview(chunk)
    while count := stream.readinto(chunk):
        buffer.write(view[:count])
    size = buffer.tell()
    tail_start = max(0, size - _TAIL)
    with buffer.getbuffer() as data:
        end = bytes(data[tail_start:]).rfind(b"\r\n" + delimiter)
    if end < 0:
        raise PacsError(f"the multipart answer ends without its closing delimiter after {size} bytes: truncated?")
    buffer.truncate(tail_start + end)
    content = buffer.getvalue()
    declared = headers.get("Content-Length")
    if declared is not None and declared.strip().isdigit() and int(declared) != len(content):
        raise PacsError(f"the DICOM part holds {len(content)} bytes, its header says {int(declared)}")
    return content


def _instance(item: dict[str, Any]) -> VideoInstance:
    """A QIDO-RS instance (DICOM JSON) as a listing entry."""
    value = {keyword: _first_value(item, keyword) for keyword in _ATTRIBUTES}
    frame_time, cine_rate = _number(value["FrameTime"]), _number(value["CineRate"])
    fps = 1000.0 / frame_time if frame_time else cine_rate or None
    sop_class = str(value["SOPClassUID"] or "")
    text = {keyword: str(value[keyword] or "") for keyword in ("PatientID", "StudyDescription", "SeriesDescription")}
    info = {
        "name": " / ".join(part for part in text.values() if part) or uid_name(sop_class),
        "patient_id": text["PatientID"],
        "patient_name": str(value["PatientName"] or ""),
        "study_date": str(value["StudyDate"] or ""),
        "study_description": text["StudyDescription"],
        "series_description": text["SeriesDescription"],
        "series_number": _integer(value["SeriesNumber"]),
        "instance_number": _integer(value["InstanceNumber"]),
        "modality": str(value["Modality"] or ""),
        "sop_class": uid_name(sop_class),
        "sop_class_uid": sop_class,
        "frames": _integer(value["NumberOfFrames"]),
        "width": _integer(value["Columns"]),
        "height": _integer(value["Rows"]),
        "fps": fps,
        "study_instance_uid": str(value["StudyInstanceUID"] or ""),
        "series_instance_uid": str(value["SeriesInstanceUID"] or ""),
        "sop_instance_uid": str(value["SOPInstanceUID"] or ""),
    }
    return VideoInstance(info["sop_instance_uid"], info["study_instance_uid"], info["series_instance_uid"], info)


def _is_video(instance: VideoInstance) -> bool:
    """Video SOP classes always, multi-frame image classes with more than one frame; all three UIDs known."""
    sop_class, frames = instance.info["sop_class_uid"], instance.info["frames"] or 1
    video = sop_class in VIDEO_SOP_CLASSES or (sop_class in MULTIFRAME_SOP_CLASSES and frames > 1)
    return video and all((instance.id, instance.study_uid, instance.series_uid))


def _listing_order(instance: VideoInstance) -> tuple:
    info = instance.info
    return (info["study_date"], instance.study_uid, info["series_number"] or 0, info["instance_number"] or 0, instance.id)


def _first_value(item: dict[str, Any], keyword: str) -> Any:
    """The first value of an attribute in DICOM JSON (PS3.18 F.2); a person name gives its alphabetic form."""
    element = item.get(_TAGS[keyword])
    values = element.get("Value") if isinstance(element, dict) else None
    if not values:
        return None
    value = values[0]
    return value.get("Alphabetic", "") if isinstance(value, dict) else value


def _number(value: Any) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _integer(value: Any) -> int | None:
    number = _number(value)
    return int(number) if number is not None else None
