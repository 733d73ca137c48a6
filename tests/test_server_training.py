"""Corrections teach the model: final timelines saved through the server train the adapter, which then labels a
held-out case (real server, stock client, synthetic cases with known phases)."""

from __future__ import annotations

import json
import shutil
import time

import numpy as np
import pytest

from monai_server import Server, run_job

TRAIN_SEEDS, HELD_OUT_SEED, DURATION = (1, 2), 3, 70


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    from surgvlp.sample_data import write_sample_case

    folder = tmp_path_factory.mktemp("training_studies")
    truths = {}
    for seed in (*TRAIN_SEEDS, HELD_OUT_SEED):
        case = write_sample_case(tmp_path_factory.mktemp(f"case{seed}"), duration=DURATION, seed=seed,
                                 size=(160, 96), fps=5, progress=False)
        shutil.copy(case.directory / "case.mp4", folder / f"case{seed}.mp4")
        truths[f"case{seed}.mp4"] = json.loads((case.directory / "case.json").read_text())["phases"]
    return folder, truths


@pytest.fixture(scope="module")
def server(cases, tiny_model, tmp_path_factory):
    running = Server(cases[0], tmp_path_factory.mktemp("training_server"), {"threads": "2"})
    yield running
    running.stop()


def _corrected(timeline: dict, phases: list[dict]) -> dict:
    """What a clinician's correction amounts to: the segments replaced by the true phases."""
    corrected = {key: value for key, value in timeline.items() if key != "job"}
    corrected["segments"] = [{"label": phase["name"], "start": phase["start"], "end": phase["end"],
                              "mean_confidence": 1.0} for phase in phases]
    return corrected


def _accuracy(timeline: dict, phases: list[dict]) -> float:
    times, labels = np.asarray(timeline["frames"]["time"]), timeline["frames"]["label"]
    names = [phase["name"] for phase in timeline["prompt_set"]["classes"]]
    truth = [next(phase["name"] for phase in phases if phase["start"] <= t < phase["end"]) for t in times]
    return float(np.mean([names[label] == true for label, true in zip(labels, truth)]))


def test_corrections_train_the_adapter_which_labels_a_held_out_case(server, cases, tmp_path):
    from monailabel.client import MONAILabelClient

    client = MONAILabelClient(server.url)
    _, truths = cases
    for seed in TRAIN_SEEDS:
        image = f"case{seed}.mp4"
        _, timeline = run_job(client, "surgvlp_phase", image, {"decoder": "argmax"})
        path = tmp_path / f"{image}.json"
        path.write_text(json.dumps(_corrected(timeline, truths[image])))
        client.save_label(image, str(path), tag="final")
    held_out = f"case{HELD_OUT_SEED}.mp4"
    _, zero_shot = run_job(client, "surgvlp_phase", held_out, {"decoder": "argmax"})
    assert "adapter" not in zero_shot["model"]

    client.train_start("surgvlp_adapter", {})
    deadline = time.monotonic() + 120
    while client.train_status()["status"] not in ("DONE", "ERROR") and time.monotonic() < deadline:
        time.sleep(0.5)
    assert client.train_status()["status"] == "DONE", client.train_status()
    stats = client.info()["train_stats"]["surgvlp_adapter"]
    assert stats["trained"], server.log.read_text()[-3000:]
    assert sorted(stats["adapters"]["cholec80"]["cases"]) == ["case1.mp4", "case2.mp4"]

    _, adapted = run_job(client, "surgvlp_phase", held_out, {"decoder": "argmax"})
    assert adapted["model"]["adapter"]["frames"] == 2 * DURATION and adapted["untrained"] is True
    assert _accuracy(adapted, truths[held_out]) >= 0.8
    assert server.network_attempts() == ""
