"""The one interface through which every consumer reads frames, whatever the container.

A source knows, before decoding anything, the exact time of each native frame (from the stream's
presentation timestamps or the DICOM timing attributes). Sampling is therefore decided up front by
:func:`~surgvlp.sources.sampling.select_frames`, ``len()`` is exact, and each container only has to
decode the frames it was asked for, in time order.
"""

from __future__ import annotations

import abc
import functools
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from surgvlp.errors import SurgVLPError
from surgvlp.background import iterate_in_background
from surgvlp.sources.sampling import sampling_rate, select_frames


Transform = Callable[[np.ndarray], np.ndarray]
"""What a consumer has done to each image where it is decoded: (H, W, 3) uint8 in, any array out."""


@dataclass(frozen=True)
class Frame:
    """One decoded frame: ``image`` is (H, W, 3) uint8 RGB, ``time`` is seconds after the source's first frame."""

    image: np.ndarray
    time: float
    index: int


class FrameSource(abc.ABC):
    """Frames of one video, DICOM object or frame folder, sampled at ``fps`` within ``[start, end)`` seconds.

    Subclasses describe their native frames (``times`` sorted ascending, the matching source
    ``indices``, and the nominal ``native_fps`` or None to derive it from the times) and implement
    :meth:`_decode`; this class turns a sampling request into the frames
    to decode and runs the decoding in a background thread, ``queue_depth`` frames ahead. ``path`` is
    None for a file decoded from memory; ``name`` stands for the source in messages either way.
    """

    kind: str = ""
    queue_depth: int = 8

    def __init__(
        self,
        path: Path | None,
        *,
        name: str | None = None,
        times: np.ndarray,
        indices: np.ndarray,
        native_fps: float | None,
        frame_size: tuple[int, int],
        fps: float | None,
        start: float | None,
        end: float | None,
    ) -> None:
        self.path = path
        self.name = str(path) if name is None else name
        if len(times) == 0:
            raise SurgVLPError(f"{self.name}: holds no frames")
        if fps is not None and not fps > 0:
            raise SurgVLPError(f"{self.name}: sampling rate must be positive, got fps={fps}")
        self.native_fps = float(native_fps) if native_fps else _rate_from_times(times)
        self.frame_size = frame_size
        self.duration = float(times[-1]) + 1.0 / self.native_fps
        self.fps = sampling_rate(fps, self.native_fps)
        self.start = 0.0 if start is None else float(start)
        self.end = self.duration if end is None else min(float(end), self.duration)
        if not 0 <= self.start < self.duration:  # written so that NaN is refused too
            raise SurgVLPError(f"{self.name}: start {self.start:g} s is outside the source (duration {self.duration:.3f} s)")
        if not self.end > self.start:
            raise SurgVLPError(f"{self.name}: end {self.end:g} s must be after start {self.start:g} s")
        self._times = times
        self._indices = indices
        self._selected = select_frames(times, self.native_fps, self.fps, self.start, self.end)
        if len(self._selected) == 0:
            raise SurgVLPError(f"{self.name}: no frames between {self.start:g} s and {self.end:g} s")
        self._prefetched: _Prefetch | None = None

    @property
    def frame_count(self) -> int:
        """Number of native frames in the whole source."""
        return len(self._times)

    @functools.cached_property
    def content_id(self) -> str:
        """Stable hash of what the source shows and when (see :mod:`surgvlp.sources.identity`)."""
        return self._content_id()

    @property
    def description(self) -> dict[str, Any]:
        """What a timeline records about where its frames came from."""
        return {
            "kind": self.kind,
            "path": None if self.path is None else str(self.path),
            "content_id": self.content_id,
            "duration": self.duration,
            "native_fps": self.native_fps,
            "frame_count": self.frame_count,
            "frame_size": list(self.frame_size),
            "sampled_fps": self.fps,
            "start": self.start,
            "end": self.end,
            "sampled_frames": len(self),
            **self._details(),
        }

    def __len__(self) -> int:
        return len(self._selected)

    def __iter__(self) -> Iterator[Frame]:
        return self.iterate()

    def iterate(self, transform: Transform | None = None) -> Iterator[Frame]:
        """The sampled frames, decoded in a background thread that also applies ``transform`` to each image
        (a model's crop, say, so that only small images wait in the queue). A :meth:`prefetch` with the same
        transform is taken over; one with another transform is stopped."""
        prefetched = self._prefetched
        if prefetched is not None and prefetched.transform == transform:
            self._prefetched = None
            return _first_then_rest(prefetched.first, prefetched.rest)
        self.drop_prefetch()
        return iterate_in_background(self._frames(transform), depth=self.queue_depth, name="surgvlp-frame-decoder")

    def prefetch(self, count: int, transform: Transform | None = None) -> None:
        """Decode the first frame now and the next ones in the background, for the next iteration with the
        same ``transform`` to take.

        A command calls this before it loads its model: an unreadable source is reported before that work,
        and frames are decoded while torch is imported and the checkpoint read, which leave a core idle for
        seconds. That iteration's decoding thread runs up to ``count`` frames ahead, not ``queue_depth``.
        """
        frames = iterate_in_background(self._frames(transform), depth=max(count, 1), name="surgvlp-frame-decoder")
        self._prefetched = _Prefetch(next(frames), frames, transform)

    def drop_prefetch(self) -> None:
        """Stop the decoding that :meth:`prefetch` started, for a caller that found the frames' embeddings cached."""
        prefetched, self._prefetched = self._prefetched, None
        if prefetched is not None:
            prefetched.rest.close()

    def _frames(self, transform: Transform | None = None) -> Generator[Frame, None, None]:
        return transformed(self.frames_at(self._selected), transform)

    def frames_at(self, positions: np.ndarray) -> Generator[Frame, None, None]:
        """Decode the native frames at ``positions`` (ascending), in the calling thread."""
        images = self._decode(positions)
        try:
            for position, image in zip(positions, images, strict=True):
                yield Frame(image=image, time=float(self._times[position]), index=int(self._indices[position]))
        finally:
            images.close()

    def runs(self, length: int) -> list[np.ndarray]:
        """The sampled positions cut into consecutive runs of ``length``, for decoding them in parallel."""
        return [self._selected[first : first + length] for first in range(0, len(self._selected), length)]

    @abc.abstractmethod
    def _decode(self, positions: np.ndarray) -> Generator[np.ndarray, None, None]:
        """Yield the RGB image of each native frame at ``positions`` (ascending), and nothing else."""

    @abc.abstractmethod
    def _content_id(self) -> str:
        """Hash identifying the frames and their times."""

    def _details(self) -> dict[str, Any]:
        """Container-specific entries for :attr:`description`."""
        return {}

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.name!r}, frames={len(self)}/{self.frame_count}, "
            f"duration={self.duration:.3f}s, native_fps={self.native_fps:g}, sampled_fps={self.fps})"
        )


@dataclass(frozen=True)
class _Prefetch:
    """A decoding started ahead: its first frame (decoded in the caller's thread), the rest and its transform."""

    first: Frame
    rest: Generator[Frame, None, None]
    transform: Transform | None


def transformed(frames: Iterator[Frame], transform: Transform | None) -> Generator[Frame, None, None]:
    """``frames`` with ``transform`` applied to each image (times and indices kept)."""
    try:
        for frame in frames:
            yield frame if transform is None else Frame(transform(frame.image), frame.time, frame.index)
    finally:
        if isinstance(frames, Generator):
            frames.close()


def _first_then_rest(first: Frame, rest: Iterator[Frame]) -> Generator[Frame, None, None]:
    yield first
    yield from rest  # closing this closes ``rest``, which stops its decoding thread


def _rate_from_times(times: np.ndarray) -> float:
    """Frame rate from the median frame interval, for sources that declare none (1 for a single frame)."""
    if len(times) < 2:
        return 1.0
    return 1.0 / float(np.median(np.diff(times)))
