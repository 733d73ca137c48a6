"""Video streams decoded with PyAV: container files (mp4, mov, mkv, webm, avi, mpeg) and, through
:mod:`surgvlp.sources.dicom_video`, the stream held inside a DICOM video instance.

Opening a video demuxes its packets once, without decoding, to learn every frame's presentation
timestamp and where the keyframes are; for a one-hour 1080p file that reads the file once and keeps
two small integer arrays. Decoding then jumps to the keyframe before a wanted frame whenever that
skips at least :data:`SEEK_MIN_SKIPPED_FRAMES` frames, and otherwise decodes on (multi-threaded),
converting to RGB only the frames that were asked for. Only one decoded frame is alive at a time here;
the bounded queue in :mod:`surgvlp.background` caps the rest.
"""

from __future__ import annotations

import contextlib
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
"""Seeking flushes the (threaded) decoder; below this many skipped frames decoding on is cheaper."""

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
            stream.thread_type = "AUTO"
            seekable = self._seekable
            decoded = self._decoded(container, stream, first_position=0)
            next_position = 0
            for position in positions:
                seeked = False
                if seekable:
                    key = self._keyframe_positions[np.searchsorted(self._keyframe_positions, position, "right") - 1]
                    if key - next_position >= SEEK_MIN_SKIPPED_FRAMES:
                        decoded = self._seek(container, stream, key)
                        seeked = True
                frame_position, frame = self._advance(decoded, position)
                if frame_position > position and seeked:
                    # The seek landed after the wanted frame (a broken index): decode from the start instead.
                    seekable = False
                    decoded = self._seek(container, stream, 0)
                    frame_position, frame = self._advance(decoded, position)
                if frame_position != position:
                    raise SurgVLPError(
                        f"{self.name}: frame {position} ({self._times[position]:.3f} s) could not be decoded "
                        "(corrupt stream)"
                    )
                next_position = position + 1
                yield frame.to_ndarray(format="rgb24")

    def _seek(
        self, container: av.container.InputContainer, stream: av.video.stream.VideoStream, key: int
    ) -> Iterator[tuple[int, av.VideoFrame]]:
        container.seek(int(self._pts[key]), stream=stream, backward=True, any_frame=False)
        return self._decoded(container, stream, first_position=key)

    def _decoded(
        self, container: av.container.InputContainer, stream: av.video.stream.VideoStream, first_position: int
    ) -> Iterator[tuple[int, av.VideoFrame]]:
        """Decoded frames with their display-order positions (from the timestamp, else by counting)."""
        position = first_position - 1
        try:
            for frame in container.decode(stream):
                if self._pts is not None and frame.pts is not None:
                    position = int(np.searchsorted(self._pts, frame.pts, "left"))
                else:
                    position += 1
                yield position, frame
        except av.FFmpegError as error:
            raise SurgVLPError(f"{self.name}: video stream is corrupt: {_reason(error)}") from error

    def _advance(self, decoded: Iterator[tuple[int, av.VideoFrame]], position: int) -> tuple[int, av.VideoFrame]:
        """Decode on until the frame at ``position`` (or the first one after it)."""
        for frame_position, frame in decoded:
            if frame_position >= position:
                return frame_position, frame
        raise SurgVLPError(
            f"{self.name}: stream ended before frame {position} ({self._times[position]:.3f} s): truncated?"
        )

    def _content_id(self) -> str:
        return content_id(self._file.fingerprint())

    def _details(self) -> dict[str, Any]:
        return {"codec": self._codec}


def _reason(error: BaseException) -> str:
    """FFmpeg's message without the file name PyAV appends (the caller names the file)."""
    return getattr(error, "strerror", None) or str(error)
