"""Frame sources over video containers and frame folders: sampling, timing, identity, background decoding."""

from __future__ import annotations

import io
import shutil
import struct
import threading
import zlib

import av
import numpy as np
import pytest
from PIL import Image

import surgvlp.sources.video as video_module
from surgvlp.errors import SurgVLPError
from surgvlp.sample_data import write_sample_case
from surgvlp.sources import FrameFolderSource, VideoSource, open_source
from surgvlp.background import iterate_in_background
from surgvlp.sources.identity import file_fingerprint
from surgvlp.sources.sampling import select_frames

SIZE = (160, 96)
FPS = 25


@pytest.fixture(scope="session")
def case(tmp_path_factory):
    return write_sample_case(tmp_path_factory.mktemp("case"), duration=14, seed=3, size=SIZE, progress=False)


def write_video(path, codec="libx264", fmt=None, frames=30, fps=FPS, options=None):
    """A clip whose frame ``n`` is uniformly grey level ``4 n``, so a frame's index can be read from its pixels."""
    with av.open(str(path), "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=fps, options=options or {})
        stream.width, stream.height, stream.pix_fmt = SIZE[0], SIZE[1], "yuv420p"
        for number in range(frames):
            image = np.full((SIZE[1], SIZE[0], 3), 4 * number, dtype=np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode(None))
    return path


def test_all_containers_of_the_sample_case_agree(case):
    reference = list(open_source(case.frames))
    assert [frame.time for frame in reference] == list(range(14))
    for path in (case.video, case.dicom_video, case.dicom_multiframe):
        source = open_source(path)
        frames = list(source)
        assert len(frames) == len(source) == len(reference)
        assert source.duration == pytest.approx(14.0)
        assert source.frame_size == (SIZE[1], SIZE[0])
        for frame, expected in zip(frames, reference, strict=True):
            assert frame.image.shape == (SIZE[1], SIZE[0], 3) and frame.image.dtype == np.uint8
            assert abs(frame.time - expected.time) <= 0.5 / FPS
            assert abs(frame.image.mean() - expected.image.mean()) < 3.0
            assert np.abs(frame.image.astype(float) - expected.image).mean() < 8.0


def test_native_frames_have_exact_timestamps_and_indices(case):
    source = open_source(case.video, fps=None)
    assert len(source) == source.frame_count == 14 * FPS
    frames = list(source)
    assert [frame.index for frame in frames] == list(range(14 * FPS))
    assert np.allclose([frame.time for frame in frames], np.arange(14 * FPS) / FPS)


def test_time_range_is_honoured_in_every_container(case):
    for path in (case.video, case.dicom_video, case.dicom_multiframe, case.frames):
        source = open_source(path, fps=1.0, start=3, end=7)
        assert [round(frame.time, 6) for frame in source] == [3, 4, 5, 6]
    ranged = open_source(case.video, fps=None, start=2.0, end=2.2)
    assert [frame.index for frame in ranged] == [50, 51, 52, 53, 54]


def test_selection_rule():
    one_fps = np.arange(10.0)
    assert select_frames(one_fps, 1.0, 1.0, 0.0, 10.0).tolist() == list(range(10))
    assert select_frames(one_fps, 1.0, 2.0, 0.0, 10.0).tolist() == list(range(10))  # no frame twice
    assert select_frames(one_fps, 1.0, 0.5, 1.0, 10.0).tolist() == [1, 3, 5, 7, 9]
    video = np.arange(100) / 25
    # the target 1.0 s picks the first frame at or after 1.0 - 0.02 s
    assert select_frames(video, 25.0, 1.0, 0.0, 4.0).tolist() == [0, 25, 50, 75]
    assert select_frames(video + 0.015, 25.0, 1.0, 0.0, 4.0).tolist() == [0, 25, 50, 75]
    assert select_frames(video - 0.015, 25.0, 1.0, 0.0, 4.0).tolist() == [0, 25, 50, 75]


@pytest.mark.parametrize(
    ("name", "codec", "fmt", "options"),
    [
        ("clip.mkv", "libx264", "matroska", {"g": "10"}),
        ("clip.webm", "libvpx-vp9", "webm", {"g": "10", "deadline": "realtime", "cpu-used": "8"}),
        ("clip.avi", "mpeg4", "avi", {"g": "10"}),
        ("clip.mov", "libx264", "mov", {"g": "10"}),
        ("clip.mp4", "libx264", "mp4", {"g": "10", "bf": "3"}),
        ("clip.ts", "libx264", "mpegts", {"g": "10"}),
    ],
)
def test_video_containers(tmp_path, name, codec, fmt, options):
    path = write_video(tmp_path / name, codec, fmt, frames=60, options=options)
    source = open_source(path, fps=5.0, start=0.4)
    assert isinstance(source, VideoSource)
    assert source.frame_count == 60 and source.native_fps == pytest.approx(FPS)
    frames = list(source)
    assert len(frames) == len(source) == 10
    assert [frame.index for frame in frames] == list(range(10, 60, 5))
    for frame in frames:  # the grey level tells which frame was decoded
        assert abs(frame.image.mean() - 4 * frame.index) < 4
        assert frame.time == pytest.approx(frame.index / FPS, abs=1e-3)


def test_seeking_and_sequential_decoding_give_the_same_frames(tmp_path, monkeypatch):
    path = write_video(tmp_path / "long_gop.mp4", frames=150, options={"g": "50"})
    seeking = [(frame.index, frame.image.mean()) for frame in open_source(path, fps=0.5)]
    monkeypatch.setattr("surgvlp.sources.video.SEEK_MIN_SKIPPED_FRAMES", 1 << 40)
    sequential = [(frame.index, frame.image.mean()) for frame in open_source(path, fps=0.5)]
    assert [index for index, _ in seeking] == [0, 50, 100]
    assert seeking == sequential


def write_textured_video(path, codec, options, frames=90):
    """Noise drifting across the picture: B-frames that really predict, unlike flat grey frames."""
    texture = np.random.default_rng(5).integers(0, 256, (SIZE[1], 2 * SIZE[0], 3), dtype=np.uint8)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=FPS, options=options)
        stream.width, stream.height, stream.pix_fmt = SIZE[0], SIZE[1], "yuv420p"
        for number in range(frames):
            image = np.ascontiguousarray(texture[:, number : number + SIZE[0]])
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode(None))
    return path


def every_frame_by_pyav(path) -> list[np.ndarray]:
    """The reference: PyAV decoding every frame, nothing skipped, in display order."""
    with av.open(str(path)) as container:
        frames = sorted(container.decode(video=0), key=lambda frame: frame.pts)
        return [frame.to_ndarray(format="rgb24") for frame in frames]


B_FRAME_CODECS = {
    "h264": ("clip.mp4", "libx264", {"g": "45", "bf": "3", "x264-params": "b-pyramid=normal"}),
    "hevc": ("clip.mp4", "libx265", {"x265-params": "keyint=45:bframes=3:log-level=error"}),
    "mpeg2video": ("clip.mpg", "mpeg2video", {"g": "45", "bf": "2"}),
}


@pytest.mark.parametrize("codec", sorted(B_FRAME_CODECS))
def test_frames_skipped_before_the_wanted_one_change_nothing(tmp_path, monkeypatch, codec):
    """Frames that nothing refers to are not decoded on the way to a wanted frame: fewer frames decoded, and
    every sampled frame bit-identical to PyAV's plain decoding of the whole stream."""
    name, encoder, options = B_FRAME_CODECS[codec]
    path = write_textured_video(tmp_path / name, encoder, options)
    reference = every_frame_by_pyav(path)
    assert codec in video_module.SKIPPABLE_CODECS
    decoded = {"count": 0}
    position = video_module._ForwardDecoder._position

    def count(self, frame):
        decoded["count"] += 1
        return position(self, frame)

    monkeypatch.setattr(video_module._ForwardDecoder, "_position", count)
    counts = {}
    for skipping in (True, False):
        monkeypatch.setattr(video_module, "SKIPPABLE_CODECS", video_module.SKIPPABLE_CODECS if skipping else frozenset())
        decoded["count"] = 0
        for fps, start in ((7.0, 0.0), (3.0, 0.5), (None, 1.0)):
            source = open_source(path, fps=fps, start=start)
            assert source.description["codec"] == codec
            for frame in source:
                np.testing.assert_array_equal(frame.image, reference[frame.index])
        counts[skipping] = decoded["count"]
    assert counts[True] < counts[False]


def test_recording_cut_mid_gop_starts_at_its_first_keyframe(tmp_path):
    whole = write_video(tmp_path / "whole.ts", fmt="mpegts", frames=50, options={"g": "20"}).read_bytes()
    cut = tmp_path / "cut.ts"
    cut.write_bytes(whole[(len(whole) // 3) // 188 * 188 :])  # whole 188-byte transport packets
    frames = list(open_source(cut, fps=None))
    assert frames[0].time == 0.0 and frames[0].index == 0
    first = round(frames[0].image.mean() / 4)
    assert first in (20, 40)  # a keyframe of the original
    assert [round(frame.image.mean() / 4) for frame in frames] == pytest.approx(range(first, 50), abs=1)


def test_content_is_recognised_without_extensions(case, tmp_path):
    shutil.copy(case.video, tmp_path / "looks_like.dcm")
    shutil.copy(case.dicom_video, tmp_path / "looks_like.mp4")
    assert open_source(tmp_path / "looks_like.dcm").kind == "video"
    assert open_source(tmp_path / "looks_like.mp4").kind == "dicom_video"


def test_content_id_follows_content_not_path(case, tmp_path):
    copy = shutil.copy(case.video, tmp_path / "renamed.bin")
    assert open_source(copy).content_id == open_source(case.video).content_id
    assert open_source(case.video, fps=2.0, start=1).content_id == open_source(case.video).content_id
    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 0xFF
    copy.write_bytes(data)
    assert open_source(copy).content_id != open_source(case.video).content_id
    folder = shutil.copytree(case.frames, tmp_path / "frames")
    assert open_source(folder).content_id == open_source(case.frames).content_id
    assert open_source(folder, folder_fps=2).content_id != open_source(case.frames).content_id
    assert len({open_source(path).content_id for path in (case.video, case.dicom_video, case.frames)}) == 3


def test_large_files_are_fingerprinted_by_samples(tmp_path):
    big = tmp_path / "big.bin"
    big.write_bytes(bytes(range(256)) * (24 << 12))  # 24 MiB
    first = file_fingerprint(big)
    with open(big, "r+b") as stream:
        stream.seek(-10, 2)
        stream.write(b"changed")
    assert file_fingerprint(big) != first


def test_description_records_sampling(case):
    description = open_source(case.video, fps=2.0, start=1.0, end=5.0).description
    assert description["kind"] == "video" and description["path"] == str(case.video)
    assert description["sampled_fps"] == 2.0 and (description["start"], description["end"]) == (1.0, 5.0)
    assert description["sampled_frames"] == 8 and description["native_fps"] == FPS
    assert description["duration"] == 14.0 and description["frame_size"] == [SIZE[1], SIZE[0]]


def test_frame_folder_naming_order_and_rate(tmp_path):
    image = np.zeros((8, 12, 3), dtype=np.uint8)
    for number in (1, 2, 10):
        Image.fromarray(image + number).save(tmp_path / f"video01_{number}.png")
    (tmp_path / "fps.txt").write_text("25\n")
    source = open_source(tmp_path, fps=None)
    assert isinstance(source, FrameFolderSource)
    frames = list(source)
    assert [frame.index for frame in frames] == [1, 2, 10]
    assert [frame.time for frame in frames] == pytest.approx([0.04, 0.08, 0.4])
    assert [int(frame.image[0, 0, 0]) for frame in frames] == [1, 2, 10]
    overridden = open_source(tmp_path, fps=None, folder_fps=1.0)
    assert [frame.time for frame in overridden] == [1.0, 2.0, 10.0]


def test_frame_folder_without_numbers_uses_natural_order(tmp_path):
    for name, level in (("frame_b10.jpg", 30), ("frame_b2.jpg", 20), ("first.jpeg", 10), ("notes.txt", 0)):
        if name.endswith("txt"):
            (tmp_path / name).write_text("not a frame")
        else:
            Image.fromarray(np.full((8, 8, 3), level, dtype=np.uint8)).save(tmp_path / name)
    frames = list(open_source(tmp_path, fps=None))
    assert [frame.index for frame in frames] == [0, 1, 2]
    assert [frame.time for frame in frames] == [0.0, 1.0, 2.0]  # 1 fps without a sidecar
    assert [round(float(frame.image.mean()) / 10) for frame in frames] == [1, 2, 3]


def test_breaking_early_stops_the_decoder_thread(case):
    source = open_source(case.video, fps=None)
    for number, _ in enumerate(source):
        if number == 2:
            break
    assert not any(thread.name == "surgvlp-frame-decoder" for thread in threading.enumerate())


def test_prefetched_frames_are_the_frames_of_an_iteration(case, tmp_path):
    """What a command decodes before loading its model: the same frames, once; the iteration after is plain."""
    source = open_source(case.video, fps=2.0)
    reference = [(frame.time, frame.index, frame.image) for frame in source]
    source.prefetch(4)
    for _ in range(2):  # the prefetched iteration, then an ordinary one
        frames = [(frame.time, frame.index, frame.image) for frame in source]
        assert [frame[:2] for frame in frames] == [frame[:2] for frame in reference]
        assert all(np.array_equal(frame[2], expected[2]) for frame, expected in zip(frames, reference, strict=True))
    assert not any(thread.name == "surgvlp-frame-decoder" for thread in threading.enumerate())

    folder = tmp_path / "frames"
    folder.mkdir()
    (folder / "f_0.png").write_bytes((case.frames / "case_0.png").read_bytes())
    (folder / "f_1.png").write_bytes((case.frames / "case_1.png").read_bytes())
    broken = open_source(folder)
    (folder / "f_0.png").write_bytes(b"")  # the first frame breaks after the folder was opened
    with pytest.raises(SurgVLPError, match="f_0.png"):
        broken.prefetch(2)  # reported before the model would load


def test_a_prefetch_is_taken_only_by_an_iteration_with_its_transform(case):
    """A command crops frames where they are decoded, from before its model loads; an iteration that wants
    other images stops that decoding and starts its own, and a prefetch nobody takes can be stopped."""
    source = open_source(case.video, fps=2.0)
    plain = list(source)

    def corner(image):
        return image[:8, :8].copy()

    def decoders():
        return [thread for thread in threading.enumerate() if thread.name == "surgvlp-frame-decoder"]

    source.prefetch(3, transform=corner)
    cropped = list(source.iterate(corner))
    assert [(frame.time, frame.index) for frame in cropped] == [(frame.time, frame.index) for frame in plain]
    assert all(np.array_equal(frame.image, corner(expected.image)) for frame, expected in zip(cropped, plain, strict=True))

    source.prefetch(3, transform=corner)
    whole = list(source)  # another transform (none): the prefetch is stopped, not handed over
    assert all(np.array_equal(frame.image, expected.image) for frame, expected in zip(whole, plain, strict=True))

    source.prefetch(3, transform=corner)
    assert decoders()
    source.drop_prefetch()
    for thread in decoders():
        thread.join(timeout=5)
    assert not decoders()


def test_background_iteration_is_bounded_and_propagates_errors():
    produced = []
    finished = []

    def endless():
        try:
            while True:
                produced.append(len(produced))
                yield produced[-1]
        finally:
            finished.append(True)

    depth = 4
    for item in iterate_in_background(endless(), depth=depth):
        if item == 10:
            break
    assert finished == [True]
    assert len(produced) <= 11 + depth + 1

    def failing():
        yield 1
        raise SurgVLPError("broken stream")

    with pytest.raises(SurgVLPError, match="broken stream"):
        list(iterate_in_background(failing()))


def one_line_error(path, **kwargs) -> str:
    with pytest.raises(SurgVLPError) as raised:
        list(open_source(path, **kwargs))
    assert "\n" not in str(raised.value) and str(path) in str(raised.value), "one line naming the file"
    return str(raised.value)


def test_errors_name_the_file_and_the_problem(case, tmp_path):
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(case.video.read_bytes()[: case.video.stat().st_size // 2])
    assert "truncated" in one_line_error(truncated)
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(case.video.read_bytes()[:64] + bytes(np.random.default_rng(0).integers(0, 256, 4096, np.uint8)))
    assert "corrupt" in one_line_error(corrupt)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    assert "empty" in one_line_error(empty)
    text = tmp_path / "notes.mp4"
    text.write_text("hello")
    assert "unrecognised" in one_line_error(text)
    assert "no such file" in one_line_error(tmp_path / "missing.mp4")
    assert "single image" in one_line_error(case.frames / "case_0.png")
    no_frames = tmp_path / "no_frames"
    no_frames.mkdir()
    (no_frames / "readme.txt").write_text("nothing here")
    assert "no PNG/JPEG frames" in one_line_error(no_frames)
    assert "outside" in one_line_error(case.video, start=20)
    assert "positive" in one_line_error(case.video, fps=0)
    assert "positive" in one_line_error(case.frames, folder_fps=0)


def test_zero_frame_video_and_broken_frame_in_folder(tmp_path):
    container = av.open(str(tmp_path / "empty.mp4"), "w")
    stream = container.add_stream("libx264", rate=FPS)
    stream.width, stream.height = SIZE
    container.start_encoding()
    container.close()
    assert "no video stream" in one_line_error(tmp_path / "empty.mp4")  # FFmpeg drops a track without samples
    folder = tmp_path / "frames"
    folder.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / "f_0.png")
    png = (folder / "f_0.png").read_bytes()
    (folder / "f_1.png").write_bytes(png[: len(png) // 2])
    message = one_line_error(folder)
    assert "f_1.png" in message


def test_frame_named_like_the_others_but_not_an_image_is_refused(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for number in range(3):
        Image.fromarray(np.full((8, 8, 3), number, np.uint8)).save(folder / f"video01_{number}.png")
    (folder / "notes.txt").write_text("not a frame, not named like one: left alone")
    (folder / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    assert len(open_source(folder, fps=None)) == 3
    (folder / "video01_3.png").write_text("an export that failed")
    message = one_line_error(folder, fps=None)
    assert "video01_3.png" in message and "not a PNG/JPEG image" in message


def write_png_header(path, width, height):
    """A PNG whose header (valid chunks and CRCs) declares ``width`` x ``height`` RGB pixels; its image data
    is a stub, since Pillow checks the size when it opens the file, before it decodes anything."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))
    return path


def test_decompression_bomb_is_one_line_naming_the_file_and_its_size(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    write_png_header(folder / "frame_0.png", 20000, 20000)
    message = one_line_error(folder)
    assert "frame_0.png" in message and "400000000 pixels" in message
    assert Image.MAX_IMAGE_PIXELS == 89478485, "Pillow's limit is left as it is"


def test_bytes_and_file_objects_give_the_frames_and_identity_of_the_file(case):
    for path in (case.video, case.dicom_video, case.dicom_multiframe):
        from_path = open_source(path, fps=2.0)
        expected = list(from_path)
        data = path.read_bytes()
        for given in (data, io.BytesIO(data), open(path, "rb")):
            source = open_source(given, fps=2.0, name="from-pacs")
            assert type(source) is type(from_path) and source.content_id == from_path.content_id
            frames = list(source)
            assert [frame.time for frame in frames] == [frame.time for frame in expected]
            assert all(np.array_equal(ours.image, theirs.image) for ours, theirs in zip(frames, expected, strict=True))
            assert source.description["path"] is None and source.name == "from-pacs"
            if hasattr(given, "close"):
                given.close()
    truncated = case.video.read_bytes()[: case.video.stat().st_size // 2]
    with pytest.raises(SurgVLPError, match="^upload.mp4: .*truncated"):
        list(open_source(truncated, name="upload.mp4"))
    with pytest.raises(SurgVLPError, match="is empty"):
        open_source(b"")
    with pytest.raises(SurgVLPError, match="not bytes"):
        open_source(io.StringIO("text"))


def test_a_source_in_memory_decodes_in_worker_processes(case):
    from surgvlp.sources.parallel import iterate_parallel

    source = open_source(case.dicom_video.read_bytes(), fps=2.0)  # the source and its bytes pickle to the workers
    parallel = list(iterate_parallel(source, workers=2, run_length=7))
    serial = list(open_source(case.dicom_video, fps=2.0))
    assert [frame.time for frame in parallel] == [frame.time for frame in serial]
    assert all(np.array_equal(ours.image, theirs.image) for ours, theirs in zip(parallel, serial, strict=True))
