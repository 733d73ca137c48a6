"""DICOM frame sources: video transfer syntaxes, multi-frame images, single-frame series, and bad input."""

from __future__ import annotations

import copy
import io
import itertools

import av
import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.config import pixel_data_handlers as pixel_handlers
from pydicom.encaps import encapsulate
from pydicom.pixel_data_handlers.util import convert_color_space

from surgvlp.errors import SurgVLPError
from surgvlp.sample_data import CaseIdentity, wrap_video
from surgvlp.sample_data.dicom import multiframe_dataset, video_endoscopic_dataset, write_dicom
from surgvlp.sources import DicomFramesSource, DicomSeriesSource, DicomVideoSource, open_source

WIDTH, HEIGHT, FPS = 64, 48, 25
IDENTITY = CaseIdentity(seed=7)


def ramp_frames(count: int) -> np.ndarray:
    """RGB frames that differ in colour and level, so a wrong frame or channel order shows."""
    frames = np.zeros((count, HEIGHT, WIDTH, 3), dtype=np.uint8)
    for number in range(count):
        frames[number, ..., 0] = 20 + 20 * number
        frames[number, ..., 1] = np.linspace(0, 200, WIDTH, dtype=np.uint8)[None, :]
        frames[number, ..., 2] = 200 - 20 * number
    return frames


def write_video(path, codec, fmt, frames=20, options=None):
    with av.open(str(path), "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=FPS, options=options or {})
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for image in ramp_frames(frames // 2).repeat(2, axis=0):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode(None))
    return path


def write_multiframe(path, frames, **attributes):
    """Native multi-frame DICOM of ``frames`` ((n, h, w, 3) RGB or (n, h, w) grey), then ``attributes`` applied."""
    dataset = multiframe_dataset(IDENTITY, WIDTH, HEIGHT, len(frames), fps=10)
    if frames.ndim == 3:
        dataset.SamplesPerPixel, dataset.PhotometricInterpretation = 1, "MONOCHROME2"
        del dataset.PlanarConfiguration
    for keyword, value in attributes.items():
        if value is None:
            delattr(dataset, keyword)
        else:
            setattr(dataset, keyword, value)
    data = frames.tobytes() if attributes.get("PlanarConfiguration") != 1 else frames.transpose(0, 3, 1, 2).tobytes()
    write_dicom(dataset, path, [data], length=len(data))
    return path


def write_encapsulated(path, fragments, transfer_syntax, photometric, count):
    dataset = multiframe_dataset(IDENTITY, WIDTH, HEIGHT, count, fps=10)
    dataset.file_meta.TransferSyntaxUID = transfer_syntax
    dataset.PhotometricInterpretation = photometric
    dataset.PixelData = encapsulate(fragments)
    dataset["PixelData"].is_undefined_length = True
    dataset.save_as(path, write_like_original=False)
    return path


def compressed(frames, **save_options) -> list[bytes]:
    out = []
    for image in frames:
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, **save_options)
        out.append(buffer.getvalue())
    return out


def images(path, **kwargs) -> list:
    return list(open_source(path, fps=None, **kwargs))


def test_mpeg2_program_stream_in_dicom(tmp_path):
    video = write_video(tmp_path / "clip.mpg", "mpeg2video", "mpeg")
    dicom = tmp_path / "mpeg2.dcm"
    wrap_video(video, dicom, IDENTITY)
    assert pydicom.dcmread(dicom).file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.100"
    assert_same_frames(dicom, video, DicomVideoSource)


@pytest.mark.parametrize("fmt", ["mp4", "mpegts"])
def test_hevc_in_dicom(tmp_path, fmt):
    video = write_video(tmp_path / f"clip.{fmt}", "libx265", fmt, options={"x265-params": "log-level=error"})
    dicom = tmp_path / "hevc.dcm"
    wrap_video(video, dicom, IDENTITY)
    assert pydicom.dcmread(dicom).file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.107"
    assert_same_frames(dicom, video, DicomVideoSource)


def assert_same_frames(dicom, video, kind):
    source = open_source(dicom, fps=None)
    assert isinstance(source, kind)
    ours, theirs = list(source), images(video)
    assert len(ours) == len(theirs) == 20
    for frame, expected in zip(ours, theirs, strict=True):
        assert frame.time == pytest.approx(expected.time) and frame.index == expected.index
        assert np.array_equal(frame.image, expected.image)


def test_elementary_stream_is_timed_by_frame_time(tmp_path):
    video = write_video(tmp_path / "clip.h264", "libx264", "h264", options={"profile": "high", "level": "4.1"})
    dataset = video_endoscopic_dataset(IDENTITY, video)
    dataset.FrameTime = "100"  # 10 fps, while the raw stream carries no timing at all
    write_dicom(dataset, tmp_path / "raw.dcm", [video.read_bytes()], length=None)
    source = open_source(tmp_path / "raw.dcm", fps=None)
    assert source.native_fps == pytest.approx(10.0) and source.duration == pytest.approx(2.0)
    assert [frame.time for frame in source] == pytest.approx(np.arange(20) / 10)


def test_stream_split_over_several_fragments(tmp_path):
    video = write_video(tmp_path / "clip.mp4", "libx264", "mp4", options={"profile": "high"})
    dataset = video_endoscopic_dataset(IDENTITY, video)
    dataset.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.102.1"  # fragmentable H.264
    data = video.read_bytes()
    cuts = [0, len(data) // 3 & ~1, 2 * len(data) // 3 & ~1, len(data)]  # fragments of even length
    parts = [data[start:end] for start, end in itertools.pairwise(cuts)]
    dataset.PixelData = encapsulate([*parts[:-1], parts[-1] + b"\0" * (len(parts[-1]) % 2)])
    dataset["PixelData"].is_undefined_length = True
    dataset.save_as(tmp_path / "fragments.dcm", write_like_original=False)
    assert_same_frames(tmp_path / "fragments.dcm", video, DicomVideoSource)


def test_native_multiframe_colour_layouts_and_timing(tmp_path):
    frames = ramp_frames(5)
    planar = write_multiframe(tmp_path / "planar.dcm", frames, PlanarConfiguration=1)
    vector = write_multiframe(
        tmp_path / "vector.dcm",
        frames,
        FrameTime=None,
        FrameTimeVector=[0, 40, 40, 120, 40],
        FrameIncrementPointer=pydicom.tag.Tag("FrameTimeVector"),
    )
    cine = write_multiframe(tmp_path / "cine.dcm", frames, FrameTime=None, CineRate=5)
    for path, times in (
        (planar, [0, 0.1, 0.2, 0.3, 0.4]),
        (vector, [0, 0.04, 0.08, 0.2, 0.24]),
        (cine, [0, 0.2, 0.4, 0.6, 0.8]),
    ):
        decoded = images(path)
        assert isinstance(open_source(path), DicomFramesSource)
        assert [frame.time for frame in decoded] == pytest.approx(times)
        assert np.array_equal(np.stack([frame.image for frame in decoded]), frames)


def test_greyscale_multiframe_becomes_rgb(tmp_path):
    grey = ramp_frames(3)[..., 1]
    decoded = images(write_multiframe(tmp_path / "grey.dcm", grey))
    assert all(
        np.array_equal(frame.image, np.repeat(level[..., None], 3, axis=2))
        for frame, level in zip(decoded, grey, strict=True)
    )
    inverted = images(write_multiframe(tmp_path / "inverted.dcm", grey, PhotometricInterpretation="MONOCHROME1"))
    assert np.array_equal(inverted[0].image[..., 0], 255 - grey[0])


def test_multiframe_jpeg_baseline(tmp_path):
    frames = ramp_frames(4)
    path = write_encapsulated(
        tmp_path / "jpeg.dcm",
        compressed(frames, format="JPEG", quality=95),
        pydicom.uid.JPEGBaseline8Bit,
        "YBR_FULL_422",
        len(frames),
    )
    decoded = np.stack([frame.image for frame in images(path)]).astype(float)
    assert np.abs(decoded - frames).mean() < 3.0
    reference = convert_color_space(pydicom.dcmread(path).pixel_array, "YBR_FULL", "RGB")  # pydicom 2 keeps YCbCr
    assert np.abs(decoded - reference).max() <= 2


def test_multiframe_jpeg_2000_lossless(tmp_path):
    frames = ramp_frames(3)
    fragments = compressed(frames, format="JPEG2000", irreversible=False, no_jp2=True)
    path = write_encapsulated(tmp_path / "j2k.dcm", fragments, pydicom.uid.JPEG2000Lossless, "YBR_RCT", len(frames))
    assert np.array_equal(np.stack([frame.image for frame in images(path)]), frames)


@pytest.mark.parametrize("photometric", ["RGB", "YBR_FULL", "MONOCHROME2"])
def test_multiframe_rle_lossless_decodes_to_the_uncompressed_frames(tmp_path, photometric):
    frames = ramp_frames(4) if photometric != "MONOCHROME2" else ramp_frames(4)[..., 1]
    native = write_multiframe(tmp_path / "native.dcm", frames, PhotometricInterpretation=photometric)
    dataset = pydicom.dcmread(native)
    dataset.compress(pydicom.uid.RLELossless)  # pydicom's own RLE encoder: numpy only
    dataset.save_as(tmp_path / "rle.dcm")
    assert pydicom.dcmread(tmp_path / "rle.dcm").file_meta.TransferSyntaxUID == pydicom.uid.RLELossless
    decoded = images(tmp_path / "rle.dcm")
    assert np.array_equal(np.stack([frame.image for frame in decoded]), np.stack([frame.image for frame in images(native)]))
    assert [frame.time for frame in decoded] == pytest.approx([0, 0.1, 0.2, 0.3])
    if photometric == "RGB":
        assert np.array_equal(np.stack([frame.image for frame in decoded]), frames)
    reference = pydicom.dcmread(tmp_path / "rle.dcm").pixel_array  # pydicom's whole-object decode, as stored
    if photometric == "YBR_FULL":
        reference = convert_color_space(reference, "YBR_FULL", "RGB")
    elif photometric == "MONOCHROME2":
        reference = np.repeat(reference[..., None], 3, axis=-1)
    assert np.array_equal(np.stack([frame.image for frame in decoded]), reference)

    fragments = tmp_path / "fragments.dcm"
    whole = (tmp_path / "rle.dcm").read_bytes()
    fragments.write_bytes(whole[: len(whole) - 40])  # cuts into the last frame's fragment
    assert "truncated" in dicom_error(fragments)


def test_series_folder_in_instance_order_with_acquisition_times(tmp_path):
    frames = ramp_frames(4)
    folder = tmp_path / "series"
    folder.mkdir()
    for number, name in enumerate(["d", "b", "c", "a"]):  # names deliberately out of order
        path = folder / f"{name}.dcm"
        write_multiframe(
            path,
            frames[number : number + 1],
            NumberOfFrames=None,
            FrameTime=None,
            FrameIncrementPointer=None,
            InstanceNumber=number + 1,
            SOPInstanceUID=IDENTITY.uid(f"still-{number}"),
            AcquisitionDateTime=f"20240101080000.{number * 5:02d}0000",
        )
    source = open_source(folder, fps=None)
    assert isinstance(source, DicomSeriesSource)
    decoded = list(source)
    assert [frame.time for frame in decoded] == pytest.approx([0, 0.05, 0.1, 0.15])
    assert np.array_equal(np.stack([frame.image for frame in decoded]), frames)
    assert source.description["series_instance_uid"] == pydicom.dcmread(folder / "a.dcm").SeriesInstanceUID
    assert [frame.time for frame in images(folder, folder_fps=2.0)] == [0, 0.5, 1.0, 1.5]


def test_dicom_description_carries_the_uids(tmp_path):
    path = write_multiframe(tmp_path / "mf.dcm", ramp_frames(2))
    dataset = pydicom.dcmread(path)
    description = open_source(path).description
    assert description["kind"] == "dicom_multiframe"
    for key, keyword in (
        ("study_instance_uid", "StudyInstanceUID"),
        ("series_instance_uid", "SeriesInstanceUID"),
        ("sop_instance_uid", "SOPInstanceUID"),
    ):
        assert description[key] == dataset[keyword].value


def dicom_error(path, **kwargs) -> str:
    with pytest.raises(SurgVLPError) as raised:
        list(open_source(path, **kwargs))
    assert "\n" not in str(raised.value) and str(path) in str(raised.value), "one line naming the file"
    return str(raised.value)


def test_dicom_errors_name_the_file_and_the_problem(tmp_path):
    report = Dataset()
    report.SOPClassUID = pydicom.uid.ComprehensiveSRStorage
    report.SOPInstanceUID = IDENTITY.uid("report")
    report.file_meta = FileMetaDataset()
    report.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    report.file_meta.MediaStorageSOPClassUID, report.file_meta.MediaStorageSOPInstanceUID = (
        report.SOPClassUID,
        report.SOPInstanceUID,
    )
    report.is_little_endian, report.is_implicit_VR = True, False
    report.save_as(tmp_path / "report.dcm", write_like_original=False)
    assert "Comprehensive SR" in dicom_error(tmp_path / "report.dcm") and "no pixel data" in dicom_error(
        tmp_path / "report.dcm"
    )

    invented = write_encapsulated(tmp_path / "invented.dcm", [b"\0\0"], "1.2.3.4.5.6.7", "RGB", 1)
    assert "unsupported transfer syntax 1.2.3.4.5.6.7" in dicom_error(invented)
    jpeg_ls = write_encapsulated(tmp_path / "jpeg_ls.dcm", [b"\0\0"], pydicom.uid.JPEGLSLossless, "RGB", 1)
    if not any(h.is_available() and h.supports_transfer_syntax(pydicom.uid.JPEGLSLossless) for h in pixel_handlers):
        assert "unsupported transfer syntax 1.2.840.10008.1.2.4.80 (JPEG-LS Lossless" in dicom_error(jpeg_ls)

    video = write_video(tmp_path / "clip.mp4", "libx264", "mp4", options={"profile": "high"})
    wrap_video(video, tmp_path / "video.dcm", IDENTITY)
    whole = (tmp_path / "video.dcm").read_bytes()
    (tmp_path / "cut.dcm").write_bytes(whole[: int(len(whole) * 0.7)])
    assert "truncated" in dicom_error(tmp_path / "cut.dcm")
    meta_end = 132 + 12 + pydicom.dcmread(tmp_path / "video.dcm").file_meta.FileMetaInformationGroupLength
    (tmp_path / "garbage.dcm").write_bytes(whole[:meta_end] + b"\x08\x00\x16\x00QQ\x02\x00" + b"\x01" * 50)
    assert "not a readable DICOM" in dicom_error(tmp_path / "garbage.dcm")
    (tmp_path / "header_only.dcm").write_bytes(whole[:600])
    assert "ends before its pixel data" in dicom_error(tmp_path / "header_only.dcm")

    assert "no frames" in dicom_error(write_multiframe(tmp_path / "zero.dcm", ramp_frames(0)))
    assert "no frame timing" in dicom_error(write_multiframe(tmp_path / "untimed.dcm", ramp_frames(3), FrameTime=None))
    sixteen = write_multiframe(tmp_path / "sixteen.dcm", ramp_frames(2)[..., 0], BitsAllocated=16)
    assert "16-bit" in dicom_error(sixteen)


def test_series_folder_with_two_series_is_refused(tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    write_multiframe(folder / "one.dcm", ramp_frames(1), NumberOfFrames=None)
    other = CaseIdentity(seed=8)
    dataset = pydicom.dcmread(folder / "one.dcm")
    dataset.SeriesInstanceUID, dataset.SOPInstanceUID = other.uid("series"), other.uid("instance")
    copy.deepcopy(dataset).save_as(folder / "two.dcm")
    assert "2 DICOM series" in dicom_error(folder)
