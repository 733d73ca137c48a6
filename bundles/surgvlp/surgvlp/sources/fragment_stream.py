"""A read-only, seekable file object over byte ranges of another one.

A DICOM video keeps its MP4 / MPEG stream in one or more pixel-data fragments. Handing PyAV a view over
those ranges lets FFmpeg demux and seek inside the stream as if it were a plain file, without copying
the stream into memory or onto disk; the underlying stream is the DICOM file, or its bytes in memory.
"""

from __future__ import annotations

import bisect
import io
from typing import BinaryIO


class FragmentStream(io.RawIOBase):
    """The concatenation of ``spans`` ((offset, length) pairs) of the seekable binary ``stream``, which it closes."""

    def __init__(self, stream: BinaryIO, spans: list[tuple[int, int]]) -> None:
        super().__init__()
        self._file = stream
        self._spans = spans
        self._starts = [0]
        for _, length in spans:
            self._starts.append(self._starts[-1] + length)
        self._position = 0

    @property
    def size(self) -> int:
        return self._starts[-1]

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self.size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def readinto(self, buffer: bytearray | memoryview) -> int:
        view = memoryview(buffer).cast("B")
        written = 0
        while written < len(view) and self._position < self.size:
            span = bisect.bisect_right(self._starts, self._position) - 1
            offset, length = self._spans[span]
            inside = self._position - self._starts[span]
            count = min(len(view) - written, length - inside)
            self._file.seek(offset + inside)
            got = self._file.readinto(view[written : written + count])
            if not got:
                break
            written += got
            self._position += got
        return written

    def close(self) -> None:
        self._file.close()
        super().close()
