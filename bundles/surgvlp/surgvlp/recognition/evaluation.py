"""Phase recognition metrics of the surgical workflow literature, computed per video and averaged over videos.

Inputs: our timeline JSON as the prediction; as the truth a Cholec80 phase annotation (``Frame<TAB>Phase``
header, one line per video frame, 25 fps unless told otherwise), a ``path,label`` CSV (one row per
second, in time order, the first at 0 s; the header row is optional) or another timeline JSON (for
instance a corrected one). Truth labels are class names of the prediction's prompt set; a whole number
is read as a 0-based class index.

Alignment: the truth is sampled at the prediction's frame times, taking the annotation in force at each
time (the last truth sample at or before it). Prediction frames before the first or more than one truth
interval after the last truth sample are not scored.

Rules (all values are fractions between 0 and 1; the table prints percentages):

- accuracy: share of scored frames whose label matches the truth.
- per class, per video: precision TP/(TP+FP), recall TP/(TP+FN), Jaccard TP/(TP+FP+FN) and
  F1 2TP/(2TP+FP+FN). A value whose denominator is empty (precision of a class never predicted, recall of
  a class absent from the truth, the others when both hold) is undefined (NaN, ``null`` in JSON) and left
  out of every average.
- macro-F1 of a video: the mean F1 over the classes present in its truth or its prediction (the classes
  absent from both are excluded), as scikit-learn's ``f1_score(average="macro")`` does, which the SurgVLP
  evaluation uses.
- edit score: 1 - (Levenshtein distance between the predicted and true segment label sequences) /
  (the longer sequence's length), as in MS-TCN.
- over videos: the mean and standard deviation of accuracy, macro-F1 and edit score; per class, the mean
  of its defined per-video values; the overall precision, recall and Jaccard are the means of those
  per-class means.
- relaxed (``tolerance`` seconds, 10 in the Cholec80 evaluation): in the first ``tolerance`` seconds of a
  true segment a prediction of the previous true segment's phase counts as correct, and in its last
  ``tolerance`` seconds a prediction of the next true segment's phase does. Such frames are given their
  true label, then every metric above is computed again. Unlike the Cholec80 MATLAB script, "previous"
  and "next" are the neighbouring segments of this video's truth rather than neighbouring phase
  numbers, and the same rule holds for every phase, so it applies unchanged to any prompt set.
"""

from __future__ import annotations

import csv
import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from surgvlp.recognition.decoding import frame_interval
from surgvlp.errors import SurgVLPError
from surgvlp.atomic import atomic_write
from surgvlp.recognition.timeline import Timeline, read_timeline

SCHEMA = "surgvlp.evaluation/1"
CHOLEC80_FPS = 25.0
CSV_FPS = 1.0
RELAXED_TOLERANCE = 10.0
_CHOLEC80_HEADER = ["Frame", "Phase"]
_CSV_HEADER = ["path", "label"]
_PER_CLASS_METRICS = ("precision", "recall", "jaccard", "f1")
_SHORT = {"accuracy": "acc", "macro_f1": "F1", "edit": "edit", "precision": "prec", "recall": "rec", "jaccard": "jacc"}


@dataclass(frozen=True)
class Annotation:
    """Ground truth of one video: sample times in seconds and class indices."""

    times: np.ndarray
    labels: np.ndarray


def read_truth(path: Path, class_names: list[str], fps: float | None = None) -> Annotation:
    """A Cholec80 ``Frame<TAB>Phase`` file, a ``path,label`` CSV or a timeline JSON; ``fps`` overrides
    the format's default frame rate (25 and 1)."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        return timeline_truth(read_timeline(path), class_names, str(path))
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except OSError as error:
        raise SurgVLPError(f"{path}: cannot read the annotation ({error.strerror or error})") from None
    except UnicodeDecodeError:
        raise SurgVLPError(f"{path}: cannot read the annotation (not UTF-8 text)") from None
    rows = [row for row in (line.split("\t") for line in lines) if row != [""]]
    if rows and rows[0] == _CHOLEC80_HEADER:
        rate = fps or CHOLEC80_FPS
        try:
            frames = np.array([int(row[0]) for row in rows[1:]], dtype=np.float64)
        except (ValueError, IndexError):
            raise SurgVLPError(
                f"{path}: every line after 'Frame<TAB>Phase' must be a frame number, a tab and a phase"
            ) from None
        if np.any(np.diff(frames) <= 0):
            raise SurgVLPError(f"{path}: frame numbers must increase from line to line")
        labels = [row[1].strip() if len(row) == 2 else "" for row in rows[1:]]
        return Annotation(frames / rate, _label_indices(labels, class_names, path, first_line=2))
    rows = [row for row in csv.reader(lines) if row]
    if rows and [cell.strip().lower() for cell in rows[0]] == _CSV_HEADER:
        rows, first_line = rows[1:], 2
    else:
        first_line = 1
    if not rows or any(len(row) != 2 for row in rows):
        raise SurgVLPError(
            f"{path}: not a Cholec80 'Frame<TAB>Phase' file nor a 'path,label' CSV with two columns per row"
        )
    labels = [row[1].strip() for row in rows]
    times = np.arange(len(rows)) / (fps or CSV_FPS)
    return Annotation(times, _label_indices(labels, class_names, path, first_line))


def timeline_truth(timeline: Timeline, class_names: list[str], origin: str) -> Annotation:
    """The phases a timeline's segments give its frames, as truth: segments are what a person corrects (the
    per-frame labels keep the decoder's answer), so a corrected timeline teaches what the clinician said."""
    if timeline.task != "phase":
        raise SurgVLPError(f"{origin}: a {timeline.task} timeline holds no phases")
    covered = timeline.presence()
    frames = covered.any(axis=1)
    if not frames.any():
        raise SurgVLPError(f"{origin}: the timeline's segments cover none of its frames")
    names = [timeline.class_names[label] for label in covered[frames].argmax(axis=1)]
    return Annotation(timeline.times[frames], _label_indices(names, class_names, Path(origin), first_line=None))


def _label_indices(labels: list[str], class_names: list[str], path: Path, first_line: int | None) -> np.ndarray:
    if not labels:
        raise SurgVLPError(f"{path}: the annotation holds no labels")
    index = {name: position for position, name in enumerate(class_names)}
    result = np.empty(len(labels), dtype=np.int64)
    for position, label in enumerate(labels):
        if label in index:
            result[position] = index[label]
        elif label.isdigit() and int(label) < len(class_names):
            result[position] = int(label)
        else:
            where = "" if first_line is None else f" on line {first_line + position}"
            raise SurgVLPError(f"{path}: label {label!r}{where} is neither a class of the prediction "
                               f"({', '.join(class_names)}) nor a class index below {len(class_names)}")
    return result


def align(times: np.ndarray, truth: Annotation) -> tuple[np.ndarray, np.ndarray]:
    """Mask of the prediction times the truth covers, and the true label at each of them."""
    position = np.searchsorted(truth.times, times + 1e-6, side="right") - 1
    covered = (position >= 0) & (times < truth.times[-1] + max(frame_interval(truth.times), 1e-6))
    return covered, truth.labels[position[covered]]


def relax(predicted: np.ndarray, true: np.ndarray, times: np.ndarray, tolerance: float) -> np.ndarray:
    """Predictions with the transitions that the tolerance accepts set to the true label (module doc)."""
    relaxed = predicted.copy()
    starts = np.flatnonzero(np.r_[True, true[1:] != true[:-1]])
    stops = np.r_[starts[1:], true.size]
    ends = np.r_[times[starts[1:]], times[-1] + frame_interval(times)]
    for segment, (start, stop) in enumerate(zip(starts, stops)):
        span = slice(start, stop)
        if segment > 0:
            early = (times[span] < times[start] + tolerance) & (predicted[span] == true[starts[segment - 1]])
            relaxed[span][early] = true[start]
        if segment + 1 < starts.size:
            late = (times[span] >= ends[segment] - tolerance) & (predicted[span] == true[stops[segment]])
            relaxed[span][late] = true[start]
    return relaxed


def _segment_labels(labels: np.ndarray) -> np.ndarray:
    return labels[np.r_[True, labels[1:] != labels[:-1]]]


def edit_score(predicted: np.ndarray, true: np.ndarray) -> float:
    """1 - normalised Levenshtein distance between the two sequences of segment labels."""
    a, b = _segment_labels(predicted), _segment_labels(true)
    steps = np.arange(b.size + 1)
    distances = steps
    for row, label in enumerate(a, start=1):
        substituted = np.minimum(distances[1:] + 1, distances[:-1] + (b != label))
        # an insertion costs 1 per step to the right: a running minimum of (cost - column) adds it
        distances = np.minimum.accumulate(np.r_[row, substituted] - steps) + steps
    return 1.0 - distances[-1] / max(a.size, b.size)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, numerator / np.maximum(denominator, 1), np.nan)


def frame_metrics(predicted: np.ndarray, true: np.ndarray, n_classes: int) -> dict[str, Any]:
    """Accuracy, macro-F1, edit score and per-class arrays for one video (rules in the module doc)."""
    classes = np.arange(n_classes)
    hits = (predicted[:, None] == classes) & (true[:, None] == classes)
    tp = hits.sum(axis=0)
    fp = (predicted[:, None] == classes).sum(axis=0) - tp
    fn = (true[:, None] == classes).sum(axis=0) - tp
    f1 = _ratio(2 * tp, 2 * tp + fp + fn)
    return {
        "accuracy": float(np.mean(predicted == true)),
        "macro_f1": float(_nanmean(f1)),
        "edit": edit_score(predicted, true),
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, tp + fn),
        "jaccard": _ratio(tp, tp + fp + fn),
        "f1": f1,
    }


def evaluate_video(timeline: Timeline, truth: Annotation, tolerance: float | None = None) -> dict[str, Any]:
    """Strict metrics, plus relaxed ones when ``tolerance`` (seconds) is given."""
    covered, true = align(timeline.times, truth)
    if not covered.any():
        raise SurgVLPError("the prediction and the annotation do not overlap in time")
    predicted, times = timeline.labels[covered], timeline.times[covered]
    classes = len(timeline.class_names)
    result = {"frames": int(covered.sum()), "strict": frame_metrics(predicted, true, classes)}
    if tolerance is not None:
        result["relaxed"] = frame_metrics(relax(predicted, true, times, tolerance), true, classes)
    return result


def _nanmean(values: np.ndarray, axis: int | None = None) -> np.ndarray | float:
    """Mean of the defined values; NaN (without a warning) where none is defined."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(values, axis=axis)


def _summary(videos: list[dict[str, Any]]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for name in ("accuracy", "macro_f1", "edit"):
        values = [video[name] for video in videos]
        summary[name] = {"mean": float(np.mean(values)), "std": float(np.std(values))}
    for name in _PER_CLASS_METRICS:
        summary[name] = _nanmean(np.array([video[name] for video in videos]), axis=0)
    for name in ("precision", "recall", "jaccard"):
        summary[f"mean_{name}"] = float(_nanmean(summary[name]))
    return summary


def evaluate(
    pairs: list[tuple[Path, Path]], tolerance: float | None = None, truth_fps: float | None = None
) -> dict[str, Any]:
    """Score each (prediction timeline, truth annotation) pair and average over videos; JSON-ready report."""
    if not pairs:
        raise SurgVLPError("nothing to evaluate: give at least one prediction and its annotation")
    timelines = [read_timeline(prediction) for prediction, _ in pairs]
    names = timelines[0].class_names
    videos = []
    for (prediction, truth_path), timeline in zip(pairs, timelines):
        if timeline.task != "phase":
            raise SurgVLPError(f"{prediction}: a {timeline.task} timeline; evaluate scores phase timelines")
        if timeline.class_names != names:
            raise SurgVLPError(f"{prediction}: its classes differ from those of {pairs[0][0]}; "
                               "evaluate videos recognised with the same prompt set together")
        truth = read_truth(truth_path, names, truth_fps)
        try:
            scores = evaluate_video(timeline, truth, tolerance)
        except SurgVLPError as error:
            raise SurgVLPError(f"{prediction} vs {truth_path}: {error}") from None
        videos.append({"prediction": str(prediction), "truth": str(truth_path)} | scores)
    modes = ["strict"] + (["relaxed"] if tolerance is not None else [])
    return {
        "schema": SCHEMA,
        "classes": names,
        "untrained": any(timeline.untrained for timeline in timelines),
        "tolerance": tolerance,
        "videos": videos,
        "summary": {mode: _summary([video[mode] for video in videos]) for mode in modes},
    }


def _jsonable(value: Any, classes: list[str]) -> Any:
    """Per-class arrays become {class: value} mappings and NaN becomes null."""
    if isinstance(value, dict):
        return {key: _jsonable(item, classes) for key, item in value.items()}
    if isinstance(value, list):
        return [_jsonable(item, classes) for item in value]
    if isinstance(value, np.ndarray):
        return {name: _jsonable(float(item), classes) for name, item in zip(classes, value)}
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def write_report(report: dict[str, Any], path: Path) -> None:
    with atomic_write(path, "w", encoding="utf-8") as stream:
        json.dump(_jsonable(report, report["classes"]), stream, indent=2)
        stream.write("\n")


def _percent(value: float) -> str:
    return "-" if math.isnan(value) else f"{100 * value:.1f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(len(header))]
    return ["  ".join(cell.ljust(width) if column == 0 else cell.rjust(width)
                      for column, (cell, width) in enumerate(zip(row, widths))) for row in [header, *rows]]


def format_table(report: dict[str, Any]) -> str:
    """A per-video table and a per-class table, in percent, for the terminal."""
    modes = list(report["summary"])
    video_metrics = [(mode, metric) for mode in modes for metric in ("accuracy", "macro_f1", "edit")]
    video_rows = [
        [Path(video["prediction"]).name, str(video["frames"])]
        + [_percent(video[mode][metric]) for mode, metric in video_metrics]
        for video in report["videos"]
    ]
    for statistic in ("mean", "std"):
        video_rows.append([statistic, ""] + [_percent(report["summary"][mode][metric][statistic])
                                             for mode, metric in video_metrics])
    class_metrics = [(mode, metric) for mode in modes for metric in ("precision", "recall", "jaccard")]
    class_rows = [
        [name] + [_percent(report["summary"][mode][metric][index]) for mode, metric in class_metrics]
        for index, name in enumerate(report["classes"])
    ]
    class_rows.append(
        ["mean"] + [_percent(report["summary"][mode][f"mean_{metric}"]) for mode, metric in class_metrics]
    )
    lines = _table(["video", "frames"] + [f"{mode} {_SHORT[metric]}" for mode, metric in video_metrics], video_rows)
    lines += [""] + _table(["class"] + [f"{mode} {_SHORT[metric]}" for mode, metric in class_metrics], class_rows)
    if report["untrained"]:
        lines += ["", "UNTRAINED MODEL: at least one prediction came from a model that was never trained."]
    return "\n".join(lines)
