"""A real MONAI Label server running ``monai_app``, started by the stock ``monailabel start_server`` command.

Tests talk to it over HTTP on 127.0.0.1 with the stock client, exactly as Slicer does. The server runs the tiny
random-weight model (explicitly allowed, so every answer says ``untrained``), with the test session's weights,
cache and data folders, and the network guard of ``network_guard/sitecustomize.py``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 120.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def result(answer: Any) -> dict[str, Any]:
    """The stock client's ``infer`` gives the JSON as bytes (or a dict from a multipart answer)."""
    return json.loads(answer) if isinstance(answer, (bytes, str)) else answer


def run_job(client: Any, model: str, image: str, params: dict[str, Any], timeout: float = 120.0) -> tuple[Any, dict]:
    """Start (or join) a job with the stock client and poll it to its end; returns (file, result JSON)."""
    file, answer = client.infer(model, image, params)
    answer = result(answer)
    deadline = time.monotonic() + timeout
    while answer["job"]["state"] in ("queued", "running"):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{model} on {image} still {answer['job']} after {timeout} s")
        time.sleep(0.1)
        file, answer = client.infer(model, image, {"job": answer["job"]["id"]})
        answer = result(answer)
    return file, answer


class Server:
    def __init__(self, studies: str | Path, workdir: Path, conf: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workdir = workdir
        self.network_log = workdir / "network.log"
        self.log = workdir / "server.log"
        conf = {"checkpoint": "untrained-tiny", "allow_untrained": "true", "threads": "1", **(conf or {})}
        command = [shutil.which("monailabel", path=str(Path(sys.executable).parent)) or "monailabel",
                   "start_server", "--app", str(REPO / "monai_app"), "--studies", str(studies),
                   "--host", "127.0.0.1", "--port", str(self.port)]
        for key, value in conf.items():
            command += ["--conf", key, value]
        env = dict(os.environ)
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # stock script runs `python`
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "tests" / "network_guard"), env.get("PYTHONPATH")]))
        env["SURGVLP_NETWORK_LOG"] = str(self.network_log)
        workdir.mkdir(parents=True, exist_ok=True)
        self._log_stream = open(self.log, "wb")
        self.process = subprocess.Popen(command, cwd=workdir, env=env, stdout=self._log_stream, stderr=subprocess.STDOUT,
                                        start_new_session=True)  # its own group: stop() ends uvicorn too
        self.started_in = self._wait()

    def _wait(self) -> float:
        began = time.monotonic()
        while time.monotonic() - began < START_TIMEOUT_S:
            if self.process.poll() is not None:
                raise RuntimeError(f"monailabel exited with {self.process.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/info/", timeout=2) as answer:
                    if answer.status == 200:
                        return time.monotonic() - began
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"monailabel did not answer within {START_TIMEOUT_S} s:\n{self.log.read_text()[-3000:]}")

    def get(self, path: str, timeout: float = 30.0) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"{self.url}{path}", timeout=timeout) as answer:
                return answer.status, answer.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def network_attempts(self) -> str:
        return self.network_log.read_text() if self.network_log.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._log_stream.close()
