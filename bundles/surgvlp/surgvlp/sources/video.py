"""Video streams decoded with PyAV: container files (mp4, mov, mkv, webm, avi, mpeg) and, through
:mod:`surgvlp.sources.dicom_video`, the stream held inside a DICOM video instance.

Opening a video demuxes its packets once, without decoding, to learn every frame's presentation
timestamp and where the keyframes are; for a one-hour 1080p file that reads the file once and keeps
two small integer arrays. Decoding then jumps to the keyframe before a wanted frame whenever that
skips at least :data:`SEEK_MIN_SKIPPED_FRAMES` frames, and otherwise decodes on, skipping the frames
that nothing refers to and converting to RGB only the frames that were asked for. Only the frames of the
last packet are alive here; the bounded queue in :mod:`surgvlp.background` caps the rest.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import av
import numpy as np

from surgvlp.errors import SurgVLPError
from surgvlp.sources.base import FrameSource
from surgvlp.sources.identity import content_id
from surgvlp.sources.input_file import InputFile

SEEK_MIN_SKIPPED_FRAMES = 12
"""Seeking flushes the decoder; below this many skipped frames decoding on is cheaper."""

SKIPPABLE_CODECS = frozenset({"h264", "hevc", "mpeg1video", "mpeg2video"})
"""Decoders whose ``NONREF`` discard drops exactly the frames that nothing refers to (see :class:`_ForwardDecoder`)."""

_INDEXED_FORMATS = frozenset({"mov", "mp4", "matroska", "webm", "avi"})
"""Containers whose seek lands on a keyframe from an index; others (MPEG-PS/TS, raw streams) are decoded on."""


class VideoSource(FrameSource):
    """A video stream read with PyAV; times are the stream's presentation timestamps."""

    kind = "video"

    def __init__(self, file: InputFile | Path, *, fps: float | None, start: float | None, end: float | None) -> None:
        self._file = InputFile.of(file)
        self.name = self._file.name
        with self._open() as container:
            stream = self._video_stream(container)
            pts, keyframes = self._scan(container, stream)
            self._seekable = pts is not None and not _INDEXED_FORMATS.isdisjoint(container.format.name.split(","))
            self._codec = stream.codec_context.name
            count = len(keyframes)
            if pts is None:
                times = self._untimed_frame_times(count, stream)
                native_fps = None
            else:
                times = (pts - pts[0]).astype(np.float64) * float(stream.time_base)
                rate = stream.average_rate or stream.guessed_rate
                native_fps = float(rate) if rate else None
            frame_size = (stream.codec_context.height, stream.codec_context.width)
        self._pts = pts
        self._keyframe_positions = np.union1d([0], np.flatnonzero(keyframes))  # the start is always a safe seek
        super().__init__(
            self._file.path,
            name=self._file.name,
            times=times,
            indices=np.arange(count),
            native_fps=native_fps,
            frame_size=frame_size,
            fps=fps,
            start=start,
            end=end,
        )

    def _input(self) -> str | BinaryIO:
        """What PyAV opens: the path (FFmpeg's own file access), else a stream over the bytes; the DICOM
        source hands over its pixel-data fragments instead of the file."""
        return self._file.open() if self._file.path is None else str(self._file.path)

    def _untimed_frame_times(self, count: int, stream: av.video.stream.VideoStream) -> np.ndarray:
        """Times for streams without timestamps (raw H.264/HEVC elementary streams): the stream's nominal rate."""
        rate = stream.average_rate or stream.guessed_rate
        if not rate:
            raise SurgVLPError(f"{self.name}: video stream has neither timestamps nor a frame rate")
        return np.arange(count) / float(rate)

    @contextlib.contextmanager
    def _open(self) -> Iterator[av.container.InputContainer]:
        source = self._input()
        try:
            try:
                container = av.open(source, mode="r")
            except (av.FFmpegError, OSError) as error:
                raise SurgVLPError(
                    f"{self.name}: not a readable video (corrupt or truncated?): {_reason(error)}"
                ) from error
            try:
                yield container
            finally:
                container.close()
        finally:
            if not isinstance(source, str):
                source.close()

    def _video_stream(self, container: av.container.InputContainer) -> av.video.stream.VideoStream:
        if not container.streams.video:
            raise SurgVLPError(f"{self.name}: has no video stream")
        stream = container.streams.video[0]
        if not stream.codec_context.width or not stream.codec_context.height:
            raise SurgVLPError(f"{self.name}: video stream has no frame size (corrupt header?)")
        return stream

    def _scan(
        self, container: av.container.InputContainer, stream: av.video.stream.VideoStream
    ) -> tuple[np.ndarray | None, np.ndarray]:
        """Presentation timestamps in display order (None if the stream has none) and keyframe flags."""
        stamps: list[int | None] = []
        keys: list[bool] = []
        try:
            for packet in container.demux(stream):
                if packet.size:
                    stamps.append(packet.pts)
                    keys.append(packet.is_keyframe)
        except av.FFmpegError as error:
            raise SurgVLPError(f"{self.name}: video stream is corrupt or truncated: {_reason(error)}") from error
        if stream.frames and len(stamps) < stream.frames:
            raise SurgVLPError(
                f"{self.name}: truncated: the header lists {stream.frames} frames but only {len(stamps)} are present"
            )
        if not stamps:
            raise SurgVLPError(f"{self.name}: video stream holds no frames")
        if any(stamp is None for stamp in stamps):
            return None, np.asarray(keys, dtype=bool)
        pts, flags = np.asarray(stamps, dtype=np.int64), np.asarray(keys, dtype=bool)
        if flags.any():
            # A recording that starts mid-GOP, or with leading pictures of an open GOP, begins with frames
            # no decoder can show: the video starts at its first keyframe.
            first_key = int(np.argmax(flags))
            decodable = (np.arange(len(pts)) >= first_key) & (pts >= pts[first_key])
            pts, flags = pts[decodable], flags[decodable]
        # Display order; a frame repeating an earlier timestamp (a broken mux) cannot be told apart and is dropped.
        pts, first = np.unique(pts, return_index=True)
        return pts, flags[first]

    def _decode(self, positions: np.ndarray) -> Generator[np.ndarray, None, None]:
        with self._open() as container:
            stream = container.streams.video[0]
            decoder = _ForwardDecoder(container, stream, self._pts, skip_unreferenced=self._codec in SKIPPABLE_CODECS)
            seekable = self._seekable
            next_position = 0
            for position in positions:
                seeked = False
                if seekable:
                    key = self._keyframe_positions[np.searchsorted(self._keyframe_positions, position, "right") - 1]
                    if key - next_position >= SEEK_MIN_SKIPPED_FRAMES:
                        decoder.seek(key)
                        seeked = True
                frame_position, frame = self._advance(decoder, position)
                if frame_position > position and seeked:
                    # The seek landed after the wanted frame (a broken index): decode from the start instead.
                    seekable = False
                    decoder.seek(0)
                    frame_position, frame = self._advance(decoder, position)
                if frame_position != position:
                    raise SurgVLPError(
                        f"{self.name}: frame {position} ({self._times[position]:.3f} s) could not be decoded "
                        "(corrupt stream)"
                    )
                next_position = position + 1
                yield frame.to_ndarray(format="rgb24")

    def _advance(self, decoder: _ForwardDecoder, position: int) -> tuple[int, av.VideoFrame]:
        """Decode on until the frame at ``position`` (or the first one after it)."""
        try:
            found = decoder.advance(position)
        except av.FFmpegError as error:
            raise SurgVLPError(f"{self.name}: video stream is corrupt: {_reason(error)}") from error
        if found is None:
            raise SurgVLPError(
                f"{self.name}: stream ended before frame {position} ({self._times[position]:.3f} s): truncated?"
            )
        return found

    def _content_id(self) -> str:
        return content_id(self._file.fingerprint())

    def _details(self) -> dict[str, Any]:
        return {"codec": self._codec}


class _ForwardDecoder:
    """One open video stream, decoded forward to the frames asked for, one packet at a time.

    With ``skip_unreferenced`` the decoder drops, without decoding them, the packets of frames that no other
    frame refers to (FFmpeg's ``skip_frame = NONREF``: most B-frames) while they are shown before the wanted
    frame, so they can never be the frame asked for. What the decoder returns is unchanged, bit for bit:
    the frames it still decodes refer only to frames it decoded. Sampling 1 fps from the 10-minute H.264 file
    of ``benchmarks/bench_sources.py`` (x264 with B-frames, a keyframe every 2 s) then decodes 6,227 frames
    instead of 9,300. It needs timestamps, which tell a skipped frame from a wanted one.

    Frame threading stays off (PyAV's default): sampling seeks every keyframe or two, each seek flushes a
    frame-threaded decoder's pipeline, and on a 10-minute 854x480 H.264 file sampled at 1 fps it took a quarter
    more CPU time, which the image encoder on the same cores needs, and more wall time too.
    """

    def __init__(
        self,
        container: av.container.InputContainer,
        stream: av.video.stream.VideoStream,
        pts: np.ndarray | None,
        *,
        skip_unreferenced: bool,
    ) -> None:
        self._container = container
        self._stream = stream
        self._pts = pts
        self._skip = skip_unreferenced and pts is not None
        self._decoded: deque[tuple[int, av.VideoFrame]] = deque()
        self._restart(first_position=0)

    def _restart(self, first_position: int) -> None:
        self._packets = self._container.demux(self._stream)
        self._decoded.clear()
        self._counted = first_position - 1

    def seek(self, key: int) -> None:
        """Continue from the keyframe at position ``key``."""
        self._container.seek(int(self._pts[key]), stream=self._stream, backward=True, any_frame=False)
        self._restart(first_position=key)

    def advance(self, position: int) -> tuple[int, av.VideoFrame] | None:
        """The frame at ``position``, or the first one after it, with its position; None at the end of the stream."""
        wanted_pts = None if self._pts is None else self._pts[position]
        while True:
            while self._decoded:
                frame_position, frame = self._decoded.popleft()
                if frame_position >= position:
                    return frame_position, frame
            packet = next(self._packets, None)
            if packet is None:
                return None
            if self._skip:
                early = packet.pts is not None and packet.pts < wanted_pts
                self._stream.codec_context.skip_frame = "NONREF" if early else "DEFAULT"
            self._decoded.extend((self._position(frame), frame) for frame in packet.decode())

    def _position(self, frame: av.VideoFrame) -> int:
        """A decoded frame's display-order position: from its timestamp, else by counting."""
        if self._pts is not None and frame.pts is not None:
            self._counted = int(np.searchsorted(self._pts, frame.pts, "left"))
        else:
            self._counted += 1
        return self._counted


def _reason(error: BaseException) -> str:
    """FFmpeg's message without the file name PyAV appends (the caller names the file)."""
    return getattr(error, "strerror", None) or str(error)
