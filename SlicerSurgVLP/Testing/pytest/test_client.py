"""The client's transport: retries only where repeating is harmless, one-line errors, multipart answers, job
polling with progress and cancel, TLS verification. A small stdlib HTTP server on 127.0.0.1 plays the parts a
real server cannot be made to play on demand (a 503 then a 200, a dropped answer); the real app is driven in
``test_client_server.py``."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from SlicerSurgVLPLib import multipart
from SlicerSurgVLPLib.client import ServerClient
from SlicerSurgVLPLib.errors import Cancelled, ClientError
from SlicerSurgVLPLib.prompts import PromptRow, PromptTable, cell_to_prompts, prompts_to_cell
from SlicerSurgVLPLib.tasks import BackgroundTask


class Scripted(ThreadingHTTPServer):
    """Answers requests from a list of (status, content type, body), recording each request."""

    def __init__(self, answers):
        self.answers = list(answers)
        self.requests = []
        super().__init__(("127.0.0.1", 0), _Handler)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.requests.append((self.command, self.path, dict(self.headers), body))
        status, kind, payload = self.server.answers.pop(0)
        if status is None:  # drop the connection without an answer
            self.close_connection = True
            return
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = _answer

    def log_message(self, *args):
        pass


@pytest.fixture
def server(request):
    servers = []

    def start(*answers):
        site = Scripted(answers)
        threading.Thread(target=site.serve_forever, daemon=True).start()
        servers.append(site)
        return site

    yield start
    for site in servers:
        site.shutdown()
        site.server_close()


def _json(status, value):
    return status, "application/json", json.dumps(value).encode()


def _job(state, done=0, total=None, **extra):
    return {"job": {"id": "j1", "state": state, "done": done, "total": total, "message": f"{state} {done}"}, **extra}


def _client(site, **options):
    return ServerClient(site.url, timeout=5, backoff=0.01, **options)


def test_a_read_is_retried_after_a_503_and_a_dropped_answer(server):
    site = server(_json(503, {"detail": "busy"}), (None, "", b""), _json(200, {"models": {}}))
    assert _client(site).info() == {"models": {}}
    assert len(site.requests) == 3


def test_a_save_is_sent_once_even_when_the_server_answers_503(server):
    site = server(_json(503, {"detail": "busy"}), _json(200, {}))
    with pytest.raises(ClientError, match="busy \\(HTTP 503\\)"):
        _client(site).save_label("case.mp4", "timeline.json", b"{}")
    assert len(site.requests) == 1
    method, path, headers, body = site.requests[0]
    assert method == "PUT" and path == "/datastore/label?image=case.mp4&tag=final"
    parts = multipart.parse(body, headers["Content-Type"])
    assert parts["label"].filename == "timeline.json" and parts["label"].data == b"{}"
    assert json.loads(parts["params"].data) == {}


def test_a_4xx_detail_is_one_line_with_its_status(server):
    site = server(_json(404, {"detail": "no video 'x.mp4'\nsee the datastore"}))
    with pytest.raises(ClientError) as caught:
        _client(site).label("x.mp4")
    assert str(caught.value) == "GET /datastore/label: no video 'x.mp4' see the datastore (HTTP 404)"
    assert caught.value.status == 404


def test_fastapis_validation_errors_are_joined(server):
    site = server(_json(422, {"detail": [{"loc": ["body", "params"], "msg": "field required"}]}))
    with pytest.raises(ClientError, match="body.params: field required \\(HTTP 422\\)"):
        _client(site).start_training("surgvlp_adapter")


def test_an_unreachable_server_is_one_line():
    with pytest.raises(ClientError, match="cannot reach the server at http://127.0.0.1:9"):
        ServerClient("http://127.0.0.1:9", timeout=2, retries=0).info()


@pytest.mark.parametrize("url", ["ftp://host", "127.0.0.1:8000", "http://", "http://host:port"])
def test_a_bad_address_is_refused_before_any_request(url):
    with pytest.raises(ClientError, match="not a server address|invalid port"):
        ServerClient(url)


def test_https_verifies_certificates(server):
    site = server(_json(200, {}))
    client = ServerClient(site.url.replace("http://", "https://"), timeout=5, retries=0)
    assert client._context.verify_mode.name == "CERT_REQUIRED" and client._context.check_hostname
    with pytest.raises(ClientError, match="cannot reach|not trusted"):
        client.info()  # a plain HTTP server cannot complete a TLS handshake


def test_a_job_is_polled_to_its_end_with_progress_and_its_files(server):
    frames = b"NRRD0004\n...binary\r\n--not-a-boundary\x00\xff"
    fields = {"params": json.dumps(_job("done", 3, 3, times=[0.0, 1.0, 2.0]))}
    content_type, body = multipart.encode(fields, {"image": ("frames.nrrd", frames)})
    site = server(_json(200, _job("queued")), _json(200, _job("running", 1, 3)), (200, content_type, body))
    seen = []
    answer = _client(site).run_job("surgvlp_frames", "case.mp4", {"fps": 1}, progress=seen.append,
                                   poll_interval=0.05)
    assert [(progress.state, progress.done) for progress in seen] == [("queued", 0), ("running", 1), ("done", 3)]
    assert answer.files == {"image": frames} and answer.json["times"] == [0.0, 1.0, 2.0]
    sent = [json.loads(multipart.parse(request[3], request[2]["Content-Type"])["params"].data)
            for request in site.requests]
    assert sent[0] == {"fps": 1} and sent[1] == {"job": "j1"}
    assert site.requests[0][1] == "/infer/surgvlp_frames?image=case.mp4"


def test_a_cancelled_job_is_cancelled_on_the_server(server):
    site = server(_json(200, _job("running")), _json(200, _job("cancelled")))
    with pytest.raises(Cancelled):
        _client(site).run_job("surgvlp_phase", "case.mp4", {}, cancelled=lambda: True, poll_interval=0.05)
    assert json.loads(multipart.parse(site.requests[1][3], site.requests[1][2]["Content-Type"])["params"].data) == \
        {"job": "j1", "cancel": True}


def test_a_failed_job_and_an_answer_without_a_job_are_errors(server):
    site = server(_json(200, _job("failed")), _json(200, {"result": 1}))
    with pytest.raises(ClientError, match="surgvlp_phase: failed 0"):
        _client(site).run_job("surgvlp_phase", "case.mp4", {}, poll_interval=0.05)
    with pytest.raises(ClientError, match="has no job"):
        _client(site).run_job("surgvlp_phase", "case.mp4", {}, poll_interval=0.05)


def test_a_truncated_multipart_answer_is_refused():
    content_type, body = multipart.encode({"params": "{}"})
    with pytest.raises(ClientError, match="truncated"):
        multipart.parse(body[:-8], content_type)


def test_the_datastore_listing_becomes_cases(server):
    listing = {"objects": {"b.mp4": {"image": {"ext": ".mp4", "info": {"name": "b.mp4"}}, "labels": {
        "final": {"ext": ".json", "info": {"labels": {"b.mp4": {"versions": [{"version": 1}, {"version": 2}]},
                                                       "b.mp4#segmentation": {"versions": [{"version": 1}]}}}}}},
                           "a.dcm": {"image": {"ext": ".dcm", "info": {}}, "labels": {}}}}
    site = server(_json(200, listing))
    cases = _client(site).cases()
    assert [(case.id, case.name, case.labels) for case in cases] == [
        ("a.dcm", "a.dcm", {}), ("b.mp4", "b.mp4", {"final": {"b.mp4": 2, "b.mp4#segmentation": 1}})]


def test_a_background_task_reports_progress_and_hands_back_its_error():
    started, release = threading.Event(), threading.Event()

    def work(progress, cancelled):
        from SlicerSurgVLPLib.client import Progress

        progress(Progress("running", 1, 2, "half"))
        started.set()
        release.wait(5)
        if cancelled():
            raise Cancelled("stopped")
        return 42

    task = BackgroundTask(work, "test").start()
    started.wait(5)
    assert (task.progress.done, task.progress.total, task.progress.message) == (1, 2, "half") and not task.finished
    with pytest.raises(ClientError, match="still running"):
        task.result()
    task.cancel()
    release.set()
    assert task.wait(5)
    with pytest.raises(Cancelled):
        task.result()
    assert BackgroundTask(lambda progress, cancelled: 42, "quick").start().wait(5)


def test_a_prompt_table_becomes_an_inline_prompt_set_verbatim():
    table = PromptTable.from_prompt_set({"name": "cholec80", "task": "phase", "ordered": True, "classes": [
        {"name": "Preparation", "prompts": ["I insert trocars "], "typical_duration": 125.0},
        {"name": "Packaging", "prompts": ["In packaging phase I put the gallbladder into the specimen bag "]}]})
    table.rows[1].prompts = cell_to_prompts(prompts_to_cell(table.rows[1].prompts) + "\n\n  second prompt  \r\n")
    inline = table.to_prompt_set()
    assert inline == {"name": "cholec80", "task": "phase", "ordered": True, "classes": [
        {"name": "Preparation", "prompts": ["I insert trocars "], "typical_duration": 125.0},
        {"name": "Packaging", "prompts": ["In packaging phase I put the gallbladder into the specimen bag ",
                                          "  second prompt  "]}]}


@pytest.mark.parametrize("rows, message", [
    ([PromptRow("A", ["a"])], "at least two classes"),
    ([PromptRow("A", ["a"]), PromptRow("", ["b"])], "row 2 of the prompt table has no class name"),
    ([PromptRow("A", ["a"]), PromptRow("B", ["  "])], "'B' has no prompt"),
    ([PromptRow("A", ["a"]), PromptRow("A", ["b"])], "'A' is listed twice"),
])
def test_a_bad_prompt_table_is_refused_before_any_request(rows, message):
    with pytest.raises(ClientError, match=message):
        PromptTable("edited", rows=rows).to_prompt_set()
