"""NRRD frame volumes and .seg.nrrd segmentations, checked against pynrrd (an independent reader and writer)
and against Slicer's own segmentation storage node (slicer-core)."""

from __future__ import annotations

import gzip

import nrrd
import numpy as np
import pytest

from SlicerSurgVLPLib.errors import ClientError
from SlicerSurgVLPLib.nrrd import NrrdImage, read_nrrd, write_nrrd
from SlicerSurgVLPLib.segmentations import SegmentInfo, Segmentation
from SlicerSurgVLPLib.volumes import FrameVolume, Geometry

RNG = np.random.default_rng(7)


def _frames(count=4, rows=6, columns=9):
    return RNG.integers(0, 256, (count, rows, columns, 3), dtype=np.uint8)


@pytest.mark.parametrize("compress", [True, False], ids=["gzip", "raw"])
def test_a_frame_volume_pynrrd_reads_is_the_array_we_wrote(tmp_path, compress):
    frames = _frames()
    geometry = Geometry(np.array([1.0, 2.0, 3.0]), np.diag([2.0, 2.0, 1.0]))
    data = write_nrrd(NrrdImage(frames, {"kinds": "RGB-color domain domain domain",
                                         **geometry.nrrd_fields(leading_axes=1)}), compress=compress)
    path = tmp_path / "frames.nrrd"
    path.write_bytes(data)
    array, header = nrrd.read(str(path), index_order="C")
    np.testing.assert_array_equal(array, frames)
    assert list(header["sizes"]) == [3, 9, 6, 4]
    assert header["kinds"] == ["RGB-color", "domain", "domain", "domain"]
    assert header["space"] == "left-posterior-superior"
    np.testing.assert_allclose(header["space directions"][1:], np.diag([2.0, 2.0, 1.0]))
    np.testing.assert_allclose(header["space origin"], [1.0, 2.0, 3.0])


@pytest.mark.parametrize("encoding", ["gzip", "raw"])
@pytest.mark.parametrize("dtype", ["uint8", "int16", "uint16", "int32", "float32", "float64"])
@pytest.mark.parametrize("endian", ["little", "big"])
def test_we_read_what_pynrrd_writes(tmp_path, encoding, dtype, endian):
    array = (RNG.random((3, 5, 7)) * 100).astype(dtype)
    path = tmp_path / "volume.nrrd"
    nrrd.write(str(path), array, {"encoding": encoding, "endian": endian, "space": "left-posterior-superior",
                                  "space directions": np.eye(3), "space origin": np.zeros(3)},
               index_order="C", custom_field_map=None)
    image = read_nrrd(path.read_bytes())
    np.testing.assert_array_equal(image.data, array)
    assert image.data.dtype == np.dtype(dtype)
    assert image.fields["space"] == "left-posterior-superior"


def test_the_servers_frame_volume_header_is_read():
    """The exact header ``surgvlp.write_frame_volume`` writes (type uint8, spacing from max_size, raw)."""
    frames = _frames(2, 3, 4)
    header = ("NRRD0004\n# surgvlp sampled video frames: one slice per frame\ntype: uint8\ndimension: 4\n"
              "space: left-posterior-superior\nsizes: 3 4 3 2\nspace directions: none (2.0,0,0) (0,2.0,0) (0,0,1)\n"
              "kinds: RGB-color domain domain domain\nendian: little\nencoding: raw\nspace origin: (0,0,0)\n\n")
    volume = FrameVolume.from_nrrd(header.encode("ascii") + frames.tobytes())
    np.testing.assert_array_equal(volume.frames, frames)
    np.testing.assert_allclose(volume.geometry.directions, np.diag([2.0, 2.0, 1.0]))
    # LPS identity: column to patient left, row to posterior, so the video is upright in the axial view
    np.testing.assert_allclose(volume.geometry.ijk_to_ras()[:3, :3], np.diag([-2.0, -2.0, 1.0]))


def test_a_frame_volume_round_trips():
    volume = FrameVolume(_frames(), Geometry(np.array([0.5, 0.0, 0.0]), np.diag([1.5, 1.5, 1.0])))
    again = FrameVolume.from_nrrd(volume.to_nrrd())
    np.testing.assert_array_equal(again.frames, volume.frames)
    np.testing.assert_allclose(again.geometry.directions, volume.geometry.directions)
    np.testing.assert_allclose(again.geometry.origin, volume.geometry.origin)


def test_a_ras_file_is_turned_into_lps():
    image = NrrdImage(_frames(1, 2, 2), {"kinds": "RGB-color domain domain domain", "space": "RAS",
                                         "space directions": "none (1,0,0) (0,1,0) (0,0,1)",
                                         "space origin": "(10,20,30)"})
    volume = FrameVolume.from_nrrd(write_nrrd(image))
    np.testing.assert_allclose(volume.geometry.origin, [-10, -20, 30])
    np.testing.assert_allclose(volume.geometry.ijk_to_ras(), np.array(
        [[1, 0, 0, 10], [0, 1, 0, 20], [0, 0, 1, 30], [0, 0, 0, 1]], dtype=float))


@pytest.mark.parametrize("damage, message", [
    (lambda data: b"PNG" + data[3:], "not an NRRD file"),
    (lambda data: data[:-10], "truncated"),
    (lambda data: data.replace(b"encoding: gzip", b"encoding: bzip2"), "encoding 'bzip2' is not supported"),
    (lambda data: data.replace(b"encoding: gzip\n", b"encoding: gzip\ndata file: frames.raw\n"), "'data file'"),
    (lambda data: data.replace(b"sizes: 3 9 6 4", b"sizes: 3 9 6"), "do not match dimension"),
    (lambda data: data.replace(b"type: uchar", b"type: block"), "misstates 'block'"),
])
def test_a_damaged_or_unsupported_file_is_one_line_error(damage, message):
    data = FrameVolume(_frames()).to_nrrd()
    if message == "truncated":
        data = data.split(b"\n\n", 1)[0] + b"\n\n" + gzip.decompress(data.split(b"\n\n", 1)[1])
        data = data.replace(b"encoding: gzip", b"encoding: raw")[:-10]
    with pytest.raises(ClientError, match=message) as caught:
        FrameVolume.from_nrrd(damage(data) if message != "truncated" else data)
    assert "\n" not in str(caught.value)


def test_a_grey_volume_is_not_a_frame_volume():
    with pytest.raises(ClientError, match="not an RGB frame volume"):
        FrameVolume.from_nrrd(write_nrrd(NrrdImage(np.zeros((2, 3, 4), np.uint8))))


def _masks():
    tool = np.zeros((3, 6, 8), dtype=bool)
    tool[:, 1:4, 2:6] = True
    organ = np.zeros_like(tool)
    organ[:, 3:6, 0:3] = True  # overlaps the tool at row 3, columns 2
    other = np.zeros_like(tool)
    other[2, 0, 7] = True
    return [(SegmentInfo("tool", "hook tip", (1.0, 0.0, 0.0)), tool),
            (SegmentInfo("organ", "gallbladder", (0.0, 1.0, 0.0), extra={"Tags": "TerminologyEntry:x|"}), organ),
            (SegmentInfo("spot", "spot", (0.0, 0.0, 1.0)), other)]


def test_overlapping_masks_go_into_separate_layers_and_come_back():
    segmentation = Segmentation.from_masks(_masks())
    assert segmentation.layers.shape == (2, 3, 6, 8)
    assert [(segment.layer, segment.label_value) for segment in segmentation.segments] == [(0, 1), (1, 1), (0, 2)]
    for segment, (_, mask) in zip(segmentation.segments, _masks()):
        np.testing.assert_array_equal(segmentation.mask(segment), mask)


def test_a_segmentation_pynrrd_reads_has_slicers_fields(tmp_path):
    path = tmp_path / "masks.seg.nrrd"
    path.write_bytes(Segmentation.from_masks(_masks()).to_nrrd())
    array, header = nrrd.read(str(path), index_order="C")
    assert array.shape == (3, 6, 8, 2) and header["kinds"] == ["list", "domain", "domain", "domain"]
    assert list(header["sizes"]) == [2, 8, 6, 3]
    assert header["Segment1_Name"] == "gallbladder" and header["Segment1_Layer"] == "1"
    assert header["Segment1_Tags"] == "TerminologyEntry:x|"
    assert header["Segment0_Color"].split() == ["1.0", "0.0", "0.0"]
    assert header["Segment0_Extent"] == "0 7 0 5 0 2"
    assert header["Segmentation_MasterRepresentation"] == "Binary labelmap"
    np.testing.assert_array_equal(array[..., 0] == 1, _masks()[0][1])
    np.testing.assert_array_equal(array[..., 1] == 1, _masks()[1][1])


def test_slicers_segmentation_reader_reads_our_file_and_we_read_slicers(tmp_path, mrml_scene):
    """vtkMRMLSegmentationStorageNode (Slicer's own reader and writer) on our .seg.nrrd, and back."""
    import slicer

    scene, _ = mrml_scene
    ours = tmp_path / "ours.seg.nrrd"
    ours.write_bytes(Segmentation.from_masks(_masks()).to_nrrd())
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
    storage = slicer.vtkMRMLSegmentationStorageNode()
    storage.SetFileName(str(ours))
    assert storage.ReadData(node)
    content = node.GetSegmentation()
    assert [content.GetNthSegment(index).GetName() for index in range(content.GetNumberOfSegments())] == \
        ["hook tip", "gallbladder", "spot"]
    assert content.GetSegment("organ").GetColor() == pytest.approx((0.0, 1.0, 0.0))

    theirs = tmp_path / "theirs.seg.nrrd"
    writer = slicer.vtkMRMLSegmentationStorageNode()
    writer.SetFileName(str(theirs))
    assert writer.WriteData(node)
    again = Segmentation.from_nrrd(theirs.read_bytes())
    assert [segment.name for segment in again.segments] == ["hook tip", "gallbladder", "spot"]
    # Slicer may crop the volume to the segments' extent; compare inside the extent it wrote
    for segment, (_, mask) in zip(again.segments, _masks()):
        found = again.mask(segment)
        offset = [int(value) for value in again.key_values["Segmentation_ReferenceImageExtentOffset"].split()]
        frames, rows, columns = found.shape
        expected = mask[offset[2]:offset[2] + frames, offset[1]:offset[1] + rows, offset[0]:offset[0] + columns]
        np.testing.assert_array_equal(found, expected)
        assert mask.sum() == found.sum()


def test_a_segmentation_round_trips_keeping_unknown_entries():
    segmentation = Segmentation.from_masks(_masks(), key_values={"Segmentation_ConversionParameters": "x|y|z"})
    again = Segmentation.from_nrrd(segmentation.to_nrrd())
    assert again.key_values["Segmentation_ConversionParameters"] == "x|y|z"
    assert [segment.extra.get("Tags") for segment in again.segments] == ["|", "TerminologyEntry:x|", "|"]
    np.testing.assert_array_equal(again.layers, segmentation.layers)


def test_masks_of_different_sizes_are_refused():
    first, second = _masks()[:2]
    with pytest.raises(ClientError, match="is \\(2, 6, 8\\)"):
        Segmentation.from_masks([first, (second[0], second[1][:2])])
