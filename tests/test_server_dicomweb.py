"""The MONAI Label app over a PACS: ``monailabel start_server --studies http://127.0.0.1:PORT/dicom-web`` with a
real Orthanc, driven by the stock client. The reference is the core opening the uploaded files locally."""

from __future__ import annotations

import json

import pytest

import surgvlp
from monai_server import Server, run_job
from orthanc import sop_instance_uid

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def server(orthanc, orthanc_case, tiny_model, tmp_path_factory):
    running = Server(orthanc.dicomweb, tmp_path_factory.mktemp("pacs_server"))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def client(server):
    from monailabel.client import MONAILabelClient

    return MONAILabelClient(server.url)


def test_datastore_lists_the_pacs_videos_and_nothing_else_is_contacted(server, orthanc_case) -> None:
    status, body = server.get("/datastore/?output=all")
    assert status == 200
    objects = json.loads(body)["objects"]
    video, frames = (sop_instance_uid(path) for path in (orthanc_case.dicom_video, orthanc_case.dicom_multiframe))
    assert sorted(objects) == sorted([video, frames])
    assert objects[video]["image"]["info"]["series_description"] == "endoscope video"
    assert objects[frames]["image"]["info"]["frames"] == 21
    assert server.network_attempts() == ""


def test_a_pacs_video_is_decoded_like_the_uploaded_file(client, orthanc_case) -> None:
    for path in (orthanc_case.dicom_video, orthanc_case.dicom_multiframe):
        _, answer = run_job(client, "surgvlp_frames", sop_instance_uid(path), {"fps": 1})
        local = surgvlp.open_source(path, fps=1)
        assert answer["job"]["state"] == "done"
        assert answer["times"] == pytest.approx([frame.time for frame in local])
        assert answer["shape"][0] == len(local)


def test_unknown_pacs_ids_are_404(server) -> None:
    for image in ("1.2.840.99.1", "../../etc/passwd"):
        status, body = server.get(f"/datastore/image/info?image={image}")
        assert status == 404, body


def test_a_final_timeline_is_kept_locally_and_filed_back_into_orthanc(client, server, orthanc, orthanc_case,
                                                                     tmp_path) -> None:
    import urllib.request

    video = sop_instance_uid(orthanc_case.dicom_video)
    _, timeline = run_job(client, "surgvlp_phase", video, {"decoder": "argmax"})
    assert timeline["untrained"] is True
    corrected = tmp_path / "timeline.json"
    corrected.write_text(json.dumps({key: value for key, value in timeline.items() if key != "job"}))
    client.save_label(video, str(corrected), tag="final")
    assert server.get(f"/datastore/label?label={video}&tag=final") == (200, corrected.read_bytes())
    info = json.loads(server.get(f"/datastore/label/info?label={video}&tag=final")[1])
    assert info["pacs_copy"] == "attachment surgvlp-timeline"
    instance = json.loads(urllib.request.urlopen(
        urllib.request.Request(f"{orthanc.url}/tools/lookup", data=video.encode(), method="POST"), timeout=10).read())
    with urllib.request.urlopen(f"{orthanc.url}{instance[0]['Path']}/attachments/surgvlp-timeline/data",
                                timeout=10) as answer:
        assert answer.read() == corrected.read_bytes()
