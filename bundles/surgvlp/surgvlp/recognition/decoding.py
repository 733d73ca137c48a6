"""From frame and class embeddings to per-frame labels and segments: scoring and temporal decoding.

Everything here is numpy on small arrays (frames x classes), so that a cached video answers a new prompt
set or decoder without touching the model.

Decoders (all take per-frame class probabilities, shape (T, C)):

- ``argmax``: the label with the highest probability in each frame, frame by frame. With the default
  ``min_segment=0`` this is exactly the published zero-shot protocol.
- ``viterbi``: the most probable label sequence of a hidden Markov model over the whole video, with the
  frame probabilities as emission scores (a hybrid HMM: posteriors stand in for scaled likelihoods, the
  class prior being uniform) and the transition model of ``log_transition_matrix``.
- ``online``: causal forward filtering with the same transition model; the label of a frame depends only
  on that frame and earlier ones, so it can run live.

Minimum segment duration: for ``argmax`` and ``viterbi`` the shortest segment shorter than the minimum is
relabelled to the neighbouring segment whose class has the higher mean probability over the short
segment's frames (the earlier neighbour on a tie, the only neighbour at either end of the video); equal
neighbours fuse, and this repeats until every segment is long enough or one segment is left. ``online``
cannot see the next segment, so it debounces instead: its output switches to a new label only after the
filter has preferred that label for the minimum duration in a row, so output segments are at least that
long, except the one cut off by the end of the video.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from surgvlp.errors import SurgVLPError
from surgvlp.recognition.prompts import PromptSet

DECODERS = ("argmax", "viterbi", "online")
_PROBABILITY_FLOOR = 1e-12


@dataclass(frozen=True)
class Segment:
    """A run of frames with one label; ``end`` is where the next segment starts (seconds)."""

    label: int
    start: float
    end: float
    mean_confidence: float


@dataclass(frozen=True)
class DecoderSettings:
    """How frame probabilities become labels; stored in every timeline so a result can be reproduced.

    ``jump_probability`` is the per-frame weight of a transition the model does not expect (backwards or
    skipping a phase in an ordered set) before each row of the transition matrix is normalised;
    ``default_duration`` (seconds) stands in for classes without a typical duration.
    """

    method: str = "argmax"
    min_segment: float = 0.0
    jump_probability: float = 1e-4
    default_duration: float = 60.0

    def __post_init__(self) -> None:
        if self.method not in DECODERS:
            raise SurgVLPError(f"unknown decoder {self.method!r}; choose one of {', '.join(DECODERS)}")
        if not self.min_segment >= 0:
            raise SurgVLPError(f"minimum segment duration must be 0 or more seconds, got {self.min_segment}")
        if not 0 < self.jump_probability < 1:
            raise SurgVLPError(f"jump probability must lie between 0 and 1, got {self.jump_probability}")
        if not self.default_duration > 0:
            raise SurgVLPError(f"default phase duration must be positive, got {self.default_duration}")

    def to_dict(self) -> dict[str, float | str]:
        return asdict(self)


def minimum_frames(min_segment: float, fps: float) -> int:
    """Frames needed to last ``min_segment`` seconds at ``fps`` (at least one)."""
    return max(1, math.ceil(min_segment * fps - 1e-9))


def log_transition_matrix(
    n_classes: int,
    fps: float,
    typical_durations: Sequence[float | None] | None = None,
    order: Sequence[int] | None = None,
    jump_probability: float = 1e-4,
    default_duration: float = 60.0,
) -> np.ndarray:
    """(C, C) log probabilities of moving from class i (row) to class j (column) between two frames.

    A class with typical duration d seconds lasts on average d * fps frames, so it stays with probability
    1 - 1 / (d * fps) (a geometric duration with that mean). The rest goes to the next class in ``order``
    when one is given (a left-to-right model), otherwise is shared equally by the other classes. Every
    other transition gets ``jump_probability`` so that unexpected orders stay possible; each row is then
    normalised. The last class of an order has no successor, so it only leaves by such jumps.
    """
    if n_classes == 1:
        return np.zeros((1, 1))
    durations = [default_duration if d is None else d for d in (typical_durations or [None] * n_classes)]
    stay = np.array([1.0 - 1.0 / max(duration * fps, 1.0) for duration in durations])
    successor = {} if order is None else dict(zip(order[:-1], order[1:]))
    matrix = np.full((n_classes, n_classes), jump_probability)
    for row in range(n_classes):
        if order is None:
            matrix[row] += (1.0 - stay[row]) / (n_classes - 1)
        elif row in successor:
            matrix[row, successor[row]] += 1.0 - stay[row]
        matrix[row, row] = stay[row]
    matrix /= matrix.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore"):
        return np.log(matrix)


def _log_emissions(probabilities: np.ndarray) -> np.ndarray:
    return np.log(np.clip(probabilities, _PROBABILITY_FLOOR, None))


def _logsumexp(values: np.ndarray, axis: int) -> np.ndarray:
    peak = values.max(axis=axis, keepdims=True)
    return np.squeeze(peak, axis=axis) + np.log(np.exp(values - peak).sum(axis=axis))


def argmax(probabilities: np.ndarray) -> np.ndarray:
    """Per-frame argmax: the upstream protocol, no temporal model."""
    return np.asarray(probabilities).argmax(axis=1)


def viterbi(probabilities: np.ndarray, log_transition: np.ndarray) -> np.ndarray:
    """The most probable label path through the whole sequence, in log space, uniform start."""
    emissions = _log_emissions(np.asarray(probabilities, dtype=np.float64))
    frames, classes = emissions.shape
    backpointers = np.zeros((frames, classes), dtype=np.int64)
    score = emissions[0] - math.log(classes)
    for frame in range(1, frames):
        candidates = score[:, None] + log_transition  # [previous class, next class]
        backpointers[frame] = candidates.argmax(axis=0)
        score = candidates.max(axis=0) + emissions[frame]
    path = np.empty(frames, dtype=np.int64)
    path[-1] = score.argmax()
    for frame in range(frames - 1, 0, -1):
        path[frame - 1] = backpointers[frame, path[frame]]
    return path


class OnlineDecoder:
    """Causal forward filter for live video: feed one probability row per frame, get that frame's label.

    The belief over classes is the normalised forward variable of the HMM (prediction through the
    transition matrix, then update with the frame's probabilities); the raw label is its argmax. The
    output switches to a new raw label only after it has held for ``min_frames`` frames in a row.
    """

    def __init__(self, log_transition: np.ndarray, min_frames: int = 1) -> None:
        self._log_transition = np.asarray(log_transition, dtype=np.float64)
        self._min_frames = min_frames
        self._log_belief: np.ndarray | None = None
        self._label: int | None = None
        self._candidate: int | None = None
        self._candidate_frames = 0

    def update(self, probabilities: np.ndarray) -> int:
        evidence = _log_emissions(np.asarray(probabilities, dtype=np.float64))
        if self._log_belief is None:
            belief = evidence
        else:
            belief = _logsumexp(self._log_belief[:, None] + self._log_transition, axis=0) + evidence
        self._log_belief = belief - _logsumexp(belief, axis=0)
        return self._debounce(int(self._log_belief.argmax()))

    def _debounce(self, raw: int) -> int:
        if self._label is None or raw == self._label:
            self._label, self._candidate, self._candidate_frames = raw, None, 0
            return raw
        self._candidate_frames = self._candidate_frames + 1 if raw == self._candidate else 1
        self._candidate = raw
        if self._candidate_frames >= self._min_frames:
            self._label, self._candidate, self._candidate_frames = raw, None, 0
        return self._label


def online(probabilities: np.ndarray, log_transition: np.ndarray, min_frames: int = 1) -> np.ndarray:
    """``OnlineDecoder`` over a whole recording: frame t is labelled from frames 0..t only."""
    decoder = OnlineDecoder(log_transition, min_frames)
    return np.array([decoder.update(row) for row in np.asarray(probabilities)], dtype=np.int64)


def _runs(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start index and length of each run of equal labels."""
    starts = np.flatnonzero(np.r_[True, labels[1:] != labels[:-1]])
    return starts, np.diff(np.r_[starts, labels.size])


def merge_short_segments(labels: np.ndarray, probabilities: np.ndarray, min_frames: int) -> np.ndarray:
    """Relabel segments shorter than ``min_frames``, shortest (then earliest) first; see the module doc."""
    labels = np.asarray(labels, dtype=np.int64)
    if min_frames <= 1 or labels.size == 0:
        return labels.copy()
    starts, lengths = (list(map(int, values)) for values in _runs(labels))
    values = [int(labels[start]) for start in starts]
    count = len(starts)
    previous, following = list(range(-1, count - 1)), list(range(1, count + 1))
    following[-1] = -1
    alive = [True] * count
    totals = np.vstack([np.zeros(probabilities.shape[1]), np.cumsum(probabilities, axis=0)])
    queue = [(lengths[i], starts[i], i) for i in range(count) if lengths[i] < min_frames]
    heapq.heapify(queue)

    def unlink(index: int) -> None:
        alive[index] = False
        if previous[index] != -1:
            following[previous[index]] = following[index]
        if following[index] != -1:
            previous[following[index]] = previous[index]

    while queue:
        length, start, index = heapq.heappop(queue)
        if not alive[index] or (lengths[index], starts[index]) != (length, start):
            continue  # superseded by a later merge
        neighbours = [n for n in (previous[index], following[index]) if n != -1]
        if not neighbours:
            break
        mass = totals[start + length] - totals[start]
        values[index] = values[max(neighbours, key=lambda n: mass[values[n]])]
        for neighbour in neighbours:
            if values[neighbour] == values[index]:
                starts[index] = min(starts[index], starts[neighbour])
                lengths[index] += lengths[neighbour]
                unlink(neighbour)
        if lengths[index] < min_frames:
            heapq.heappush(queue, (lengths[index], starts[index], index))
    merged = np.empty_like(labels)
    for index in range(count):
        if alive[index]:
            merged[starts[index] : starts[index] + lengths[index]] = values[index]
    return merged


def decode(
    probabilities: np.ndarray, fps: float, settings: DecoderSettings, prompt_set: PromptSet | None = None
) -> np.ndarray:
    """Per-frame class indices for (T, C) probabilities sampled at ``fps``.

    The prompt set supplies the expected order and typical durations of the HMM decoders; without one
    the classes are unordered and all last ``settings.default_duration``.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.ndim != 2 or probabilities.shape[0] == 0:
        raise ValueError(f"expected (frames, classes) probabilities, got shape {probabilities.shape}")
    min_frames = minimum_frames(settings.min_segment, fps)
    if settings.method == "argmax":
        return merge_short_segments(argmax(probabilities), probabilities, min_frames)
    log_transition = log_transition_matrix(
        probabilities.shape[1],
        fps,
        typical_durations=None if prompt_set is None else prompt_set.typical_durations(),
        order=None if prompt_set is None else prompt_set.expected_order(),
        jump_probability=settings.jump_probability,
        default_duration=settings.default_duration,
    )
    if settings.method == "viterbi":
        return merge_short_segments(viterbi(probabilities, log_transition), probabilities, min_frames)
    return online(probabilities, log_transition, min_frames)


def frame_interval(times: np.ndarray) -> float:
    """The usual spacing of sample times (their median step); 0 for a single frame."""
    return float(np.median(np.diff(times))) if len(times) > 1 else 0.0


def segments(
    labels: np.ndarray, times: np.ndarray, probabilities: np.ndarray, end: float | None = None
) -> list[Segment]:
    """Runs of equal labels as time spans with the mean probability of their label.

    A segment ends where the next one starts; the last ends at ``end`` (default: one frame interval
    after the last sample time).
    """
    labels = np.asarray(labels)
    times = np.asarray(times, dtype=np.float64)
    if labels.size == 0:
        return []
    final = times[-1] + frame_interval(times) if end is None else end
    starts, lengths = _runs(labels)
    stops = starts + lengths
    return [
        Segment(
            label=int(labels[start]),
            start=float(times[start]),
            end=float(times[stop]) if stop < labels.size else float(final),
            mean_confidence=float(np.mean(probabilities[start:stop, labels[start]])),
        )
        for start, stop in zip(starts, stops)
    ]


def presence_intervals(
    scores: np.ndarray,
    times: np.ndarray,
    threshold: float,
    fps: float,
    min_segment: float = 0.0,
    end: float | None = None,
) -> list[Segment]:
    """Where each tool's score reaches ``threshold``: one ``Segment`` per interval, ``label`` = tool index.

    ``min_segment`` acts per tool as for phases: a short gap inside a presence, or a short blip of
    presence, is merged into its neighbours.
    """
    scores = np.asarray(scores, dtype=np.float64)
    min_frames = minimum_frames(min_segment, fps)
    intervals = []
    for tool in range(scores.shape[1]):
        absent_present = np.stack([1.0 - scores[:, tool], scores[:, tool]], axis=1)
        present = merge_short_segments((scores[:, tool] >= threshold).astype(np.int64), absent_present, min_frames)
        intervals += [
            Segment(tool, run.start, run.end, run.mean_confidence)
            for run in segments(present, times, absent_present, end)
            if run.label == 1
        ]
    return intervals
