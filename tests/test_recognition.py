"""``surgvlp phases`` / ``tools`` / ``adapt`` end to end on the sample case with the tiny model, and the cache."""

from __future__ import annotations

import csv
import json
import threading

import numpy as np
import pytest

from surgvlp.recognition.adapter import PhaseAdapter
from surgvlp.recognition.cache import EmbeddingCache
from surgvlp.cli import main
from surgvlp.recognition.decoding import DecoderSettings
from surgvlp.recognition.scoring import phase_probabilities
from surgvlp.network.crop import pil_crop
from surgvlp.network.encoder import SurgVLPEncoder
from surgvlp.recognition.evaluation import align, read_truth
from surgvlp.network.loading import load_model
from surgvlp.recognition.prompts import load_prompt_set
from surgvlp.recognition.pipeline import embed, phase_timeline
from surgvlp.sources import open_source
from surgvlp.recognition.timeline import read_timeline


@pytest.fixture
def model_args(tiny_model) -> list[str]:
    return ["--checkpoint", "untrained-tiny", "--allow-untrained", "--device", "cpu", "--batch-size", "8"]


def test_phases_writes_timeline_csv_and_plot(sample_case, model_args, tmp_path):
    out = tmp_path / "timeline.json"
    code = main(["phases", str(sample_case.video), "--decoder", "viterbi", "--out", str(out),
                 "--csv", str(tmp_path / "t.csv"), "--plot", str(tmp_path / "t.png"), *model_args])
    assert code == 0
    timeline = read_timeline(out)
    document = json.loads(out.read_text())
    assert document["untrained"] is True and document["model"]["untrained"] is True
    assert timeline.class_names[0] == "Preparation" and len(timeline.class_names) == 7
    assert len(timeline.times) == 21 and timeline.times[1] - timeline.times[0] == pytest.approx(1.0, abs=0.05)
    np.testing.assert_allclose(timeline.scores.sum(axis=1), 1.0, rtol=1e-5)
    assert timeline.segments[0].start == pytest.approx(0.0, abs=0.05)
    assert timeline.segments[-1].end == pytest.approx(21.0, abs=0.05)
    assert (tmp_path / "t.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The calibrated test model's scores follow the frames, so the timeline is not one flat band.
    assert np.abs(np.diff(timeline.scores, axis=0)).max() > 0.5
    assert len(timeline.segments) >= 2
    rows = list(csv.reader((tmp_path / "t.csv").read_text().splitlines()))
    assert len(rows) == 22 and rows[0][:3] == ["time", "label", "untrained"]
    assert {row[2] for row in rows[1:]} == {"true"}


def test_every_container_gives_the_same_timeline(sample_case, model_args, tmp_path):
    labels = []
    for name, source in [("mp4", sample_case.video), ("dicom", sample_case.dicom_video), ("frames", sample_case.frames)]:
        out = tmp_path / f"{name}.json"
        assert main(["phases", str(source), "--out", str(out), *model_args]) == 0
        labels.append(read_timeline(out).labels)
    assert len(labels[0]) == len(labels[1]) == len(labels[2])
    # At least 4 of the 7 phases: a pipeline that gave the model the same frame over and over would get one.
    assert len(set(labels[0].tolist())) >= 4 and len(set(labels[2].tolist())) >= 4
    # the mp4 and its DICOM wrapping hold the same stream: identical decisions
    np.testing.assert_array_equal(labels[0], labels[1])


def test_tools_reports_presence_per_tool(sample_case, model_args, tmp_path):
    out = tmp_path / "tools.json"
    assert main(["tools", str(sample_case.video), "--threshold", "0.6", "--out", str(out), *model_args]) == 0
    document = json.loads(out.read_text())
    assert document["task"] == "tool" and document["untrained"] is True
    assert document["decoder"]["threshold"] == 0.6
    assert set(document["presence"]) == {"Grasper", "Bipolar", "Hook", "Scissors", "Clipper", "Irrigator", "SpecimenBag"}
    scores = np.asarray(document["frames"]["scores"])
    assert scores.shape == (21, 7) and ((scores >= 0) & (scores <= 1)).all()
    assert scores.std(axis=0).min() > 0.05  # every tool's score changes from frame to frame


def test_cache_hit_never_runs_the_image_encoder(sample_case, tiny_model, tmp_path, monkeypatch):
    loaded = load_model("untrained-tiny", allow_untrained=True, device="cpu")
    cache = EmbeddingCache(tmp_path / "cache")
    source = open_source(sample_case.video, fps=1.0)
    first = embed(loaded, source, load_prompt_set("cholec80"), cache=cache)
    assert not first.from_cache

    def refuse(*args, **kwargs):
        raise AssertionError("the image encoder ran on a cache hit")

    monkeypatch.setattr(SurgVLPEncoder, "encode_images", refuse)
    again = open_source(sample_case.video, fps=1.0)
    again.prefetch(4, transform=pil_crop)  # as a command does before it loads its model
    second = embed(loaded, again, load_prompt_set("autolaparo"), cache=cache)
    assert second.from_cache
    # the frames were not needed after all: their decoding is stopped, not left to run
    assert not any(thread.name == "surgvlp-frame-decoder" for thread in threading.enumerate())
    np.testing.assert_array_equal(first.frames, second.frames)
    # another sampling rate is another entry, so it needs the encoder
    with pytest.raises(AssertionError, match="image encoder ran"):
        embed(loaded, open_source(sample_case.video, fps=2.0), load_prompt_set("cholec80"), cache=cache)


def test_cached_scores_are_the_scores_of_a_fresh_run(sample_case, tiny_model, tmp_path, one_torch_thread):
    loaded = load_model("untrained-tiny", allow_untrained=True, device="cpu")
    cache = EmbeddingCache(tmp_path / "cache")
    prompt_set = load_prompt_set("cholec80")
    embed(loaded, open_source(sample_case.video, fps=1.0), prompt_set, cache=cache)
    cached = embed(loaded, open_source(sample_case.video, fps=1.0), prompt_set, cache=cache)
    uncached = embed(loaded, open_source(sample_case.video, fps=1.0), prompt_set, cache=False)
    assert cached.from_cache and not uncached.from_cache
    scores = phase_probabilities(cached.frames, cached.classes)
    np.testing.assert_allclose(scores, phase_probabilities(uncached.frames, uncached.classes), atol=1e-6, rtol=0)
    np.testing.assert_array_equal(cached.times, uncached.times)
    assert np.ptp(scores, axis=0).max() > 0.5  # the scores differ between frames, so a mix-up would show


def test_cache_respects_its_size_limit_and_clears(sample_case, tiny_model, tmp_path):
    loaded = load_model("untrained-tiny", allow_untrained=True, device="cpu")
    cache = EmbeddingCache(tmp_path / "cache", limit_bytes=0)
    embed(loaded, open_source(sample_case.video, fps=1.0), load_prompt_set("cholec80"), cache=cache)
    assert cache.entries() == []
    cache = EmbeddingCache(tmp_path / "cache")
    embed(loaded, open_source(sample_case.video, fps=1.0), load_prompt_set("cholec80"), cache=cache)
    assert len(cache.entries()) == 2 and cache.size_bytes() > 21 * 768 * 4
    assert cache.clear() > 0 and cache.entries() == []


def test_adapter_starts_as_the_zero_shot_classifier_and_learns(sample_case, tiny_model, tmp_path):
    loaded = load_model("untrained-tiny", allow_untrained=True, device="cpu")
    prompt_set = load_prompt_set("cholec80")
    source = open_source(sample_case.video, fps=1.0)
    embedded = embed(loaded, source, prompt_set, cache=EmbeddingCache(tmp_path / "cache"))
    adapter = PhaseAdapter.from_prompts(prompt_set, embedded.classes, loaded.sha256, loaded.untrained)
    np.testing.assert_allclose(adapter.probabilities(embedded.frames), phase_probabilities(embedded.frames, embedded.classes), atol=1e-4)

    covered, truth = align(embedded.times, read_truth(sample_case.phase_annotation, prompt_set.class_names))
    assert covered.all()
    adapter.fit([embedded.frames], [truth], epochs=200)
    path = tmp_path / "adapter.npz"
    adapter.save(path)
    reloaded = PhaseAdapter.load(path, loaded.sha256)
    timeline = phase_timeline(embedded, DecoderSettings(), reloaded)
    assert (timeline.labels == truth).mean() >= 0.9  # fits its own training video
    assert timeline.model["adapter"]["untrained_encoder"] is True


def test_adapt_cli_trains_and_phases_uses_the_adapter(sample_case, model_args, tmp_path):
    adapter = tmp_path / "adapter.npz"
    assert main(["adapt", "--video", str(sample_case.video), "--truth", str(sample_case.phase_annotation),
                 "--out", str(adapter), "--epochs", "50", *model_args]) == 0
    out = tmp_path / "adapted.json"
    assert main(["phases", str(sample_case.video), "--adapter", str(adapter), "--out", str(out), *model_args]) == 0
    assert json.loads(out.read_text())["model"]["adapter"]["frames"] == 21


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--prompt-set", "cholec80-tools"], "is for tool recognition, not phase"),
        (["--prompt-set", "no-such-set"], "neither a built-in set"),
        (["--checkpoint", "hecvl"], "surgvlp weights fetch hecvl"),
    ],
)
def test_bad_requests_are_one_line_errors(sample_case, model_args, tmp_path, capsys, extra, message):
    out = tmp_path / "timeline.json"
    assert main(["phases", str(sample_case.video), "--out", str(out), *model_args, *extra]) == 2
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1
    assert not out.exists()


def test_corrupt_video_is_a_one_line_error(tmp_path, model_args, capsys):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(200))
    assert main(["phases", str(broken), "--out", str(tmp_path / "t.json"), *model_args]) == 2
    error = capsys.readouterr().err
    assert "broken.mp4" in error and error.count("\n") == 1


def test_evaluate_scores_a_timeline_against_the_sample_annotation(sample_case, model_args, tmp_path, capsys):
    timeline = tmp_path / "timeline.json"
    assert main(["phases", str(sample_case.video), "--out", str(timeline), *model_args]) == 0
    report_path = tmp_path / "report.json"
    assert main(["evaluate", "--pred", str(timeline), "--truth", str(sample_case.phase_annotation),
                 "--relaxed", "--out", str(report_path)]) == 0
    printed = capsys.readouterr().out
    assert "strict acc" in printed and "UNTRAINED MODEL" in printed
    report = json.loads(report_path.read_text())
    predicted = read_timeline(timeline)
    covered, truth = align(predicted.times, read_truth(sample_case.phase_annotation, predicted.class_names))
    assert report["untrained"] is True
    assert report["videos"][0]["strict"]["accuracy"] == pytest.approx((predicted.labels[covered] == truth).mean())
