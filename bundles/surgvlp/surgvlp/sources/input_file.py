"""Where the bytes of a video or DICOM file come from: a path on disk, or memory.

A DICOM video fetched from a PACS arrives as bytes, and a server should not have to write it to disk
before decoding it: PyAV and pydicom both read file objects. Every reader opens its own stream from an
:class:`InputFile`, so the demuxing pass, the decoding thread and parallel decoding workers never
share a file position, and the content identity is computed from the same bytes either way.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from surgvlp.errors import SurgVLPError
from surgvlp.sources.identity import stream_fingerprint

IN_MEMORY_NAME = "<in-memory data>"

SourceData = str | Path | bytes | bytearray | memoryview | BinaryIO
"""What ``open_source`` accepts: a path, the bytes of a file, or a binary file object (read from its position)."""


@dataclass(frozen=True)
class InputFile:
    """A file's bytes: ``path`` on disk, or ``data`` in memory (then ``path`` is None); ``name`` labels messages."""

    name: str
    path: Path | None = None
    data: bytes | None = field(default=None, repr=False)

    @classmethod
    def of(cls, value: SourceData | InputFile, name: str | None = None) -> InputFile:
        if isinstance(value, InputFile):
            return value
        if isinstance(value, (str, Path)):
            return cls(name or str(value), path=Path(value))
        if isinstance(value, (bytes, bytearray, memoryview)):
            return cls(name or IN_MEMORY_NAME, data=bytes(value))
        if callable(getattr(value, "read", None)):
            return cls(name or str(getattr(value, "name", "") or IN_MEMORY_NAME), data=_read_all(value))
        raise SurgVLPError(f"cannot open a {type(value).__name__} as a frame source; give a path, bytes or a binary file")

    def open(self) -> BinaryIO:
        """A new binary stream at the first byte (a BytesIO over ``data`` shares its buffer, it copies nothing)."""
        if self.path is None:
            return io.BytesIO(self.data)
        try:
            return open(self.path, "rb")
        except OSError as error:
            raise SurgVLPError(f"{self.name}: cannot read file: {error.strerror or error}") from error

    def fingerprint(self) -> bytes:
        """The content fingerprint (:func:`~surgvlp.sources.identity.file_fingerprint`): equal for a file and its bytes."""
        with self.open() as stream:
            return stream_fingerprint(stream)

    def __str__(self) -> str:
        return self.name


def _read_all(stream: BinaryIO) -> bytes:
    try:
        data = stream.read()
    except OSError as error:
        raise SurgVLPError(f"cannot read the given file object: {error.strerror or error}") from error
    if not isinstance(data, bytes):
        raise SurgVLPError(f"the given file object yields {type(data).__name__}, not bytes; open it in binary mode")
    return data
