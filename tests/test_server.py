"""The MONAI Label app as Slicer meets it: a real ``monailabel start_server`` process, the stock client, HTTP."""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from monai_server import Server, result, run_job

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def studies(tmp_path_factory, sample_case) -> Path:
    """A datastore folder: three readable videos, a corrupt one, a truncated one, and files that are not videos."""
    folder = tmp_path_factory.mktemp("studies")
    for name in ("case.mp4", "case_video.dcm", "case_multiframe.dcm"):
        shutil.copy(sample_case.directory / name, folder / name)
    (folder / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    whole = (sample_case.directory / "case.mp4").read_bytes()
    (folder / "truncated.mp4").write_bytes(whole[: len(whole) // 3])
    from surgvlp.sample_data import write_sample_case

    long = write_sample_case(tmp_path_factory.mktemp("long_case"), duration=90, seed=1, size=(160, 96))
    shutil.copy(long.directory / "case.mp4", folder / "long.mp4")
    (folder / "notes.json").write_text("{}")
    (folder / "frames").mkdir()
    shutil.copy(next((sample_case.directory / "frames").glob("*.png")), folder / "frames" / "f.png")
    return folder


@pytest.fixture(scope="module")
def server(studies, tiny_model, tmp_path_factory):
    from surgvlp.segmentation.untrained_sam2 import write_untrained_sam2

    sam2 = write_untrained_sam2(tmp_path_factory.mktemp("sam2") / "sam2-tiny")
    running = Server(studies, tmp_path_factory.mktemp("server"), {"max_upload_mb": "1", "sam2": str(sam2)})
    yield running
    running.stop()


@pytest.fixture(scope="module")
def client(server):
    from monailabel.client import MONAILabelClient

    return MONAILabelClient(server.url)


@pytest.fixture(scope="module")
def phase_result(client) -> dict:
    return run_job(client, "surgvlp_phase", "case.mp4", {})[1]


def test_info_lists_the_models_and_says_untrained(client, server):
    info = client.info()
    assert {"surgvlp_phase", "surgvlp_tools", "surgvlp_frames", "surgvlp_referring"} <= set(info["models"])
    for name in ("surgvlp_phase", "surgvlp_tools"):
        assert info["models"][name]["available"] is True
    deadline = time.monotonic() + 60
    while client.info()["surgvlp"]["untrained"] is None and time.monotonic() < deadline:
        time.sleep(0.2)  # the model loads in the background after start-up
    assert client.info()["surgvlp"]["untrained"] is True
    assert "surgvlp_adapter" in info["trainers"]
    assert server.network_attempts() == ""


def test_datastore_lists_only_the_videos(client):
    objects = client.datastore()["objects"]
    assert sorted(objects) == ["case.mp4", "case_multiframe.dcm", "case_video.dcm", "corrupt.mp4", "long.mp4",
                               "truncated.mp4"]


def test_phase_timeline_is_marked_untrained(phase_result):
    assert phase_result["schema"] == "surgvlp.timeline/2"
    assert phase_result["untrained"] is True and phase_result["model"]["untrained"] is True
    assert phase_result["job"]["state"] == "done"
    assert len(phase_result["frames"]["time"]) == 21
    assert phase_result["segments"]


def test_tools_and_dicom_video(client):
    _, tools = run_job(client, "surgvlp_tools", "case_video.dcm", {"threshold": 0.4})
    assert tools["task"] == "tool" and tools["untrained"] is True
    assert set(tools["presence"]) == set(tools["prompt_set"]["classes"][i]["name"] for i in range(len(tools["presence"])))


def test_frames_volume_opens_without_a_video_decoder(client, sample_case):
    import nrrd

    file, answer = run_job(client, "surgvlp_frames", "case.mp4", {"fps": 2, "max_size": 80})
    data, header = nrrd.read(file)
    assert header["kinds"] == ["RGB-color", "domain", "domain", "domain"]
    assert data.shape == (3, 80, 48, answer["shape"][0]) and answer["shape"][1:] == [48, 80, 3]
    assert len(answer["times"]) == answer["shape"][0] == 42
    assert np.allclose(answer["times"], np.arange(42) * 0.5, atol=0.04)  # the 25 fps frames nearest to 2 per second
    assert answer["spacing"] == pytest.approx(2.0)
    assert data.std() > 5  # real pictures, not a blank volume


def test_identical_requests_share_one_job_and_eight_clients_are_answered(client, server):
    from monailabel.client import MONAILabelClient

    answers, errors = [], []

    def ask() -> None:
        try:
            answers.append(result(MONAILabelClient(server.url).infer("surgvlp_phase", "case_video.dcm",
                                                                     {"decoder": "argmax", "fps": 1})[1]))
        except Exception as error:  # collected and reported below
            errors.append(error)

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors and len(answers) == 8
    assert len({answer["job"]["id"] for answer in answers}) == 1


def test_cancel_stops_a_job(client):
    _, answer = client.infer("surgvlp_frames", "case_multiframe.dcm", {"fps": 25, "max_size": None})
    job = result(answer)["job"]["id"]
    answer = result(client.infer("surgvlp_frames", "case_multiframe.dcm", {"job": job, "cancel": True})[1])
    deadline = time.monotonic() + 30
    while answer["job"]["state"] == "running" and time.monotonic() < deadline:  # it stops after its batch
        assert answer["job"]["message"].startswith("cancelling")
        time.sleep(0.1)
        answer = result(client.infer("surgvlp_frames", "case_multiframe.dcm", {"job": job})[1])
    assert answer["job"]["state"] in ("cancelled", "done")  # done: it finished before the cancel arrived


@pytest.mark.parametrize("image", ["../case.mp4", "/etc/passwd", "no-such.mp4", "notes.json", "frames/f.png",
                                   ".surgvlp/labels"])
def test_ids_name_datastore_videos_only(server, image):
    from monailabel.client import MONAILabelClient
    from monailabel.client.client import MONAILabelClientException

    with pytest.raises(MONAILabelClientException, match="Status: 404"):
        MONAILabelClient(server.url).infer("surgvlp_phase", image, {})
    status, _ = server.get(f"/datastore/image?image={image}")
    assert status == 404


@pytest.mark.parametrize("params, message", [
    ({"fps": "fast"}, "'fps' must be a number"),
    ({"fps": -1}, "out of range"),
    ({"decoder": "magic"}, "'decoder' must be one of"),
    ({"prompt_set": "no-such-set"}, "no built-in prompt set"),
    ({"prompt_set": {"name": "empty", "classes": []}}, "the prompt set is empty"),
    ({"prompt_set": "cholec80-tools"}, "is for tool recognition"),
    ({"start": 10, "end": 5}, "must come after"),
])
def test_bad_parameters_are_answered_4xx_before_any_work(client, server, params, message):
    from monailabel.client.client import MONAILabelClientException

    with pytest.raises(MONAILabelClientException) as raised:
        client.infer("surgvlp_phase", "case.mp4", params)
    answer = raised.value.args[1]
    assert answer.startswith("Status: 422") and message in json.loads(answer.split("Response: ", 1)[1])["detail"]
    assert "Traceback" not in answer
    assert server.get("/info/")[0] == 200


@pytest.mark.parametrize("image", ["corrupt.mp4", "truncated.mp4"])
def test_broken_videos_are_answered_4xx(client, server, image):
    from monailabel.client.client import MONAILabelClientException

    with pytest.raises(MONAILabelClientException) as raised:
        run_job(client, "surgvlp_phase", image, {})
    assert "Status: 422" in str(raised.value) and image in str(raised.value)
    assert server.get("/info/")[0] == 200


def _edited(timeline: dict, label: str) -> dict:
    edited = json.loads(json.dumps(timeline))
    edited.pop("job")
    edited["segments"][0]["label"] = label
    return edited


def test_final_timeline_comes_back_unchanged_and_keeps_its_history(client, server, phase_result, tmp_path):
    first, second = tmp_path / "first.json", tmp_path / "second.json"
    first.write_text(json.dumps(_edited(phase_result, "Preparation")))
    second.write_text(json.dumps(_edited(phase_result, "CleaningCoagulation")))
    assert client.save_label("case.mp4", str(first), tag="final")["label"] == "case.mp4"
    client.save_label("case.mp4", str(second), tag="final")
    assert server.get("/datastore/label?label=case.mp4&tag=final") == (200, second.read_bytes())
    assert server.get("/datastore/label?label=case.mp4@1&tag=final") == (200, first.read_bytes())
    info = json.loads(server.get("/datastore/label/info?label=case.mp4&tag=final")[1])
    assert [version["version"] for version in info["versions"]] == [1, 2]
    listed = client.datastore()["objects"]["case.mp4"]["labels"]["final"]["info"]["labels"]["case.mp4"]
    assert len(listed["versions"]) == 2


@pytest.mark.parametrize("name, content, status", [
    ("label.json", b'{"not": "a timeline"}', 422),
    ("label.json", b"\xff\xfe garbage", 422),
    ("label.nii.gz", b"whatever", 422),
    ("label.seg.nrrd", b"NRRD0004\ntype: uint8\ndimension: 1\nsizes: 1\nencoding: raw\n\n\x00", 422),
    ("big.json", b" " * (2 << 20), 413),
])
def test_bad_labels_are_refused_and_nothing_is_saved(client, server, tmp_path, name, content, status):
    from monailabel.client.client import MONAILabelClientException

    path = tmp_path / name
    path.write_bytes(content)
    before = client.datastore()["objects"]["case_video.dcm"]["labels"]
    with pytest.raises(MONAILabelClientException, match=f"Status: {status}"):
        client.save_label("case_video.dcm", str(path), tag="final")
    assert client.datastore()["objects"]["case_video.dcm"]["labels"] == before
    assert server.get("/info/")[0] == 200


def test_labels_are_never_deleted_and_tags_cannot_leave_the_store(client, server, phase_result, tmp_path):
    from monailabel.client.client import MONAILabelClientException

    path = tmp_path / "timeline.json"
    path.write_text(json.dumps(_edited(phase_result, "Preparation")))
    with pytest.raises(MONAILabelClientException, match="Status: 422"):
        client.save_label("case.mp4", str(path), tag="../../escape")
    import urllib.request

    request = urllib.request.Request(f"{server.url}/datastore/image?id=case.mp4", method="DELETE")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 405
    assert "case.mp4" in client.datastore()["objects"]


def test_the_server_answers_everyone_while_a_long_timeline_is_computed(client, server, phase_result):
    """/info, /datastore and a cached re-query from another client each answer within 1 s during a long job."""
    from monailabel.client import MONAILabelClient

    other = MONAILabelClient(server.url)
    started = result(client.infer("surgvlp_phase", "long.mp4", {"fps": 1})[1])
    long_job = started["job"]
    assert started["untrained"] is True  # every answer says so, the job's first one too
    times: dict[str, list[float]] = {"info": [], "datastore": [], "cached re-query": []}
    while True:
        began = time.monotonic()
        assert server.get("/info/", timeout=10)[0] == 200
        times["info"].append(time.monotonic() - began)
        began = time.monotonic()
        assert server.get("/datastore/?output=all", timeout=10)[0] == 200
        times["datastore"].append(time.monotonic() - began)
        began = time.monotonic()
        decoder = ("argmax", "online")[len(times["cached re-query"]) % 2]
        _, answer = run_job(other, "surgvlp_phase", "case.mp4", {"decoder": decoder, "min_segment": len(times["info"])})
        times["cached re-query"].append(time.monotonic() - began)
        assert answer["job"]["state"] == "done"
        state = result(client.infer("surgvlp_phase", "long.mp4", {"job": long_job["id"]})[1])["job"]
        if state["state"] != "running" or len(times["info"]) >= 6:
            break
    assert state["state"] == "running", "the long job must still run while we measure"
    client.infer("surgvlp_phase", "long.mp4", {"job": long_job["id"], "cancel": True})
    slowest = {name: max(values) for name, values in times.items()}
    assert all(value < 1.0 for value in slowest.values()), slowest


def test_referring_segmentation_lines_up_with_the_frames_and_its_correction_is_kept(client, server, tmp_path):
    import slicerio

    sampling = {"fps": 0.5, "end": 10}
    file, answer = run_job(client, "surgvlp_referring", "case.mp4", {"text": "the grasper", **sampling})
    assert answer["mode"] == "sam2" and answer["untrained"] is True and answer["prompt"]["text"] == "the grasper"
    _, frames = run_job(client, "surgvlp_frames", "case.mp4", {**sampling, "max_size": None})
    segmentation = slicerio.read_segmentation(file)
    assert [segment["name"] for segment in segmentation["segments"]] == ["the grasper"]
    frames_count, height, width, _ = frames["shape"]
    assert segmentation["voxels"].shape[:3] == (width, height, frames_count)
    assert answer["frames"]["time"] == pytest.approx(frames["times"])

    corrected = tmp_path / "corrected.seg.nrrd"
    corrected.write_bytes(Path(file).read_bytes())
    assert client.save_label("case.mp4", str(corrected), tag="final")["label"] == "case.mp4#segmentation"
    client.save_label("case.mp4", str(corrected), tag="final")
    info = json.loads(server.get("/datastore/label/info?label=case.mp4%23segmentation&tag=final")[1])
    assert [version["version"] for version in info["versions"]] == [1, 2]
    assert server.get("/datastore/label?label=case.mp4%23segmentation@1&tag=final") == (200, corrected.read_bytes())


def test_referring_segmentation_needs_a_text(client):
    from monailabel.client.client import MONAILabelClientException

    with pytest.raises(MONAILabelClientException, match="Status: 422"):
        client.infer("surgvlp_referring", "case.mp4", {"text": "  "})
