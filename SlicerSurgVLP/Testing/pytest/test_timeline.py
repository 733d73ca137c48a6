"""Timeline documents written by the real ``surgvlp`` writer: reading, the four edits, validation, round trips."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from SlicerSurgVLPLib.errors import ClientError
from SlicerSurgVLPLib.timeline import EditHistory, PhaseTimeline, ToolTimeline

# The fixture's decoded segments (surgvlp phases, untrained-tiny, argmax, 8 frames at 1 fps)
SEGMENTS = [("GallbladderRetraction", 0.0, 1.0), ("CleaningCoagulation", 1.0, 2.0), ("GallbladderPackaging", 2.0, 4.0),
            ("GallbladderDissection", 4.0, 5.0), ("CleaningCoagulation", 5.0, 6.0), ("Preparation", 6.0, 8.0)]


def _spans(timeline):
    return [(segment.label, segment.start, segment.end) for segment in timeline.segments]


def _consistent(timeline):
    """Frame labels, segments and confidences agree, as the writer makes them."""
    document = timeline.to_document()
    labels = np.asarray(document["frames"]["label"])
    probabilities = np.asarray(document["frames"]["probabilities"])
    times = np.asarray(document["frames"]["time"])
    for item in document["segments"]:
        held = (times >= item["start"]) & (times < item["end"])
        column = timeline.classes.index(item["label"])
        assert np.all(labels[held] == column)
        assert item["mean_confidence"] == pytest.approx(probabilities[held, column].mean(), abs=1e-6)


def test_a_written_timeline_reads_and_round_trips_unchanged(phase_document):
    timeline = PhaseTimeline(phase_document)
    assert _spans(timeline) == SEGMENTS
    assert timeline.untrained is True
    assert timeline.to_document() == phase_document
    assert json.loads(timeline.to_json()) == phase_document
    assert timeline.label_at(2.5) == "GallbladderPackaging" and timeline.label_at(100) == "Preparation"
    _consistent(timeline)


def test_move_a_boundary(phase_document):
    edited = PhaseTimeline(phase_document).move_boundary(3, 3.2)  # snaps to the frame at 3 s
    assert _spans(edited)[2:4] == [("GallbladderPackaging", 2.0, 3.0), ("GallbladderDissection", 3.0, 5.0)]
    _consistent(edited)


def test_split_then_relabel_then_merge(phase_document):
    timeline = PhaseTimeline(phase_document)
    split = timeline.split(7.0, "GallbladderRetraction")
    assert _spans(split)[-2:] == [("Preparation", 6.0, 7.0), ("GallbladderRetraction", 7.0, 8.0)]
    relabelled = split.relabel(0, "Preparation")
    assert _spans(relabelled)[0] == ("Preparation", 0.0, 1.0)
    merged = relabelled.merge(1)  # CleaningCoagulation swallows GallbladderPackaging
    assert _spans(merged)[1] == ("CleaningCoagulation", 1.0, 4.0)
    for edited in (split, relabelled, merged):
        _consistent(edited)
    assert _spans(timeline) == SEGMENTS  # edits never change the timeline they start from


def test_a_relabel_that_matches_a_neighbour_joins_them(phase_document):
    edited = PhaseTimeline(phase_document).relabel(3, "CleaningCoagulation")
    assert _spans(edited)[2:] == [("GallbladderPackaging", 2.0, 4.0), ("CleaningCoagulation", 4.0, 6.0),
                                  ("Preparation", 6.0, 8.0)]
    _consistent(edited)


def test_an_edited_document_keeps_every_other_field(phase_document):
    phase_document["hospital_note"] = {"reviewed_by": "Dr. A"}  # an unknown field
    edited = PhaseTimeline(phase_document).relabel(0, "Preparation").move_boundary(2, 3.0)
    document = edited.to_document()
    for key in phase_document:
        if key not in ("segments", "frames"):
            assert document[key] == phase_document[key], key
    assert document["frames"]["probabilities"] == phase_document["frames"]["probabilities"]
    assert document["frames"]["time"] == phase_document["frames"]["time"]


@pytest.mark.parametrize("edit, message", [
    (lambda timeline: timeline.move_boundary(0, 1.0), "no segment 0"),
    (lambda timeline: timeline.move_boundary(3, 5.0), "must stay between"),
    (lambda timeline: timeline.split(4.0, "Preparation"), "both parts need a frame"),
    (lambda timeline: timeline.split(3.0, "GallbladderPackaging"), "already GallbladderPackaging"),
    (lambda timeline: timeline.relabel(0, "Lunch"), "'Lunch' is not a phase"),
    (lambda timeline: timeline.merge(5), "no segment 5"),
    (lambda timeline: timeline.relabel(-1, "Preparation"), "no segment -1"),
])
def test_an_invalid_edit_is_refused_in_one_line(phase_document, edit, message):
    with pytest.raises(ClientError, match=message) as caught:
        edit(PhaseTimeline(phase_document))
    assert "\n" not in str(caught.value)


def _damaged(document, change):
    document = copy.deepcopy(document)
    change(document)
    return document


@pytest.mark.parametrize("change, message", [
    (lambda d: d["segments"][1].update(start=1.5), "a gap"),
    (lambda d: d["segments"][1].update(start=0.5), "an overlap"),
    (lambda d: d["segments"][0].update(label="Lunch"), "'Lunch' is not in the prompt set"),
    (lambda d: d["segments"][-1].update(end=6.5), "do not cover every frame"),
    (lambda d: d["segments"][2].update(label="CleaningCoagulation"), "both CleaningCoagulation"),
    (lambda d: d.update(schema="surgvlp.timeline/9"), "not supported"),
    (lambda d: d.pop("schema"), "not a surgvlp timeline"),
    (lambda d: d.update(task="tool"), "not a phase timeline"),
    (lambda d: d["frames"]["probabilities"].pop(), "expected \\(8, 7\\)"),
    (lambda d: d["segments"].clear(), "no segments"),
])
def test_a_damaged_document_is_refused(phase_document, change, message):
    with pytest.raises(ClientError, match=message):
        PhaseTimeline(_damaged(phase_document, change))


def test_a_missing_untrained_flag_counts_as_untrained(phase_document):
    phase_document.pop("untrained")
    assert PhaseTimeline(phase_document).untrained is True
    phase_document["untrained"] = False
    assert PhaseTimeline(phase_document).untrained is False


def test_edit_history_undoes_and_knows_what_is_saved(phase_document):
    history = EditHistory(PhaseTimeline(phase_document))
    assert not history.can_undo and not history.unsaved
    history.apply(lambda timeline: timeline.relabel(0, "Preparation"))
    with pytest.raises(ClientError):
        history.apply(lambda timeline: timeline.relabel(0, "Lunch"))
    assert _spans(history.current)[0][0] == "Preparation" and history.unsaved
    history.mark_saved()
    assert not history.unsaved
    assert _spans(history.undo()) == SEGMENTS
    with pytest.raises(ClientError, match="nothing to undo"):
        history.undo()


def test_tool_presence_intervals(tool_document):
    tools = ToolTimeline.from_document(tool_document)
    assert tools.untrained and tools.tools[0] == "Grasper"
    expected = tool_document["presence"]["Grasper"]
    assert [(interval.start, interval.end) for interval in tools.intervals("Grasper")] == \
        [(item["start"], item["end"]) for item in expected]
    with pytest.raises(ClientError, match="not a tool presence timeline"):
        ToolTimeline.from_document(json.dumps({**tool_document, "task": "phase"}))
