"""Scoring and temporal decoding: the upstream rule, HMM decoders on known segments, minimum durations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from surgvlp.recognition.decoding import (
    DecoderSettings,
    OnlineDecoder,
    Segment,
    decode,
    log_transition_matrix,
    merge_short_segments,
    online,
    presence_intervals,
    segments,
    viterbi,
)
from surgvlp.recognition.scoring import phase_probabilities, tool_scores
from surgvlp.errors import SurgVLPError
from surgvlp.recognition.prompts import PromptClass, PromptSet

TRUE_LENGTHS = [40, 70, 25, 60]


def _noisy_probabilities(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities over 4 classes where the true class is only slightly favoured: argmax flickers."""
    truth = np.repeat(np.arange(4), TRUE_LENGTHS)
    rng = np.random.default_rng(seed)
    scores = rng.uniform(0.0, 1.0, (truth.size, 4))
    scores[np.arange(truth.size), truth] += 0.45
    return truth, scores / scores.sum(axis=1, keepdims=True)


def _runs(labels: np.ndarray) -> list[tuple[int, int]]:
    """(label, length) of each run."""
    return [(segment.label, round(segment.end - segment.start)) for segment in
            segments(labels, np.arange(labels.size, dtype=float), np.ones((labels.size, labels.max() + 1)))]


ORDERED = PromptSet("four", "phase", [PromptClass(str(i), (f"phase {i}",), 50.0) for i in range(4)], ordered=True)


def test_argmax_is_the_upstream_zero_shot_rule() -> None:
    rng = np.random.default_rng(1)
    images = rng.normal(size=(64, 768)).astype(np.float32) * rng.uniform(0.5, 20, (64, 1)).astype(np.float32)
    texts = rng.normal(size=(7, 768)).astype(np.float32)
    # the public SurgVLP evaluation, in torch: normalise both, softmax(100 * img @ text.T), argmax
    image_t = torch.nn.functional.normalize(torch.from_numpy(images), dim=-1)
    text_t = torch.nn.functional.normalize(torch.from_numpy(texts), dim=-1)
    upstream = (100.0 * image_t @ text_t.T).softmax(dim=-1)
    probabilities = phase_probabilities(images, texts)
    np.testing.assert_allclose(probabilities, upstream.numpy(), atol=1e-5)
    labels = decode(probabilities, fps=1.0, settings=DecoderSettings("argmax"))
    np.testing.assert_array_equal(labels, upstream.argmax(dim=-1).numpy())


def test_viterbi_recovers_known_segments_where_argmax_flickers() -> None:
    truth, probabilities = _noisy_probabilities()
    flicker = decode(probabilities, 1.0, DecoderSettings("argmax"))
    assert np.mean(flicker == truth) < 0.9 and len(_runs(flicker)) > 20
    labels = decode(probabilities, 1.0, DecoderSettings("viterbi"), ORDERED)
    assert [label for label, _ in _runs(labels)] == [0, 1, 2, 3]
    assert np.abs(np.cumsum([length for _, length in _runs(labels)]) - np.cumsum(TRUE_LENGTHS)).max() <= 2


def test_online_recovers_segments_with_a_short_lag() -> None:
    truth, probabilities = _noisy_probabilities()
    labels = decode(probabilities, 1.0, DecoderSettings("online"), ORDERED)
    assert [label for label, _ in _runs(labels)] == [0, 1, 2, 3]
    assert np.mean(labels == truth) > 0.9


def test_online_never_looks_ahead() -> None:
    _, probabilities = _noisy_probabilities()
    log_transition = log_transition_matrix(4, 1.0, order=[0, 1, 2, 3])
    before = online(probabilities, log_transition, min_frames=5)
    changed = probabilities.copy()
    changed[100:] = np.roll(changed[100:], 1, axis=1)
    after = online(changed, log_transition, min_frames=5)
    np.testing.assert_array_equal(before[:100], after[:100])
    assert not np.array_equal(before[100:], after[100:])
    decoder = OnlineDecoder(log_transition, min_frames=5)
    np.testing.assert_array_equal([decoder.update(row) for row in probabilities], before)


def test_transition_matrix_matches_hand_computation() -> None:
    matrix = np.exp(log_transition_matrix(3, 2.0, [10.0, 2.0, None], order=[0, 1, 2],
                                          jump_probability=0.01, default_duration=5.0))
    # row 0: stays 1 - 1/20, moves on 1/20 (+ jump), jumps 0.01; rows normalised
    expected = np.array([
        [0.95, 0.05 + 0.01, 0.01],
        [0.01, 0.75, 0.25 + 0.01],
        [0.01, 0.01, 0.9],  # the last phase has no successor: it leaves only by jumps
    ])
    np.testing.assert_allclose(matrix, expected / expected.sum(axis=1, keepdims=True))
    unordered = np.exp(log_transition_matrix(3, 1.0, [4.0, 4.0, 4.0], jump_probability=0.01))
    np.testing.assert_allclose(unordered[0], np.array([0.75, 0.135, 0.135]) / 1.02)
    np.testing.assert_array_equal(log_transition_matrix(1, 1.0), [[0.0]])


def test_ordered_prior_prefers_the_next_phase() -> None:
    # after phase 0, frames equally like phases 1 and 2: an ordered set goes to 1, an unordered one cannot tell
    probabilities = np.array([[0.9, 0.05, 0.05]] * 5 + [[0.02, 0.49, 0.49]] * 5)
    ordered = PromptSet("s", "phase", [PromptClass(c, (c,)) for c in "abc"], ordered=True, order=("a", "b", "c"))
    reversed_order = PromptSet("s", "phase", ordered.classes, ordered=True, order=("a", "c", "b"))
    assert list(decode(probabilities, 1.0, DecoderSettings("viterbi"), ordered)[5:]) == [1] * 5
    assert list(decode(probabilities, 1.0, DecoderSettings("viterbi"), reversed_order)[5:]) == [2] * 5


def test_viterbi_is_exact_on_a_tiny_case() -> None:
    # two frames, two classes: brute force over the four paths
    probabilities = np.array([[0.6, 0.4], [0.3, 0.7]])
    log_transition = np.log(np.array([[0.9, 0.1], [0.2, 0.8]]))
    paths = [(a, b) for a in range(2) for b in range(2)]
    best = max(paths, key=lambda p: np.log(probabilities[0, p[0]] * probabilities[1, p[1]]) + log_transition[p])
    assert tuple(viterbi(probabilities, log_transition)) == best == (1, 1)  # frame 0 alone would say 0


def test_short_segments_merge_into_the_likelier_neighbour() -> None:
    labels = np.array([0, 0, 0, 1, 2, 2, 3, 3, 3, 3])
    probabilities = np.full((10, 4), 0.1)
    probabilities[3, 2] = 0.5  # the lone 1 looks more like its right neighbour 2
    # shortest first: the 1 joins the 2s (now 3 long, enough), nothing else is short
    np.testing.assert_array_equal(merge_short_segments(labels, probabilities, 3), [0, 0, 0, 2, 2, 2, 3, 3, 3, 3])
    probabilities[3, 0] = 0.9
    # now the 1 joins the 0s, which leaves the two 2s short; flat probabilities there: a tie goes left
    np.testing.assert_array_equal(merge_short_segments(labels, probabilities, 3), [0, 0, 0, 0, 0, 0, 3, 3, 3, 3])


def test_merge_fuses_equal_neighbours_and_ties_go_left() -> None:
    flat = np.full((9, 3), 1 / 3)
    np.testing.assert_array_equal(merge_short_segments(np.array([0, 0, 0, 1, 0, 0, 2, 2, 2]), flat, 3),
                                  [0, 0, 0, 0, 0, 0, 2, 2, 2])
    np.testing.assert_array_equal(merge_short_segments(np.array([0, 0, 0, 1, 2, 2, 2, 2, 2]), flat, 3),
                                  [0, 0, 0, 0, 2, 2, 2, 2, 2])
    np.testing.assert_array_equal(merge_short_segments(np.array([1, 0, 0]), flat[:3], 5), [0, 0, 0])


@pytest.mark.parametrize("method", ["argmax", "viterbi"])
def test_minimum_duration_holds_for_offline_decoders(method: str) -> None:
    _, probabilities = _noisy_probabilities(seed=3)
    labels = decode(probabilities, 2.0, DecoderSettings(method, min_segment=4.0, jump_probability=0.2), ORDERED)
    assert min(length for _, length in _runs(labels)) >= 8  # 4 s at 2 fps


def test_online_debounces_to_the_minimum_duration() -> None:
    raw = [0, 0, 1, 1, 0, 0, 0, 2, 2, 2, 2]
    probabilities = np.eye(3)[raw] * 0.98 + 0.01
    uniform = np.log(np.full((3, 3), 1 / 3))
    assert list(online(probabilities, uniform, min_frames=1)) == raw
    assert list(online(probabilities, uniform, min_frames=3)) == [0] * 9 + [2] * 2


def test_segments_span_until_the_next_start() -> None:
    probabilities = np.array([[0.2, 0.8], [0.4, 0.6], [0.7, 0.3], [0.9, 0.1], [0.5, 0.5]])
    times = np.array([0.0, 0.5, 1.0, 1.5, 2.0])
    assert segments(np.array([1, 1, 0, 0, 0]), times, probabilities) == [
        Segment(1, 0.0, 1.0, pytest.approx(0.7)),
        Segment(0, 1.0, 2.5, pytest.approx(0.7)),
    ]
    assert segments(np.array([1, 1, 0, 0, 0]), times, probabilities, end=3.0)[-1].end == 3.0


def test_tool_scores_are_sigmoids_of_scaled_cosines() -> None:
    images = np.array([[1.0, 0.0], [1.0, 1.0]])
    tools = np.array([[1.0, 0.0], [0.0, 1.0]])
    cosines = np.array([[1.0, 0.0], [2 ** -0.5, 2 ** -0.5]])
    np.testing.assert_allclose(tool_scores(images, tools, scale=10.0, offset=0.2),
                               1 / (1 + np.exp(-10.0 * (cosines - 0.2))))
    centred = tool_scores(images, tools, scale=10.0)
    np.testing.assert_allclose(centred[1], [0.5, 0.5])  # equally close to both: the frame mean
    np.testing.assert_allclose(centred[0], 1 / (1 + np.exp(-10.0 * np.array([0.5, -0.5]))))


def test_presence_intervals_per_tool() -> None:
    scores = np.array([
        [0.9, 0.1], [0.8, 0.1], [0.2, 0.6], [0.7, 0.7], [0.9, 0.2], [0.1, 0.2],
    ])
    times = np.arange(6, dtype=float)
    assert presence_intervals(scores, times, 0.5, fps=1.0) == [
        Segment(0, 0.0, 2.0, pytest.approx(0.85)),
        Segment(0, 3.0, 5.0, pytest.approx(0.8)),
        Segment(1, 2.0, 4.0, pytest.approx(0.65)),
    ]
    # a 2 s minimum closes tool 0's one-frame gap and absorbs its one-frame absence at the end;
    # tool 1's two-frame presence is long enough and stays
    merged = presence_intervals(scores, times, 0.5, fps=1.0, min_segment=2.0)
    assert [(s.label, s.start, s.end) for s in merged] == [(0, 0.0, 6.0), (1, 2.0, 4.0)]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"method": "hmm"}, "unknown decoder 'hmm'"),
        ({"min_segment": -1.0}, "minimum segment duration"),
        ({"jump_probability": 0.0}, "jump probability"),
        ({"default_duration": 0.0}, "default phase duration"),
    ],
)
def test_bad_decoder_settings(arguments: dict, message: str) -> None:
    with pytest.raises(SurgVLPError, match=message):
        DecoderSettings(**arguments)
