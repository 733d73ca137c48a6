"""What the app refuses at start-up and without weights: a real ``monailabel start_server`` each time."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from monai_server import REPO, Server


def test_without_weights_the_models_are_listed_unavailable_and_infer_says_what_to_do(sample_case, tmp_path):
    from monailabel.client import MONAILabelClient
    from monailabel.client.client import MONAILabelClientException

    server = Server(sample_case.directory, tmp_path / "server",
                    {"checkpoint": "peskavlp", "allow_untrained": "false", "weights_dir": str(tmp_path / "empty")})
    try:
        client = MONAILabelClient(server.url)
        deadline = time.monotonic() + 60
        while client.info()["models"]["surgvlp_phase"]["reason"] is None or \
                client.info()["models"]["surgvlp_phase"]["reason"].startswith("loading"):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        models = client.info()["models"]
        for name in ("surgvlp_phase", "surgvlp_tools"):
            assert models[name]["available"] is False and "surgvlp weights fetch peskavlp" in models[name]["reason"]
        assert models["surgvlp_frames"]["available"] is True  # showing the video needs no model
        with pytest.raises(MONAILabelClientException) as refused:
            client.infer("surgvlp_phase", "case.mp4", {})
        answer = refused.value.args[1]
        assert answer.startswith("Status: 409") and "surgvlp weights fetch peskavlp" in answer
        assert server.network_attempts() == ""
    finally:
        server.stop()


def test_the_app_refuses_to_serve_other_machines_unless_told(sample_case, tmp_path):
    command = [str(Path(sys.executable).parent / "monailabel"), "start_server", "--app", str(REPO / "monai_app"),
               "--studies", str(sample_case.directory), "--port", "0"]
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "refusing to serve on 0.0.0.0" in done.stdout + done.stderr
