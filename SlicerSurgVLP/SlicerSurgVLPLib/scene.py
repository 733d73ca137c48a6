"""The MRML nodes the module shows: the frame sequence, the timeline's table and plot, the segmentation.

This is the one module of the library that imports ``slicer`` and ``vtk``: it turns the library's arrays
and timelines into nodes of a given scene, so it is tested against real MRML classes (the ``slicer-core``
package) with a plain ``vtkMRMLScene``, and Slicer passes ``slicer.mrmlScene``. It never touches Qt.

Layout of what it builds:

- frames: a sequence node of (1, H, W, 3) RGB vector volumes indexed by time in seconds, and a sequence
  browser that plays it at the sampled rate; the browser's proxy volume is what the views show. Every
  frame lies where the first one does, so the views stay put while the video plays.
- segmentation: a sequence of segmentation nodes (one per frame, the same segments in each) synchronised
  in the same browser with "save changes" on, so the Segment Editor edits the current frame's masks and
  the edits stay in the sequence.
- timeline: a table (time, one probability column per class, one band column per class and one per
  tool) and a plot chart with the probability curves, the decoded phases as a coloured band under them
  and the tools' presence as rows of bars under the band.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import slicer
import vtk
from vtk.util import numpy_support

from .colours import class_colours
from .errors import ClientError
from .segmentations import SegmentInfo, Segmentation
from .timeline import PhaseTimeline, ToolTimeline
from .volumes import FrameVolume, Geometry

_BAND_LEVEL = -0.06  # where the phase band is drawn, under the probability curves (0..1)
_TOOL_LEVEL = -0.14  # the first tool row; the next ones go further down
_ROW_STEP = 0.06
_BINARY_LABELMAP = "Binary labelmap"


@dataclass
class FrameNodes:
    sequence: object
    browser: object

    @property
    def proxy(self):
        return self.browser.GetProxyNode(self.sequence)


@dataclass
class TimelineNodes:
    table: object
    chart: object
    series: list


def index_value(time: float) -> str:
    """A sequence index value for a frame time (enough digits that no two sampled frames share one)."""
    return f"{time:.6f}".rstrip("0").rstrip(".")


def _matrix(array: np.ndarray):
    matrix = vtk.vtkMatrix4x4()
    for row in range(4):
        for column in range(4):
            matrix.SetElement(row, column, float(array[row, column]))
    return matrix


def _image(pixels: np.ndarray, image=None):
    """A vtkImageData (or ``image``, e.g. a vtkOrientedImageData) holding one frame: (H, W) or (H, W, C)."""
    image = image if image is not None else vtk.vtkImageData()
    rows, columns = pixels.shape[:2]
    components = pixels.shape[2] if pixels.ndim == 3 else 1
    image.SetDimensions(columns, rows, 1)
    image.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, components)
    scalars = numpy_support.vtk_to_numpy(image.GetPointData().GetScalars())
    scalars[:] = pixels.reshape(scalars.shape)
    return image


def add_frame_sequence(scene, volume: FrameVolume, times: np.ndarray, name: str, fps: float | None = None,
                       sequences_logic=None) -> FrameNodes:
    """The frames as a time-indexed sequence of RGB volumes and a browser playing it at ``fps``."""
    times = np.asarray(times, dtype=np.float64)
    if times.shape != (volume.count,):
        raise ClientError(f"{times.size} frame times for {volume.count} frames")
    sequence = scene.AddNewNodeByClass("vtkMRMLSequenceNode", f"{name} frames")
    sequence.SetIndexName("time")
    sequence.SetIndexUnit("s")
    sequence.SetIndexType(sequence.NumericIndex)
    frame = slicer.vtkMRMLVectorVolumeNode()
    frame.SetIJKToRASMatrix(_matrix(volume.geometry.ijk_to_ras()))
    for index, time in enumerate(times):
        frame.SetAndObserveImageData(_image(volume.frames[index]))
        sequence.SetDataNodeAtValue(frame, index_value(time))
    browser = scene.AddNewNodeByClass("vtkMRMLSequenceBrowserNode", f"{name} browser")
    browser.SetAndObserveMasterSequenceNodeID(sequence.GetID())
    browser.SetPlaybackLooped(False)
    if fps is None and times.size > 1:
        fps = 1.0 / float(np.median(np.diff(times)))
    browser.SetPlaybackRateFps(float(fps or 1.0))
    if sequences_logic is not None:
        sequences_logic.UpdateProxyNodesFromSequences(browser)
    return FrameNodes(sequence, browser)


def selected_time(frames: FrameNodes) -> float:
    item = max(0, frames.browser.GetSelectedItemNumber())
    return float(frames.sequence.GetNthIndexValue(item))


def select_time(frames: FrameNodes, time: float) -> int:
    """Show the frame nearest to ``time``; returns its item number."""
    count = frames.sequence.GetNumberOfDataNodes()
    times = np.array([float(frames.sequence.GetNthIndexValue(item)) for item in range(count)])
    item = int(np.argmin(np.abs(times - time)))
    frames.browser.SetSelectedItemNumber(item)
    return item


def add_timeline_nodes(scene, timeline: PhaseTimeline, name: str, tools: ToolTimeline | None = None) -> TimelineNodes:
    """A table and a plot chart of ``timeline`` (and the tools' presence, when given)."""
    table = scene.AddNewNodeByClass("vtkMRMLTableNode", f"{name} timeline")
    chart = scene.AddNewNodeByClass("vtkMRMLPlotChartNode", f"{name} timeline chart")
    nodes = TimelineNodes(table, chart, [])
    update_timeline_nodes(scene, nodes, timeline, tools)
    return nodes


def _column(table, name: str, values: np.ndarray) -> None:
    array = vtk.vtkDoubleArray()
    array.SetName(name)
    array.SetNumberOfValues(len(values))
    for row, value in enumerate(values):
        array.SetValue(row, float(value))
    table.GetTable().AddColumn(array)


def _series(scene, nodes: TimelineNodes, table_name: str, column: str, colour, band: bool) -> None:
    series = scene.AddNewNodeByClass("vtkMRMLPlotSeriesNode", f"{table_name} {column}")
    series.SetAndObserveTableNodeID(nodes.table.GetID())
    series.SetXColumnName("time")
    series.SetYColumnName(column)
    series.SetPlotType(series.PlotTypeScatter)
    series.SetColor(*colour)
    if band:  # present frames as a thick bar; absent ones are NaN, which the chart skips
        series.SetLineWidth(10)
        series.SetMarkerStyle(series.MarkerStyleSquare)
        series.SetMarkerSize(6)
    else:
        series.SetLineWidth(2)
        series.SetMarkerStyle(series.MarkerStyleNone)
    nodes.chart.AddAndObservePlotSeriesNodeID(series.GetID())
    nodes.series.append(series)


def update_timeline_nodes(scene, nodes: TimelineNodes, timeline: PhaseTimeline, tools: ToolTimeline | None = None) -> None:
    """Refill the table and the chart from ``timeline`` (after an edit, say)."""
    for series in nodes.series:
        scene.RemoveNode(series)
    nodes.series.clear()
    nodes.chart.RemoveAllPlotSeriesNodeIDs()
    table = nodes.table.GetTable()
    while table.GetNumberOfColumns():
        table.RemoveColumn(0)
    times = timeline.times
    _column(nodes.table, "time", times)
    colours = class_colours(len(timeline.classes))
    labels = timeline.frame_labels()
    name = nodes.table.GetName()
    for index, (phase, colour) in enumerate(zip(timeline.classes, colours)):
        _column(nodes.table, phase, timeline.probabilities[:, index])
        _column(nodes.table, f"phase: {phase}", np.where(labels == index, _BAND_LEVEL, np.nan))
        _series(scene, nodes, name, phase, colour, band=False)
        _series(scene, nodes, name, f"phase: {phase}", colour, band=True)
    lowest = _BAND_LEVEL
    if tools is not None:
        tool_colours = class_colours(len(tools.tools))
        for row, (tool, colour) in enumerate(zip(tools.tools, tool_colours)):
            level = _TOOL_LEVEL - row * _ROW_STEP
            present = np.zeros(times.shape, dtype=bool)
            for interval in tools.intervals(tool):
                present |= (times >= interval.start) & (times < interval.end)
            _column(nodes.table, f"tool: {tool}", np.where(present, level, np.nan))
            _series(scene, nodes, name, f"tool: {tool}", colour, band=True)
            lowest = level
    nodes.table.Modified()
    chart = nodes.chart
    chart.SetTitle("UNTRAINED MODEL: not a real prediction" if timeline.untrained else "Phases")
    chart.SetXAxisTitle("time (s)")
    chart.SetYAxisTitle("probability")
    chart.SetYAxisRangeAuto(False)
    chart.SetYAxisRange(lowest - _ROW_STEP, 1.02)
    chart.SetLegendVisibility(True)


def add_segmentation_sequence(scene, segmentation: Segmentation, frames: FrameNodes, name: str,
                              sequences_logic=None):
    """One segmentation node per frame, synchronised with the frames, edits saved back into the sequence."""
    count = frames.sequence.GetNumberOfDataNodes()
    if segmentation.shape[0] != count:
        raise ClientError(f"the segmentation has {segmentation.shape[0]} frames, the video {count}")
    sequence = scene.AddNewNodeByClass("vtkMRMLSequenceNode", f"{name} segmentation")
    sequence.SetIndexName("time")
    sequence.SetIndexUnit("s")
    sequence.SetIndexType(sequence.NumericIndex)
    masks = [(segment, segmentation.mask(segment)) for segment in segmentation.segments]
    for item in range(count):
        node = slicer.vtkMRMLSegmentationNode()
        for segment, mask in masks:
            _add_segment(node, segment, mask[item], segmentation.geometry)
        sequence.SetDataNodeAtValue(node, frames.sequence.GetNthIndexValue(item))
    frames.browser.AddSynchronizedSequenceNode(sequence)
    frames.browser.SetSaveChanges(sequence, True)
    if sequences_logic is not None:
        sequences_logic.UpdateProxyNodesFromSequences(frames.browser)
    return sequence


def _add_segment(node, segment: SegmentInfo, mask: np.ndarray, geometry: Geometry) -> None:
    labelmap = _image(mask.astype(np.uint8), slicer.vtkOrientedImageData())
    labelmap.SetImageToWorldMatrix(_matrix(geometry.ijk_to_ras()))
    item = slicer.vtkSegment()
    item.SetName(segment.name)
    item.SetColor(*segment.colour)
    item.AddRepresentation(_BINARY_LABELMAP, labelmap)
    node.GetSegmentation().AddSegment(item, segment.id)


def segmentation_from_sequence(sequence, shape: tuple[int, int, int], geometry: Geometry) -> Segmentation:
    """The masks of every frame of a segmentation sequence, as one segmentation over the frames.

    ``shape`` is (T, H, W) of the frames; a segment's labelmap is placed by its extent, so one the
    Segment Editor grew or shrank still lands on the right pixels.
    """
    frames, rows, columns = shape
    if sequence.GetNumberOfDataNodes() != frames:
        raise ClientError(f"the segmentation sequence has {sequence.GetNumberOfDataNodes()} frames, "
                          f"the video {frames}")
    infos: dict[str, SegmentInfo] = {}
    masks: dict[str, np.ndarray] = {}
    for item in range(frames):
        node = sequence.GetNthDataNode(item)
        content = node.GetSegmentation()
        for position in range(content.GetNumberOfSegments()):
            segment_id = content.GetNthSegmentID(position)
            segment = content.GetSegment(segment_id)
            if segment_id not in infos:
                infos[segment_id] = SegmentInfo(segment_id, segment.GetName(), tuple(segment.GetColor()))
                masks[segment_id] = np.zeros(shape, dtype=bool)
            labelmap = slicer.vtkOrientedImageData()
            node.GetBinaryLabelmapRepresentation(segment_id, labelmap)
            x0, x1, y0, y1, z0, z1 = labelmap.GetExtent()
            if x1 < x0 or y1 < y0:
                continue  # empty in this frame
            values = numpy_support.vtk_to_numpy(labelmap.GetPointData().GetScalars())
            values = values.reshape(z1 - z0 + 1, y1 - y0 + 1, x1 - x0 + 1)[0] > 0
            xs, ys = slice(max(x0, 0), min(x1, columns - 1) + 1), slice(max(y0, 0), min(y1, rows - 1) + 1)
            masks[segment_id][item, ys, xs] |= values[ys.start - y0:ys.stop - y0, xs.start - x0:xs.stop - x0]
    if not infos:
        raise ClientError("the segmentation has no segment to save")
    return Segmentation.from_masks([(infos[key], masks[key]) for key in infos], geometry)
