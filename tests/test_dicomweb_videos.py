"""Videos from a PACS: listing and retrieving DICOM video through a real Orthanc's DICOMweb API, and labels
filed back as Orthanc attachments.

References are independent of the code under test: pydicom reading the uploaded files, the mp4 the DICOM
video wraps, the frame sources opening the local files, and Orthanc's own REST API.
"""

from __future__ import annotations

import http.client
import io
import json
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.encaps import generate_pixel_data_frame

import surgvlp
from surgvlp.errors import SurgVLPError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "monai_app"))  # the app's `lib` package, as MONAI Label imports it

from lib.datastores.dicomweb_videos import _RETRIEVE_ACCEPT, DicomWebVideos, _read_single_part  # noqa: E402
from lib.datastores.orthanc_attachments import OrthancAttachments  # noqa: E402
from lib.datastores.pacs_http import PacsError, UnknownVideo  # noqa: E402
from orthanc import free_port  # noqa: E402
from orthanc import sop_instance_uid as uid  # noqa: E402


@pytest.fixture(scope="module")
def pacs(orthanc, orthanc_case) -> DicomWebVideos:
    return DicomWebVideos(orthanc.dicomweb, timeout=10)


def test_lists_exactly_the_video_and_multiframe_instances_with_their_info(pacs, orthanc_case) -> None:
    videos = pacs.videos()
    expected = [orthanc_case.dicom_video, orthanc_case.dicom_multiframe]  # series 1, then series 2
    assert [video.id for video in videos] == [uid(path) for path in expected]
    for video, path in zip(videos, expected):
        dataset = pydicom.dcmread(path, stop_before_pixels=True)
        frame_time = float(dataset.FrameTime)
        assert (video.study_uid, video.series_uid) == (dataset.StudyInstanceUID, dataset.SeriesInstanceUID)
        assert video.info["name"] == f"{dataset.PatientID} / {dataset.StudyDescription} / {dataset.SeriesDescription}"
        assert {key: video.info[key] for key in ("patient_id", "study_description", "series_description", "modality")} == {
            "patient_id": dataset.PatientID,
            "study_description": dataset.StudyDescription,
            "series_description": dataset.SeriesDescription,
            "modality": dataset.Modality,
        }
        assert video.info["patient_name"] == str(dataset.PatientName)
        assert video.info["sop_class_uid"] == dataset.SOPClassUID
        assert video.info["sop_class"] == dataset.SOPClassUID.name
        assert (video.info["frames"], video.info["width"], video.info["height"]) == (
            int(dataset.NumberOfFrames),
            dataset.Columns,
            dataset.Rows,
        )
        assert video.info["fps"] == pytest.approx(1000.0 / frame_time)
    assert pacs.video(videos[0].id) == videos[0]


def test_listing_in_pages_finds_the_same_instances(orthanc, orthanc_case, pacs) -> None:
    assert DicomWebVideos(orthanc.dicomweb, page_size=1).videos() == pacs.videos()


def test_retrieved_bytes_are_the_uploaded_dicom_file(pacs, orthanc_case, sample_case) -> None:
    for path in (orthanc_case.dicom_video, orthanc_case.dicom_multiframe):
        data = pacs.retrieve(uid(path))
        assert type(data) is bytes and data == path.read_bytes()
        assert pydicom.dcmread(io.BytesIO(data)).PixelData == pydicom.dcmread(path).PixelData
    video = pydicom.dcmread(io.BytesIO(pacs.retrieve(uid(orthanc_case.dicom_video))))
    (fragment,) = generate_pixel_data_frame(video.PixelData, 1)
    mp4 = sample_case.video.read_bytes()
    assert fragment[: len(mp4)] == mp4 and len(fragment) - len(mp4) == len(mp4) % 2  # the stream, padded to even


def test_open_source_decodes_the_retrieved_bytes_like_the_local_file(pacs, orthanc_case) -> None:
    for path in (orthanc_case.dicom_video, orthanc_case.dicom_multiframe):
        video = pacs.video(uid(path))
        remote = surgvlp.open_source(pacs.retrieve(video), fps=1.0, name=video.info["name"])
        local = surgvlp.open_source(path, fps=1.0)
        assert remote.content_id == local.content_id
        remote_frames, local_frames = list(remote), list(local)
        assert len(remote_frames) == len(local_frames) > 1
        for mine, theirs in zip(remote_frames, local_frames):
            assert (mine.index, mine.time) == (theirs.index, theirs.time)
            np.testing.assert_array_equal(mine.image, theirs.image)


def test_unknown_and_non_video_ids_are_clear_errors(pacs, orthanc_case) -> None:
    with pytest.raises(UnknownVideo, match=r"^1\.2\.840\.99\.1: no such instance on http://127\.0\.0\.1:\d+/dicom-web$"):
        pacs.retrieve("1.2.840.99.1")
    with pytest.raises(UnknownVideo, match=r"is a Secondary Capture Image Storage instance with 1 frame\(s\), not a video"):
        pacs.video(uid(orthanc_case.still_image))
    with pytest.raises(UnknownVideo, match="Multi-frame True Color .* with 1 frame"):
        pacs.retrieve(uid(orthanc_case.one_frame_multiframe))
    for bad in ("../../etc/passwd", "1.2.3?x=1", "", "1" * 65):
        with pytest.raises(UnknownVideo, match="not a video id"):
            pacs.video(bad)
    assert issubclass(UnknownVideo, SurgVLPError) and issubclass(PacsError, SurgVLPError)


def test_an_unreachable_or_wrong_server_is_a_clear_error(orthanc) -> None:
    down = DicomWebVideos(f"http://127.0.0.1:{free_port()}/dicom-web", timeout=2)
    with pytest.raises(PacsError, match=r"cannot reach the server \(searching\): Connection refused$"):
        down.videos()
    with pytest.raises(PacsError, match="cannot reach"):
        down.retrieve("1.2.840.99.1")
    not_dicomweb = DicomWebVideos(f"{orthanc.url}/not-dicom-web", timeout=2)
    with pytest.raises(PacsError, match=r"searching answered HTTP 404 Not Found"):
        not_dicomweb.videos()
    for url in ("ftp://127.0.0.1/dicom-web", "127.0.0.1:8042", "http://127.0.0.1:80a/dicom-web", "http://u:p@h/"):
        with pytest.raises(SurgVLPError, match="like http://127.0.0.1:8042/dicom-web"):
            DicomWebVideos(url)
    for settings in ({"timeout": 0}, {"page_size": 0}):
        with pytest.raises(SurgVLPError, match="must be"):
            DicomWebVideos(orthanc.dicomweb, **settings)


def test_a_truncated_multipart_answer_is_refused_and_part_lengths_are_optional(orthanc, orthanc_case) -> None:
    """The parser on Orthanc's own answer: whole, without the part's Content-Length, and cut short."""
    dataset = pydicom.dcmread(orthanc_case.dicom_video, stop_before_pixels=True)
    path = (
        f"/dicom-web/studies/{dataset.StudyInstanceUID}/series/{dataset.SeriesInstanceUID}"
        f"/instances/{dataset.SOPInstanceUID}"
    )
    connection = http.client.HTTPConnection("127.0.0.1", orthanc.port, timeout=10)
    connection.request("GET", path, headers={"Accept": _RETRIEVE_ACCEPT})
    response = connection.getresponse()
    content_type = response.headers["Content-Type"]
    answer = response.read()
    connection.close()
    original = orthanc_case.dicom_video.read_bytes()
    assert _read_single_part(io.BytesIO(answer), content_type) == original
    header_end = answer.index(b"\r\n\r\n")
    lines = answer[:header_end].split(b"\r\n")
    head = b"\r\n".join(line for line in lines if not line.lower().startswith(b"content-length"))
    assert _read_single_part(io.BytesIO(head + answer[header_end:]), content_type) == original
    with pytest.raises(PacsError, match="ends without its closing delimiter .*truncated"):
        _read_single_part(io.BytesIO(answer[: len(answer) // 2]), content_type)
    with pytest.raises(PacsError, match="not multipart/related with a boundary"):
        _read_single_part(io.BytesIO(answer), "application/dicom")


def orthanc_path(orthanc, path: Path) -> str:
    """Orthanc's REST path of the instance stored from ``path``, found with Orthanc's own lookup."""
    (instance,) = json.loads(orthanc.request("POST", "/tools/lookup", uid(path).encode())[1])
    return instance["Path"]


def test_labels_are_stored_back_as_attachments_of_the_video(orthanc, orthanc_case) -> None:
    """Orthanc's own REST listing and data paths are the reference; the DICOM file stays as it was."""
    labels = OrthancAttachments(orthanc.url)
    video, instance = uid(orthanc_case.dicom_video), orthanc_path(orthanc, orthanc_case.dicom_video)
    assert labels.read(video, "surgvlp-timeline") is None
    labels.store(video, "surgvlp-timeline", b'{"schema": "surgvlp.timeline/2", "version": 1}')
    labels.store(video, "surgvlp-timeline", b'{"schema": "surgvlp.timeline/2", "version": 2}')
    segmentation = bytes(range(256)) * 64
    labels.store(video, "surgvlp-segmentation", segmentation)
    latest = b'{"schema": "surgvlp.timeline/2", "version": 2}'
    assert labels.read(video, "surgvlp-timeline") == (latest, "application/json")
    assert labels.read(video, "surgvlp-segmentation") == (segmentation, "application/octet-stream")
    status, names = orthanc.request("GET", f"{instance}/attachments")
    assert status == 200 and {"dicom", "surgvlp-timeline", "surgvlp-segmentation"} <= set(json.loads(names))
    assert orthanc.request("GET", f"{instance}/attachments/surgvlp-timeline/data") == (200, latest)
    assert orthanc.request("GET", f"{instance}/file") == (200, orthanc_case.dicom_video.read_bytes())


def test_storing_labels_refuses_unknown_names_and_videos(orthanc, orthanc_case) -> None:
    labels = OrthancAttachments(orthanc.url)
    video = uid(orthanc_case.dicom_video)
    with pytest.raises(PacsError, match="does not accept attachments named 'surgvlp-notes': register the name under"):
        labels.store(video, "surgvlp-notes", b"x")
    with pytest.raises(PacsError, match="HTTP 403"):
        labels.store(video, "dicom", b"x")  # Orthanc protects the DICOM file itself
    assert orthanc.request("GET", f"{orthanc_path(orthanc, orthanc_case.dicom_video)}/file")[1] == (
        orthanc_case.dicom_video.read_bytes()
    )
    with pytest.raises(UnknownVideo, match=r"^1\.2\.840\.99\.1: no such instance"):
        labels.store("1.2.840.99.1", "surgvlp-timeline", b"x")
    for name in ("../dicom", "", "a/b"):
        with pytest.raises(SurgVLPError, match="not an attachment name"):
            labels.store(video, name, b"x")
    with pytest.raises(PacsError, match="cannot reach the server"):
        OrthancAttachments(f"http://127.0.0.1:{free_port()}", timeout=2).read(video, "surgvlp-timeline")


def test_the_app_catalogue_answers_404_for_unknown_videos_and_502_when_the_pacs_fails(orthanc, orthanc_case) -> None:
    from lib.datastores.catalogue import ImageNotFound
    from lib.datastores.dicomweb import DicomWebCatalogue
    from lib.http_errors import http_status

    catalogue = DicomWebCatalogue(orthanc.dicomweb)
    video = uid(orthanc_case.dicom_video)
    data, name = catalogue.source_data(video)
    assert data == orthanc_case.dicom_video.read_bytes() and name == catalogue.entry(video).info["name"]
    assert catalogue.entry(video) == catalogue.entries()[video]
    for image in ("1.2.840.99.1", uid(orthanc_case.still_image), "../x"):
        with pytest.raises(ImageNotFound) as missing:
            catalogue.source_data(image)
        assert http_status(missing.value) == 404
    with pytest.raises(PacsError) as failed:
        DicomWebCatalogue(f"http://127.0.0.1:{free_port()}/dicom-web").entries()
    assert http_status(failed.value) == 502
