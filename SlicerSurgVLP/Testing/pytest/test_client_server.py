"""The library against the real SlicerSurgVLP server: ``monailabel start_server --app monai_app`` on 127.0.0.1,
serving the synthetic sample case with the untrained tiny model, driven through ``Session`` as the module
drives it (list cases, fetch frames, phases, edit, save, read back, history, tools, train, segment).

The server runs from the server's own environment (``$SURGVLP_SERVER_VENV``, default ``<repo>/.venv``, which
the README's test command creates first); this test process is the Slicer-like one, which has none of the
server's packages. Without a server environment the tests are skipped, except in CI, where they fail.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO_DIR
from SlicerSurgVLPLib.client import ServerClient
from SlicerSurgVLPLib.errors import ClientError
from SlicerSurgVLPLib.session import REFERRING_MODEL, SEGMENTATION_SUFFIX, Session
from SlicerSurgVLPLib.timeline import PhaseTimeline

SERVER_VENV = Path(os.environ.get("SURGVLP_SERVER_VENV", REPO_DIR / ".venv"))
CASE = "case.mp4"
DURATION = 8  # seconds of sample video: 8 frames at 1 fps
START_TIMEOUT = 120


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _server_environment(tmp: Path) -> dict[str, str]:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("SURGVLP_")}
    environment.update({
        "PATH": f"{SERVER_VENV / 'bin'}{os.pathsep}{environment.get('PATH', '')}",  # monailabel runs `python`
        "PYTHONPATH": str(REPO_DIR / "bundles" / "surgvlp"),  # this checkout's core, also when not installed
        "XDG_DATA_HOME": str(tmp / "user-data"),
        "SURGVLP_CACHE_DIR": str(tmp / "cache"),
        "SURGVLP_WEIGHTS_DIR": str(tmp / "weights"),
    })
    environment.pop("VIRTUAL_ENV", None)
    return environment


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if not (SERVER_VENV / "bin" / "monailabel").exists():
        message = f"no server environment at {SERVER_VENV} (set SURGVLP_SERVER_VENV)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    tmp = tmp_path_factory.mktemp("server")
    environment = _server_environment(tmp)
    surgvlp = str(SERVER_VENV / "bin" / "surgvlp")
    started = time.monotonic()
    preparing = [subprocess.Popen(command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
                 for command in ([surgvlp, "sample-data", str(tmp / "studies"), "--duration", str(DURATION)],
                                 [surgvlp, "weights", "init-untrained", "--dir", str(tmp / "weights")])]
    for process in preparing:  # side by side: one writes video, the other random weights
        output, _ = process.communicate(timeout=300)
        assert process.returncode == 0, output.decode(errors="replace")
    print(f"sample case and untrained weights: {time.monotonic() - started:.1f} s")
    port = _free_port()
    log = open(tmp / "server.log", "wb")
    process = subprocess.Popen(
        ["monailabel", "start_server", "--app", "monai_app", "--studies", str(tmp / "studies"),
         "--host", "127.0.0.1", "--port", str(port), "--conf", "checkpoint", "untrained-tiny",
         "--conf", "allow_untrained", "true", "--conf", "weights_dir", str(tmp / "weights"),
         "--conf", "cache_dir", str(tmp / "cache"), "--conf", "state_dir", str(tmp / "state")],
        cwd=REPO_DIR, env=environment, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT
    try:
        while True:  # until /info answers and the model has loaded (or failed to)
            try:
                status = ServerClient(url, timeout=2, retries=0).info()["surgvlp"]
                if status["reason"] is None or not status["available"]:
                    break
            except ClientError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                log.flush()
                tail = (tmp / "server.log").read_text(errors="replace")[-3000:]
                pytest.fail(f"the server did not start (exit {process.poll()}):\n{tail}")
            time.sleep(0.5)
        print(f"server up: {time.monotonic() - started:.1f} s")
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # the server's own process group: monailabel's shell and its python
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(30)
        log.close()


@pytest.fixture(scope="module")
def session(server):
    return Session.connect(server)


def test_connect_lists_models_with_their_state(session):
    models = {model.name: model for model in session.models()}
    assert {"surgvlp_phase", "surgvlp_tools", "surgvlp_frames"} <= set(models)
    assert all(model.available and model.untrained for model in models.values()), models
    assert session.untrained
    assert "cholec80" in session.prompt_sets("phase") and "cholec80-tools" not in session.prompt_sets("phase")


def test_cases_are_the_videos_of_the_datastore(session):
    cases = {case.id: case for case in session.cases()}
    assert CASE in cases and cases[CASE].labels == {}
    assert all(not case_id.endswith((".txt", ".json", ".png")) for case_id in cases)


def test_frames_come_as_a_volume_with_their_times(session):
    frames = session.load_frames(CASE, max_size=160)
    assert frames.volume.frames.shape == (DURATION, 90, 160, 3) and frames.volume.frames.dtype == np.uint8
    np.testing.assert_allclose(frames.times, np.arange(DURATION))
    assert frames.untrained
    assert frames.volume.frames.std() > 5  # a picture, not an empty volume
    np.testing.assert_allclose(np.diag(frames.volume.geometry.directions), [4.0, 4.0, 1.0])  # 640 px -> 160 px


def test_phases_edit_save_read_back_and_history(session):
    progress = []
    timeline = session.recognise_phases(CASE, "cholec80", "argmax", progress=progress.append)
    assert progress[-1].state == "done" and timeline.untrained
    assert timeline.times.size == DURATION and timeline.start == 0.0
    assert session.history(CASE) == []

    # Cut the first segment of two frames or more after its first frame (which segments the untrained model
    # draws depends on its random weights).
    long_enough = [segment for segment in timeline.segments if segment.end - segment.start >= 2.0]
    assert long_enough, "the untrained model gave no segment of two frames to cut"
    cut = long_enough[0]
    edited = timeline.split(cut.start + 1.0, "CalotTriangleDissection" if cut.label != "CalotTriangleDissection"
                            else "Preparation")
    edited = edited.relabel(0, "Preparation" if edited.segments[0].label != "Preparation" else "ClippingCutting")
    session.save_timeline(CASE, timeline)
    session.save_timeline(CASE, edited)  # the server's own validator accepts the edited document

    versions = session.history(CASE)
    assert [version.number for version in versions] == [1, 2]
    assert session.saved_timeline(CASE).to_document() == edited.to_document()
    assert session.saved_timeline(CASE, 1).to_document() == timeline.to_document()
    assert {case.id: case.labels for case in session.cases()}[CASE] == {"final": {CASE: 2}}


def test_an_edited_prompt_table_is_sent_inline(session):
    table = session.prompt_sets("phase")["cholec80"]
    table.rows = table.rows[:3]
    timeline = session.recognise_phases(CASE, table, "viterbi")
    assert timeline.classes == [row.name for row in table.rows]
    assert timeline.to_document()["prompt_set"]["classes"][0]["prompts"] == table.rows[0].prompts


def test_tool_presence(session):
    tools = session.recognise_tools(CASE)
    assert tools.untrained and "Grasper" in tools.tools
    for tool in tools.tools:
        for interval in tools.intervals(tool):
            assert 0.0 <= interval.start < interval.end <= DURATION


def test_server_refusals_are_one_line_errors(session):
    with pytest.raises(ClientError, match=r"\(HTTP 404\)") as unknown:
        session.load_frames("no-such-video.mp4")
    with pytest.raises(ClientError, match=r"\(HTTP 4\d\d\)") as invalid:
        session.client.save_label(CASE, "timeline.json", b'{"schema": "surgvlp.timeline/2"}')
    with pytest.raises(ClientError, match="decoder must be one of"):
        session.recognise_phases(CASE, "cholec80", "beam-search")
    for error in (unknown.value, invalid.value):
        assert "\n" not in str(error) and "Traceback" not in str(error)
    assert [version.number for version in session.history(CASE)] == [1, 2]  # nothing was saved


def test_segmentation_runs_and_its_correction_is_saved(session):
    assert session.model(REFERRING_MODEL) is not None
    segmentation, answer = session.segment(CASE, "the gallbladder")
    assert answer["untrained"] and segmentation.shape[0] == DURATION
    session.save_segmentation(CASE, segmentation)
    again = session.saved_segmentation(CASE)
    np.testing.assert_array_equal(again.layers, segmentation.layers)
    assert [version.number for version in session.history(CASE + SEGMENTATION_SUFFIX)] == [1]


def test_training_from_the_saved_corrections(session):
    assert "not trained yet" in session.training_summary()
    states = []
    stats = session.train_adapter(progress=states.append, poll=0.5)
    assert stats["trained"] and stats["adapters"]["cholec80"]["cases"] == [CASE]
    assert states[-1].state == "done"
    summary = session.training_summary()
    assert summary.startswith("cholec80: trained on 1 case(s)") and "UNTRAINED encoder" in summary
    after = session.recognise_phases(CASE, "cholec80", "argmax")
    assert "adapter" in after.to_document()["model"] or "adapter" in after.to_document()
    assert isinstance(after, PhaseTimeline)
