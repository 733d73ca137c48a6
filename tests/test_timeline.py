"""Timeline files: JSON round trip and schema check, CSV columns, PNG plots, atomic writes."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import surgvlp
from surgvlp.recognition.decoding import DecoderSettings, decode, presence_intervals, segments
from surgvlp.errors import SurgVLPError
from surgvlp.recognition.prompts import load_prompt_set
from surgvlp.recognition.timeline import SCHEMA, Timeline, format_clock, read_timeline, write_csv, write_json, write_plot

MODEL = {"variant": "peskavlp", "checkpoint_sha256": "0" * 64, "untrained": True}


def _source(frames: int, fps: float) -> dict:
    return {"path": "/videos/case01.mp4", "duration": frames / fps, "sampled_fps": fps}


def phase_timeline(frames: int = 600, fps: float = 1.0) -> Timeline:
    """Cholec80 probabilities favouring the true phase of seven known segments, Viterbi-decoded."""
    prompt_set = load_prompt_set("cholec80")
    truth = np.repeat(np.arange(7), np.diff(np.linspace(0, frames, 8).astype(int)))
    rng = np.random.default_rng(0)
    probabilities = rng.uniform(0, 1, (frames, 7))
    probabilities[np.arange(frames), truth] += 1.0
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    times = np.arange(frames) / fps
    settings = DecoderSettings("viterbi", min_segment=5.0)
    labels = decode(probabilities, fps, settings, prompt_set)
    return Timeline(_source(frames, fps), MODEL, prompt_set, settings.to_dict(), times, probabilities,
                    segments(labels, times, probabilities), labels)


def tool_timeline(frames: int = 120) -> Timeline:
    prompt_set = load_prompt_set("cholec80-tools")
    times = np.arange(frames, dtype=float)
    rng = np.random.default_rng(1)
    scores = rng.uniform(0, 0.4, (frames, 7))
    scores[20:70, 0] = 0.9  # the grasper is in from 20 s to 70 s
    scores[50:60, 2] = 0.8  # the hook from 50 s to 60 s
    decoder = {"threshold": 0.5, "min_segment": 0.0}
    return Timeline(_source(frames, 1.0), MODEL | {"untrained": False}, prompt_set, decoder, times, scores,
                    presence_intervals(scores, times, 0.5, fps=1.0))


def test_phase_json_round_trip(tmp_path: Path) -> None:
    timeline = phase_timeline()
    timeline.source["frame_count"] = np.int64(600)  # sources may describe themselves with numpy numbers
    write_json(timeline, tmp_path / "t.json")
    data = json.loads((tmp_path / "t.json").read_text())
    assert data["schema"] == SCHEMA and data["untrained"] is True and data["task"] == "phase"
    assert data["segments"][0] | {"mean_confidence": 0} == {"label": "Preparation", "start": 0.0,
                                                            "end": timeline.segments[0].end, "mean_confidence": 0}
    back = read_timeline(tmp_path / "t.json")
    assert back.prompt_set == timeline.prompt_set
    assert (back.source, back.model, back.decoder) == (timeline.source, timeline.model, timeline.decoder)
    assert back.source["frame_count"] == 600 and back.software == {"surgvlp": surgvlp.__version__}
    np.testing.assert_array_equal(back.labels, timeline.labels)
    np.testing.assert_allclose(back.times, timeline.times)
    np.testing.assert_allclose(back.scores, timeline.scores, atol=1e-6)
    assert [(s.label, s.start, s.end) for s in back.segments] == [(s.label, s.start, s.end) for s in timeline.segments]
    assert [s.mean_confidence for s in back.segments] == pytest.approx(
        [s.mean_confidence for s in timeline.segments], abs=1e-6)
    assert [s.label for s in back.segments] == list(range(7))


def test_tool_json_round_trip(tmp_path: Path) -> None:
    timeline = tool_timeline()
    write_json(timeline, tmp_path / "tools.json")
    data = json.loads((tmp_path / "tools.json").read_text())
    assert data["untrained"] is False and data["decoder"]["threshold"] == 0.5
    assert data["presence"]["Grasper"] == [{"start": 20.0, "end": 70.0, "mean_score": 0.9}]
    assert data["presence"]["Hook"] == [{"start": 50.0, "end": 60.0, "mean_score": 0.8}]
    assert data["presence"]["Bipolar"] == [] and "segments" not in data
    back = read_timeline(tmp_path / "tools.json")
    assert back.labels is None and back.segments == timeline.segments
    np.testing.assert_allclose(back.scores, timeline.scores, atol=1e-6)


def test_version_1_files_still_read(tmp_path: Path) -> None:
    """Version 1 called the decoder's min_segment min_duration; nothing else changed."""
    write_json(phase_timeline(60), tmp_path / "t.json")
    data = json.loads((tmp_path / "t.json").read_text())
    assert data["schema"] == "surgvlp.timeline/2" and "min_segment" in data["decoder"]
    decoder = {("min_duration" if key == "min_segment" else key): value for key, value in data["decoder"].items()}
    (tmp_path / "v1.json").write_text(json.dumps(data | {"schema": "surgvlp.timeline/1", "decoder": decoder}))
    back = read_timeline(tmp_path / "v1.json")
    assert back.decoder == data["decoder"]
    np.testing.assert_array_equal(back.labels, read_timeline(tmp_path / "t.json").labels)


def test_reader_checks_the_schema(tmp_path: Path) -> None:
    write_json(phase_timeline(60), tmp_path / "t.json")
    data = json.loads((tmp_path / "t.json").read_text())
    cases = {
        "newer.json": (data | {"schema": "surgvlp.timeline/3"}, "schema 'surgvlp.timeline/3' is not supported"),
        "other.json": ({"phases": []}, "not a surgvlp timeline"),
        "short.json": (data | {"frames": data["frames"] | {"label": [0]}}, "damaged timeline"),
        "no_frames.json": ({k: v for k, v in data.items() if k != "frames"}, "'frames' is missing"),
        "bad_label.json": (data | {"segments": [{"label": "Lunch", "start": 0, "end": 1, "mean_confidence": 1}]},
                           "'Lunch' is missing or unknown"),
    }
    for name, (content, message) in cases.items():
        (tmp_path / name).write_text(json.dumps(content))
        with pytest.raises(SurgVLPError, match=message) as error:
            read_timeline(tmp_path / name)
        assert str(tmp_path / name) in str(error.value) and "\n" not in str(error.value)
    (tmp_path / "text.json").write_text("Frame\tPhase\n")
    with pytest.raises(SurgVLPError, match="not a JSON timeline"):
        read_timeline(tmp_path / "text.json")
    with pytest.raises(SurgVLPError, match="cannot read the timeline"):
        read_timeline(tmp_path / "absent.json")


def test_timeline_rejects_inconsistent_arrays() -> None:
    timeline = phase_timeline(30)
    with pytest.raises(ValueError, match="scores"):
        Timeline(timeline.source, MODEL, timeline.prompt_set, {}, timeline.times, timeline.scores[:, :3],
                 [], timeline.labels)
    with pytest.raises(ValueError, match="source lacks sampled_fps"):
        Timeline({"duration": 30.0}, MODEL, timeline.prompt_set, {}, timeline.times, timeline.scores, [],
                 timeline.labels)
    with pytest.raises(ValueError, match="class indices below 7"):
        Timeline(timeline.source, MODEL, timeline.prompt_set, {}, timeline.times, timeline.scores, [],
                 timeline.labels + 7)


def test_phase_csv_has_one_row_per_frame(tmp_path: Path) -> None:
    timeline = phase_timeline(90)
    write_csv(timeline, tmp_path / "t.csv")
    with open(tmp_path / "t.csv", newline="") as stream:
        rows = list(csv.reader(stream))
    assert rows[0] == ["time", "label", "untrained", *timeline.class_names]
    assert len(rows) == 91
    assert [row[1] for row in rows[1:]] == [timeline.class_names[label] for label in timeline.labels]
    assert {row[2] for row in rows[1:]} == {"true"}  # an untrained model's spreadsheet says so in every row
    np.testing.assert_allclose([[float(cell) for cell in row[3:]] for row in rows[1:]], timeline.scores, atol=1e-6)
    assert [float(row[0]) for row in rows[1:]] == list(timeline.times)


def test_tool_csv_lists_present_tools(tmp_path: Path) -> None:
    write_csv(tool_timeline(), tmp_path / "tools.csv")
    with open(tmp_path / "tools.csv", newline="") as stream:
        rows = list(csv.reader(stream))
    assert rows[0][:4] == ["time", "present", "untrained", "Grasper"]
    assert {row[2] for row in rows[1:]} == {"false"}
    assert (rows[1][1], rows[21][1], rows[51][1], rows[61][1], rows[71][1]) == ("", "Grasper", "Grasper;Hook",
                                                                                 "Grasper", "")


@pytest.mark.parametrize("make", [phase_timeline, tool_timeline])
def test_plot_is_a_png_of_plausible_size(tmp_path: Path, make) -> None:
    write_plot(make(), tmp_path / "plot.png")
    assert (tmp_path / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(tmp_path / "plot.png") as image:
        assert image.format == "PNG" and 800 <= image.width <= 2000 and 300 <= image.height <= 1200
        pixels = np.asarray(image.convert("RGB"))
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 20  # drawn, not blank


def test_clock_labels() -> None:
    assert [format_clock(s) for s in (0, 59.6, 61, 3725)] == ["00:00", "01:00", "01:01", "62:05"]


def test_failed_write_leaves_nothing_behind(tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()  # a folder where the file should go: the final rename fails
    with pytest.raises(SurgVLPError, match="cannot write .*taken"):
        write_json(phase_timeline(30), tmp_path / "taken")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["taken"]
    assert not any((tmp_path / "taken").iterdir())
