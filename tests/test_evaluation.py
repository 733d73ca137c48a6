"""Evaluation metrics against hand-computed cases, the annotation readers and ``surgvlp evaluate``."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import pytest

from surgvlp.cli import evaluate as evaluate_command
from surgvlp.recognition.decoding import segments
from surgvlp.errors import SurgVLPError
from surgvlp.recognition.evaluation import Annotation, align, edit_score, evaluate, frame_metrics, read_truth, relax
from surgvlp.recognition.prompts import PromptClass, PromptSet, load_prompt_set
from surgvlp.recognition.timeline import Timeline, write_json

NAN = math.nan
THREE = PromptSet("abc", "phase", [PromptClass(name, (f"phase {name}",)) for name in "abc"], ordered=True)


def _write_prediction(path: Path, labels: list[int], prompt_set: PromptSet = THREE, fps: float = 1.0,
                      untrained: bool = False) -> Path:
    """A timeline file whose frames carry exactly ``labels``, as ``surgvlp phases`` writes them."""
    labels_array = np.array(labels)
    times = np.arange(len(labels)) / fps
    probabilities = np.eye(len(prompt_set.classes))[labels_array] * 0.9 + 0.1 / len(prompt_set.classes)
    write_json(Timeline({"path": "v.mp4", "duration": len(labels) / fps, "sampled_fps": fps},
                        {"variant": "surgvlp", "checkpoint_sha256": "1" * 64, "untrained": untrained},
                        prompt_set, {"method": "argmax"}, times, probabilities,
                        segments(labels_array, times, probabilities), labels_array), path)
    return path


def _assert_values(actual: np.ndarray, expected: list[float]) -> None:
    np.testing.assert_allclose(actual, expected, equal_nan=True)


def test_frame_metrics_match_hand_computation() -> None:
    true = np.array([0, 0, 0, 1, 1, 1, 2, 2])
    predicted = np.array([0, 0, 1, 1, 1, 2, 2, 2])
    metrics = frame_metrics(predicted, true, 4)  # class 3 absent from both: undefined, excluded
    # TP (2, 2, 2), FP (0, 1, 1), FN (1, 1, 0)
    assert metrics["accuracy"] == 6 / 8
    _assert_values(metrics["precision"], [1, 2 / 3, 2 / 3, NAN])
    _assert_values(metrics["recall"], [2 / 3, 2 / 3, 1, NAN])
    _assert_values(metrics["jaccard"], [2 / 3, 2 / 4, 2 / 3, NAN])
    _assert_values(metrics["f1"], [4 / 5, 4 / 6, 4 / 5, NAN])
    assert metrics["macro_f1"] == pytest.approx((4 / 5 + 4 / 6 + 4 / 5) / 3)
    assert metrics["edit"] == 1.0  # same segment order a, b, c


def test_class_only_predicted_counts_in_macro_f1() -> None:
    metrics = frame_metrics(np.array([0, 0, 3, 3]), np.array([0, 0, 0, 0]), 4)
    _assert_values(metrics["precision"], [1, NAN, NAN, 0])
    _assert_values(metrics["recall"], [0.5, NAN, NAN, NAN])
    _assert_values(metrics["f1"], [4 / 6, NAN, NAN, 0])
    assert metrics["macro_f1"] == pytest.approx(1 / 3)


def test_edit_score_is_normalised_levenshtein_on_segments() -> None:
    assert edit_score(np.array([0, 0, 1, 1, 0, 2]), np.array([0, 1, 1, 1, 2, 2])) == pytest.approx(1 - 1 / 4)
    assert edit_score(np.array([1, 2, 3]), np.array([3, 3, 2, 1])) == pytest.approx(1 - 2 / 3)
    assert edit_score(np.array([5, 5]), np.array([4])) == 0.0
    assert edit_score(np.array([0, 1, 2, 3]), np.array([1, 2, 3, 0])) == pytest.approx(1 - 2 / 4)


def test_relaxed_rule_accepts_neighbours_near_true_transitions() -> None:
    true = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2, 2])
    predicted = np.array([0, 1, 0, 1, 1, 0, 0, 1, 2, 2, 1, 1, 0, 2])
    relaxed = relax(predicted, true, np.arange(14.0), tolerance=2.0)
    # frames 3-4 (next phase, last 2 s), 5-6 (previous, first 2 s), 8-9 (next), 10-11 (previous) are accepted;
    # frame 1 is too early for a transition and frame 12 predicts a phase that is not a neighbour
    np.testing.assert_array_equal(relaxed, [0, 1, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 0, 2])
    np.testing.assert_array_equal(relax(predicted, true, np.arange(14.0), tolerance=0.0), predicted)


def test_alignment_samples_the_truth_at_prediction_times() -> None:
    truth = Annotation(np.arange(100) / 25.0, np.repeat([0, 1], [60, 40]))  # 4 s at 25 fps, b from 2.4 s
    covered, labels = align(np.array([-1.0, 0.0, 1.0, 2.0, 2.4, 3.0, 3.99, 4.1]), truth)
    np.testing.assert_array_equal(covered, [False, True, True, True, True, True, True, False])
    np.testing.assert_array_equal(labels, [0, 0, 0, 1, 1, 1])


def test_truth_readers(tmp_path: Path) -> None:
    names = ["a", "b", "c"]
    (tmp_path / "video01-phase.txt").write_text("Frame\tPhase\n" + "".join(
        f"{frame}\t{'a' if frame < 50 else 'c'}\n" for frame in range(75)))
    cholec = read_truth(tmp_path / "video01-phase.txt", names)
    np.testing.assert_allclose(cholec.times[[0, 50, 74]], [0.0, 2.0, 2.96])
    assert list(cholec.labels[[0, 49, 50]]) == [0, 0, 2]
    (tmp_path / "labels.csv").write_text("path,label\nv/0.png,b\nv/1.png,2\nv/2.png,a\n")
    with_header = read_truth(tmp_path / "labels.csv", names)
    np.testing.assert_array_equal(with_header.times, [0.0, 1.0, 2.0])
    np.testing.assert_array_equal(with_header.labels, [1, 2, 0])  # "2" is a class index
    (tmp_path / "bare.csv").write_text("v/0.png,c\nv/1.png,c\n")
    np.testing.assert_array_equal(read_truth(tmp_path / "bare.csv", names, fps=2.0).times, [0.0, 0.5])
    corrected = _write_prediction(tmp_path / "corrected.json", [2, 2, 1])
    np.testing.assert_array_equal(read_truth(corrected, names).labels, [2, 2, 1])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("Frame\tPhase\n0\ta\n1\tLunch\n", "label 'Lunch' on line 3 is neither a class"),
        ("Frame\tPhase\nzero\ta\n", "must be a frame number, a tab and a phase"),
        ("Frame\tPhase\n1\ta\n0\ta\n", "frame numbers must increase"),
        ("path,label\nv/0.png,a,extra\n", "nor a 'path,label' CSV"),
        ("path,label\n", "nor a 'path,label' CSV"),
        ("Frame\tPhase\n", "holds no labels"),
        ("path,label\nv/0.png,7\n", "label '7' on line 2"),
    ],
)
def test_bad_annotations(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "truth.txt").write_text(content)
    with pytest.raises(SurgVLPError, match=message) as error:
        read_truth(tmp_path / "truth.txt", ["a", "b", "c"])
    assert str(tmp_path / "truth.txt") in str(error.value)


def _write_csv_truth(path: Path, labels: str) -> Path:
    path.write_text("path,label\n" + "".join(f"f/{i}.png,{label}\n" for i, label in enumerate(labels)))
    return path


def test_videos_are_scored_separately_then_averaged(tmp_path: Path) -> None:
    pairs = [
        (_write_prediction(tmp_path / "p1.json", [0, 0, 1, 1]), _write_csv_truth(tmp_path / "t1.csv", "aabb")),
        (_write_prediction(tmp_path / "p2.json", [0, 2, 2, 2]), _write_csv_truth(tmp_path / "t2.csv", "aaac")),
    ]
    report = evaluate(pairs)
    first, second = (video["strict"] for video in report["videos"])
    assert (first["accuracy"], first["macro_f1"]) == (1.0, 1.0)
    # video 2: a has TP 1, FN 2 -> F1 2/4; c has TP 1, FP 2 -> F1 2/4; b absent from both
    assert (second["accuracy"], second["macro_f1"]) == (0.5, 0.5)
    summary = report["summary"]["strict"]
    assert summary["accuracy"] == {"mean": 0.75, "std": 0.25}
    assert summary["macro_f1"]["mean"] == 0.75
    # precision of b is defined in video 1 only; of a in both (1 and 1/1)
    _assert_values(summary["precision"], [1.0, 1.0, 1 / 3])
    _assert_values(summary["recall"], [(1 + 1 / 3) / 2, 1.0, 1.0])
    assert summary["mean_recall"] == pytest.approx(((1 + 1 / 3) / 2 + 2) / 3)
    assert "relaxed" not in report["summary"] and report["untrained"] is False


def test_relaxed_summary_and_untrained_flag(tmp_path: Path) -> None:
    pairs = [(_write_prediction(tmp_path / "p.json", [0, 0, 0, 1, 1, 1], untrained=True),
              _write_csv_truth(tmp_path / "t.csv", "aabbbb"))]
    report = evaluate(pairs, tolerance=1.0)
    assert report["videos"][0]["strict"]["accuracy"] == pytest.approx(5 / 6)
    assert report["videos"][0]["relaxed"]["accuracy"] == 1.0  # frame 2 predicts a in b's first second
    assert report["untrained"] is True and report["tolerance"] == 1.0


def test_mismatched_predictions_are_refused(tmp_path: Path) -> None:
    truth = _write_csv_truth(tmp_path / "t.csv", "aa")
    other = PromptSet("xy", "phase", [PromptClass("x", ("x",)), PromptClass("y", ("y",))])
    with pytest.raises(SurgVLPError, match="classes differ"):
        evaluate([(_write_prediction(tmp_path / "p1.json", [0, 0]), truth),
                  (_write_prediction(tmp_path / "p2.json", [0, 1], other), truth)])
    (tmp_path / "later.txt").write_text("Frame\tPhase\n500\ta\n501\ta\n")  # from 20 s on
    with pytest.raises(SurgVLPError, match="p1.json vs .*later.txt: the prediction and the annotation do not overlap"):
        evaluate([(_write_prediction(tmp_path / "p1.json", [0, 0]), tmp_path / "later.txt")])


def _run_cli(arguments: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="surgvlp")
    evaluate_command.register(parser.add_subparsers(dest="command"))
    parsed = parser.parse_args(["evaluate", *arguments])
    return parsed.handler(parsed)


def test_cli_prints_a_table_and_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cholec80 = load_prompt_set("cholec80")
    prediction = _write_prediction(tmp_path / "video01.json", [0] * 30 + [1] * 30, cholec80)
    (tmp_path / "video01-phase.txt").write_text("Frame\tPhase\n" + "".join(
        f"{frame}\t{'Preparation' if frame < 25 * 35 else 'CalotTriangleDissection'}\n" for frame in range(25 * 60)))
    status = _run_cli(["--pred", str(prediction), "--truth", str(tmp_path / "video01-phase.txt"),
                       "--relaxed", "--out", str(tmp_path / "report.json")])
    table = capsys.readouterr().out
    assert status == 0
    assert "video01.json" in table and "CalotTriangleDissection" in table and "relaxed acc" in table
    report = json.loads((tmp_path / "report.json").read_text())
    video = report["videos"][0]
    assert video["frames"] == 60 and video["strict"]["accuracy"] == pytest.approx(55 / 60)
    assert video["relaxed"]["accuracy"] == 1.0  # the 5 s late transition is inside the 10 s tolerance
    assert video["strict"]["precision"]["ClippingCutting"] is None  # undefined values are null
    assert report["summary"]["strict"]["recall"]["Preparation"] == pytest.approx(30 / 35)


def test_cli_rejects_bad_arguments(tmp_path: Path) -> None:
    prediction = _write_prediction(tmp_path / "p.json", [0, 1])
    with pytest.raises(SurgVLPError, match="2 predictions but 1 annotations"):
        _run_cli(["--pred", str(prediction), str(prediction), "--truth", str(prediction)])
    with pytest.raises(SurgVLPError, match="add --relaxed"):
        _run_cli(["--pred", str(prediction), "--truth", str(prediction), "--tolerance", "5"])
    tools = load_prompt_set("cholec80-tools")
    times = np.arange(3.0)
    tool_file = tmp_path / "tools.json"
    write_json(Timeline({"duration": 3.0, "sampled_fps": 1.0},
                        {"variant": "surgvlp", "checkpoint_sha256": "1" * 64, "untrained": False},
                        tools, {"threshold": 0.5}, times, np.full((3, 7), 0.2), []), tool_file)
    with pytest.raises(SurgVLPError, match="a tool timeline; evaluate scores phase timelines"):
        _run_cli(["--pred", str(tool_file), "--truth", str(prediction)])
