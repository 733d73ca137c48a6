"""The server's timeline documents (schema ``surgvlp.timeline/2``, ``docs/timeline-schema.md``) and the
edits a clinician makes to a phase timeline.

A ``PhaseTimeline`` wraps one document and never changes: every edit (move a boundary, split, merge,
relabel) returns a new one, so the module keeps an undo history for free. An edit rewrites only what it
changes: the ``segments``, the per-frame ``frames.label`` that must agree with them and each segment's
``mean_confidence`` (recomputed from the stored probabilities); every other field is carried over as it
was, unknown ones included, so a document read, edited and saved keeps all it had.

Segments always tile the sampled range: no gaps, no overlaps, each holding at least one sampled frame,
labels from the document's prompt set, neighbours with different labels (an edit that would give two
neighbours the same label joins them, as the decoder would have). Boundaries sit on sample times: a
segment starts at the first frame it holds, as decoded timelines do.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .errors import ClientError

SCHEMA_FAMILY = "surgvlp.timeline"
READABLE_SCHEMAS = ("surgvlp.timeline/2", "surgvlp.timeline/1")
_TOLERANCE = 1e-6  # seconds: times are stored with 6 decimals
_DECIMALS = 6


@dataclass(frozen=True)
class Segment:
    label: str
    start: float
    end: float
    mean_confidence: float | None = None

    @property
    def duration(self) -> float:
        return self.end - self.start


def load_document(data: bytes | str | dict, origin: str = "timeline") -> dict[str, Any]:
    """A parsed timeline document, its schema checked; ``origin`` names it in errors."""
    if isinstance(data, (bytes, str)):
        try:
            data = json.loads(data)
        except (ValueError, UnicodeDecodeError) as error:
            raise ClientError(f"{origin}: not a JSON timeline ({error})") from None
    if not isinstance(data, dict) or not str(data.get("schema", "")).startswith(SCHEMA_FAMILY + "/"):
        raise ClientError(f"{origin}: not a surgvlp timeline (no 'schema': 'surgvlp.timeline/2' field)")
    if data["schema"] not in READABLE_SCHEMAS:
        raise ClientError(f"{origin}: timeline schema {data['schema']!r} is not supported by this module; update it")
    return data


def _class_names(document: dict[str, Any], origin: str) -> list[str]:
    try:
        names = [str(item["name"]) for item in document["prompt_set"]["classes"]]
    except (KeyError, TypeError):
        raise ClientError(f"{origin}: the timeline has no prompt_set classes") from None
    if not names or len(set(names)) != len(names):
        raise ClientError(f"{origin}: the timeline's class names are empty or repeated")
    return names


def _times(document: dict[str, Any], origin: str) -> np.ndarray:
    try:
        times = np.asarray(document["frames"]["time"], dtype=np.float64)
    except (KeyError, TypeError, ValueError):
        raise ClientError(f"{origin}: the timeline has no frame times") from None
    if times.ndim != 1 or times.size == 0 or np.any(np.diff(times) <= 0) or not np.all(np.isfinite(times)):
        raise ClientError(f"{origin}: the timeline's frame times are not increasing")
    return times


def _score_rows(document: dict[str, Any], key: str, frames: int, classes: int, origin: str) -> np.ndarray:
    try:
        scores = np.asarray(document["frames"][key], dtype=np.float64)
    except (KeyError, TypeError, ValueError):
        raise ClientError(f"{origin}: the timeline has no frame {key}") from None
    if scores.shape != (frames, classes):
        raise ClientError(f"{origin}: frame {key} are {scores.shape}, expected ({frames}, {classes})")
    return scores


class PhaseTimeline:
    """One phase timeline document and its segments (validated on construction)."""

    def __init__(self, document: dict[str, Any], origin: str = "timeline") -> None:
        document = load_document(document, origin)
        if document.get("task") != "phase":
            raise ClientError(f"{origin}: a {document.get('task')!r} timeline is not a phase timeline")
        self._document = document
        self.origin = origin
        self.classes = _class_names(document, origin)
        self.times = _times(document, origin)
        self.probabilities = _score_rows(document, "probabilities", self.times.size, len(self.classes), origin)
        try:
            self.segments = tuple(
                Segment(str(item["label"]), float(item["start"]), float(item["end"]),
                        None if item.get("mean_confidence") is None else float(item["mean_confidence"]))
                for item in document["segments"])
        except (KeyError, TypeError, ValueError, AttributeError):
            raise ClientError(f"{origin}: the timeline's segments are damaged") from None
        self._validate()

    @classmethod
    def from_json(cls, data: bytes | str, origin: str = "timeline") -> PhaseTimeline:
        return cls(load_document(data, origin), origin)

    # -- what the module shows ------------------------------------------------------------------------
    @property
    def untrained(self) -> bool:
        """True when an untrained model made it (or the document does not say): never shown as real."""
        return self._document.get("untrained", True) is not False

    @property
    def start(self) -> float:
        return self.segments[0].start

    @property
    def end(self) -> float:
        return self.segments[-1].end

    def segment_index_at(self, time: float) -> int:
        """The segment holding ``time`` (clamped to the sampled range)."""
        return int(_segment_indices(self.segments, np.array([time]))[0])

    def label_at(self, time: float) -> str:
        return self.segments[self.segment_index_at(time)].label

    def frame_labels(self) -> np.ndarray:
        """The class index of every sampled frame, as the segments say."""
        return _frame_labels(self.segments, self.times, self.classes)

    def to_document(self) -> dict[str, Any]:
        return copy.deepcopy(self._document)

    def to_json(self) -> bytes:
        return json.dumps(self._document, separators=(",", ":")).encode("utf-8")

    # -- edits --------------------------------------------------------------------------------------
    def move_boundary(self, index: int, time: float) -> PhaseTimeline:
        """Move the start of segment ``index`` (so also the end of segment ``index - 1``) to ``time``.

        The boundary lands on the nearest sample time; both segments must keep at least one frame.
        """
        self._check_index(index, first=1)
        boundary = self._snap(time)
        before, after = self.segments[index - 1], self.segments[index]
        if not before.start < boundary < after.end:
            raise ClientError(f"a boundary between {before.label} and {after.label} must stay between "
                              f"{before.start:.1f} s and {after.end:.1f} s")
        segments = list(self.segments)
        segments[index - 1] = Segment(before.label, before.start, boundary)
        segments[index] = Segment(after.label, boundary, after.end)
        return self._with(segments)

    def split(self, time: float, label: str) -> PhaseTimeline:
        """Cut the segment holding ``time`` there; the part from ``time`` on becomes ``label``."""
        self._check_label(label)
        index = self.segment_index_at(time)
        segment = self.segments[index]
        boundary = self._snap(time)
        if not segment.start < boundary < segment.end:
            raise ClientError(f"{segment.label} ({segment.start:.1f}-{segment.end:.1f} s) cannot be split at "
                              f"{boundary:.1f} s: both parts need a frame")
        if label == segment.label:
            raise ClientError(f"the part after {boundary:.1f} s is already {label}; choose another phase")
        segments = list(self.segments)
        segments[index:index + 1] = [Segment(segment.label, segment.start, boundary),
                                     Segment(label, boundary, segment.end)]
        return self._with(segments)

    def merge(self, index: int) -> PhaseTimeline:
        """Join segment ``index`` with the next one, under the label of segment ``index``."""
        self._check_index(index, last=len(self.segments) - 2)
        first, second = self.segments[index], self.segments[index + 1]
        segments = list(self.segments)
        segments[index:index + 2] = [Segment(first.label, first.start, second.end)]
        return self._with(segments)

    def relabel(self, index: int, label: str) -> PhaseTimeline:
        self._check_index(index)
        self._check_label(label)
        segment = self.segments[index]
        segments = list(self.segments)
        segments[index] = Segment(label, segment.start, segment.end)
        return self._with(segments)

    # -- internals ----------------------------------------------------------------------------------
    def _check_index(self, index: int, first: int = 0, last: int | None = None) -> None:
        last = len(self.segments) - 1 if last is None else last
        if not first <= index <= last:
            raise ClientError(f"no segment {index} to edit here (segments {first}..{last} can be)")

    def _check_label(self, label: str) -> None:
        if label not in self.classes:
            raise ClientError(f"{label!r} is not a phase of this timeline's prompt set ({', '.join(self.classes)})")

    def _snap(self, time: float) -> float:
        return float(self.times[int(np.argmin(np.abs(self.times - time)))])

    def _with(self, segments: list[Segment]) -> PhaseTimeline:
        """A new timeline with these segments (neighbours of equal label joined), the frame labels and
        confidences made to agree, every other field carried over."""
        joined: list[Segment] = []
        for segment in segments:
            if joined and joined[-1].label == segment.label:
                segment = Segment(segment.label, joined.pop().start, segment.end)
            joined.append(segment)
        document = copy.deepcopy(self._document)
        document["segments"] = []
        owners = _segment_indices(joined, self.times)
        for position, segment in enumerate(joined):
            item = {"label": segment.label, "start": segment.start, "end": segment.end}
            column = self.classes.index(segment.label)
            held = owners == position
            if held.any():
                item["mean_confidence"] = round(float(self.probabilities[held, column].mean()), _DECIMALS)
            document["segments"].append(item)
        if "label" in document["frames"]:
            document["frames"]["label"] = _frame_labels(joined, self.times, self.classes).tolist()
        return PhaseTimeline(document, self.origin)

    def _validate(self) -> None:
        origin = self.origin
        if not self.segments:
            raise ClientError(f"{origin}: the timeline has no segments")
        for segment in self.segments:
            if segment.label not in self.classes:
                raise ClientError(f"{origin}: segment label {segment.label!r} is not in the prompt set")
            if not segment.end > segment.start:
                raise ClientError(f"{origin}: segment {segment.label} ends ({segment.end}) before it starts")
        for before, after in zip(self.segments, self.segments[1:]):
            if abs(after.start - before.end) > _TOLERANCE:
                kind = "a gap" if after.start > before.end else "an overlap"
                raise ClientError(f"{origin}: {kind} between {before.label} (ends {before.end} s) and "
                                  f"{after.label} (starts {after.start} s)")
            if after.label == before.label:
                raise ClientError(f"{origin}: two neighbouring segments are both {after.label}; join them")
        if self.start > self.times[0] + _TOLERANCE or self.end < self.times[-1] + _TOLERANCE:
            raise ClientError(f"{origin}: the segments ({self.start}-{self.end} s) do not cover every frame "
                              f"({self.times[0]}-{self.times[-1]} s)")
        counts = np.histogram(self.times, bins=[s.start - _TOLERANCE for s in self.segments] + [self.end])[0]
        if np.any(counts == 0):
            empty = self.segments[int(np.argmin(counts))]
            raise ClientError(f"{origin}: segment {empty.label} ({empty.start}-{empty.end} s) holds no frame")


def _segment_indices(segments: tuple[Segment, ...] | list[Segment], times: np.ndarray) -> np.ndarray:
    """For each time, the index of the segment holding it (clamped to the first and last)."""
    starts = np.array([segment.start for segment in segments]) - _TOLERANCE
    return np.clip(np.searchsorted(starts, times, side="right") - 1, 0, len(segments) - 1)


def _frame_labels(segments: tuple[Segment, ...] | list[Segment], times: np.ndarray, classes: list[str]) -> np.ndarray:
    columns = np.array([classes.index(segment.label) for segment in segments], dtype=np.int64)
    return columns[_segment_indices(segments, times)]


@dataclass(frozen=True)
class ToolTimeline:
    """A tool presence document: each tool's intervals, for display (tools are not edited here)."""

    document: dict[str, Any]

    @classmethod
    def from_document(cls, data: bytes | str | dict, origin: str = "tool timeline") -> ToolTimeline:
        document = load_document(data, origin)
        if document.get("task") != "tool" or not isinstance(document.get("presence"), dict):
            raise ClientError(f"{origin}: not a tool presence timeline")
        _class_names(document, origin)
        return cls(document)

    @property
    def untrained(self) -> bool:
        return self.document.get("untrained", True) is not False

    @property
    def tools(self) -> list[str]:
        return _class_names(self.document, "tool timeline")

    def intervals(self, tool: str) -> list[Segment]:
        return [Segment(tool, float(item["start"]), float(item["end"]), item.get("mean_score"))
                for item in self.document["presence"].get(tool, [])]


class EditHistory:
    """The phase timeline being corrected and every state before it, so any edit can be undone."""

    def __init__(self, timeline: PhaseTimeline) -> None:
        self.current = timeline
        self._earlier: list[PhaseTimeline] = []
        self._saved = timeline

    def apply(self, edit: Callable[[PhaseTimeline], PhaseTimeline]) -> PhaseTimeline:
        """Run ``edit`` on the current timeline; an invalid edit raises and changes nothing."""
        edited = edit(self.current)
        self._earlier.append(self.current)
        self.current = edited
        return edited

    @property
    def can_undo(self) -> bool:
        return bool(self._earlier)

    def undo(self) -> PhaseTimeline:
        if not self._earlier:
            raise ClientError("nothing to undo")
        self.current = self._earlier.pop()
        return self.current

    @property
    def unsaved(self) -> bool:
        return self.current is not self._saved

    def mark_saved(self) -> None:
        self._saved = self.current
