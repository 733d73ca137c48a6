"""The scene the module builds, with Slicer's real MRML classes (slicer-core): the frame sequence and its
browser, the timeline table and chart, the segmentation sequence and what is saved from it after an edit."""

from __future__ import annotations

import numpy as np
import pytest

from SlicerSurgVLPLib import scene as mrml
from SlicerSurgVLPLib.colours import class_colours
from SlicerSurgVLPLib.errors import ClientError
from SlicerSurgVLPLib.segmentations import SegmentInfo, Segmentation
from SlicerSurgVLPLib.timeline import PhaseTimeline, ToolTimeline
from SlicerSurgVLPLib.volumes import FrameVolume, Geometry

TIMES = np.arange(8, dtype=np.float64)


def _volume():
    frames = np.random.default_rng(3).integers(0, 256, (8, 6, 10, 3), dtype=np.uint8)
    return FrameVolume(frames, Geometry(np.zeros(3), np.diag([2.0, 2.0, 1.0])))


def test_frames_become_a_played_sequence_of_rgb_volumes(mrml_scene):
    import slicer

    scene, sequences = mrml_scene
    volume = _volume()
    nodes = mrml.add_frame_sequence(scene, volume, TIMES, "case.mp4", sequences_logic=sequences)
    assert nodes.sequence.GetNumberOfDataNodes() == 8
    assert nodes.sequence.GetIndexName() == "time" and nodes.sequence.GetIndexUnit() == "s"
    assert nodes.browser.GetPlaybackRateFps() == pytest.approx(1.0)
    for item in (0, 5):
        frame = nodes.sequence.GetNthDataNode(item)
        assert frame.IsA("vtkMRMLVectorVolumeNode")
        image = frame.GetImageData()
        assert image.GetDimensions() == (10, 6, 1) and image.GetNumberOfScalarComponents() == 3
        from vtk.util import numpy_support

        pixels = numpy_support.vtk_to_numpy(image.GetPointData().GetScalars()).reshape(6, 10, 3)
        np.testing.assert_array_equal(pixels, volume.frames[item])
        matrix = np.array([[frame_matrix(frame).GetElement(row, column) for column in range(4)] for row in range(4)])
        np.testing.assert_allclose(matrix, volume.geometry.ijk_to_ras())
    nodes.browser.SetSelectedItemNumber(5)
    sequences.UpdateProxyNodesFromSequences(nodes.browser)
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(nodes.proxy)[0], volume.frames[5])
    assert mrml.select_time(nodes, 2.4) == 2 and mrml.selected_time(nodes) == 2.0


def frame_matrix(frame):
    import vtk

    matrix = vtk.vtkMatrix4x4()
    frame.GetIJKToRASMatrix(matrix)
    return matrix


def test_times_must_match_the_frames(mrml_scene):
    scene, _ = mrml_scene
    with pytest.raises(ClientError, match="7 frame times for 8 frames"):
        mrml.add_frame_sequence(scene, _volume(), TIMES[:7], "case.mp4")


def _column(table, name):
    import slicer

    return slicer.util.arrayFromTableColumn(table, name)


def test_a_timeline_becomes_a_table_and_a_chart_with_band_and_tools(mrml_scene, phase_document, tool_document):
    scene, _ = mrml_scene
    timeline, tools = PhaseTimeline(phase_document), ToolTimeline.from_document(tool_document)
    nodes = mrml.add_timeline_nodes(scene, timeline, "case.mp4", tools)
    np.testing.assert_array_equal(_column(nodes.table, "time"), TIMES)
    probabilities = np.asarray(phase_document["frames"]["probabilities"])
    for index, name in enumerate(timeline.classes):
        np.testing.assert_allclose(_column(nodes.table, name), probabilities[:, index])
    band = _column(nodes.table, "phase: GallbladderPackaging")
    assert list(np.isfinite(band)) == [False, False, True, True, False, False, False, False]
    grasper = _column(nodes.table, "tool: Grasper")
    present = [any(item["start"] <= time < item["end"] for item in tool_document["presence"]["Grasper"])
               for time in TIMES]
    assert list(np.isfinite(grasper)) == present
    assert nodes.chart.GetNumberOfPlotSeriesNodes() == 2 * len(timeline.classes) + len(tools.tools)
    first = nodes.chart.GetNthPlotSeriesNode(0)
    assert first.GetYColumnName() == timeline.classes[0] and first.GetXColumnName() == "time"
    assert first.GetColor() == pytest.approx(class_colours(7)[0])
    assert "UNTRAINED" in nodes.chart.GetTitle()

    edited = timeline.relabel(2, "Preparation")
    mrml.update_timeline_nodes(scene, nodes, edited, tools)
    assert list(np.isfinite(_column(nodes.table, "phase: GallbladderPackaging"))) == [False] * 8
    assert nodes.chart.GetNumberOfPlotSeriesNodes() == 2 * len(timeline.classes) + len(tools.tools)
    assert scene.GetNumberOfNodesByClass("vtkMRMLPlotSeriesNode") == nodes.chart.GetNumberOfPlotSeriesNodes()


def _segmentation():
    mask = np.zeros((8, 6, 10), dtype=bool)
    mask[:, 1:4, 2:7] = True
    mask[6:] = False  # absent from the last frames
    return Segmentation.from_masks([(SegmentInfo("gb", "gallbladder", (0.2, 0.8, 0.2)), mask)],
                                   Geometry(np.zeros(3), np.diag([2.0, 2.0, 1.0])))


def test_a_segmentation_is_a_sequence_in_the_frames_browser_and_edits_are_saved(mrml_scene):
    import slicer

    scene, sequences = mrml_scene
    frames = mrml.add_frame_sequence(scene, _volume(), TIMES, "case.mp4", sequences_logic=sequences)
    original = _segmentation()
    sequence = mrml.add_segmentation_sequence(scene, original, frames, "case.mp4", sequences_logic=sequences)
    assert sequence.GetNumberOfDataNodes() == 8
    assert frames.browser.GetSaveChanges(sequence)
    proxy = frames.browser.GetProxyNode(sequence)
    assert proxy.IsA("vtkMRMLSegmentationNode")
    assert proxy.GetSegmentation().GetSegment("gb").GetName() == "gallbladder"

    saved = mrml.segmentation_from_sequence(sequence, (8, 6, 10), original.geometry)
    np.testing.assert_array_equal(saved.mask(saved.segments[0]), original.mask(original.segments[0]))

    # A correction on frame 3, made on the proxy as the Segment Editor makes it, then saved
    frames.browser.SetSelectedItemNumber(3)
    sequences.UpdateProxyNodesFromSequences(frames.browser)
    corrected = np.zeros((1, 6, 10), dtype=np.uint8)
    corrected[0, 0:2, 0:3] = 1
    _paint(proxy, "gb", corrected, original.geometry)
    sequences.UpdateSequencesFromProxyNodes(frames.browser, proxy)
    after = mrml.segmentation_from_sequence(sequence, (8, 6, 10), original.geometry)
    expected = original.mask(original.segments[0]).copy()
    expected[3] = corrected[0].astype(bool)
    np.testing.assert_array_equal(after.mask(after.segments[0]), expected)
    assert after.segments[0].name == "gallbladder"
    assert Segmentation.from_nrrd(after.to_nrrd()).layers.shape == (1, 8, 6, 10)


def _paint(node, segment_id, mask, geometry):
    """Replace a segment's labelmap, the way an editor effect does (through the segmentation's own API)."""
    import slicer
    import vtk
    from vtk.util import numpy_support

    labelmap = slicer.vtkOrientedImageData()
    labelmap.SetDimensions(mask.shape[2], mask.shape[1], 1)
    labelmap.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, 1)
    numpy_support.vtk_to_numpy(labelmap.GetPointData().GetScalars())[:] = mask.reshape(-1)
    matrix = vtk.vtkMatrix4x4()
    for row in range(4):
        for column in range(4):
            matrix.SetElement(row, column, geometry.ijk_to_ras()[row, column])
    labelmap.SetImageToWorldMatrix(matrix)
    slicer.vtkSlicerSegmentationsModuleLogic.SetBinaryLabelmapToSegment(
        labelmap, node, segment_id, slicer.vtkSlicerSegmentationsModuleLogic.MODE_REPLACE)


def test_a_segmentation_of_another_length_is_refused(mrml_scene):
    scene, sequences = mrml_scene
    frames = mrml.add_frame_sequence(scene, _volume(), TIMES, "case.mp4", sequences_logic=sequences)
    short = Segmentation(_segmentation().layers[:, :5], _segmentation().segments)
    with pytest.raises(ClientError, match="5 frames, the video 8"):
        mrml.add_segmentation_sequence(scene, short, frames, "case.mp4")
