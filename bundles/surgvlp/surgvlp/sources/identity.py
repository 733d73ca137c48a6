"""Content identities: hashes that name what a source holds, not where it lies.

A source's ``content_id`` keys the embedding cache, so it must stay the same when a file is copied,
renamed or touched, and change when the content does. Reading a multi-gigabyte video in full just to
name it would cost more than embedding a few frames, so files over 4 MiB are fingerprinted: SHA-256
over the file size, the first and the last MiB and 16 blocks of 64 KiB spread evenly in between.
Re-encoding, re-muxing or truncating changes the size or the head and tail, where the mp4 index, the
DICOM header and the stream headers sit; two files that agree on the size and on every sampled byte
are not a practical concern for a cache. Smaller files are hashed whole.

Folders of frames or DICOM instances can hold many thousand files: they are fingerprinted by every
file's name and size plus the fingerprint of 16 files spread evenly over the folder, first and last
included (edited or re-exported frames change in size, as compressed images do). Their sources also
mix the frame times into the identity, since the folder frame rate is not part of the files. The same
fingerprint names a model's text folder (vocabulary, configuration, tokenizer settings) in cache keys.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import BinaryIO

_WHOLE_FILE_LIMIT = 4 << 20
_EDGE_BYTES = 1 << 20
_BLOCK_BYTES = 64 << 10
_BLOCK_COUNT = 16
_SAMPLED_FILES = 16


def file_fingerprint(path: Path) -> bytes:
    """SHA-256 digest of a file's size and sampled content (see the module docstring)."""
    with open(path, "rb") as stream:
        return stream_fingerprint(stream)


def stream_fingerprint(stream: BinaryIO) -> bytes:
    """:func:`file_fingerprint` of a seekable binary stream, so that bytes in memory get their file's identity."""
    digest = hashlib.sha256()
    size = stream.seek(0, 2)
    digest.update(size.to_bytes(8, "little"))
    if size <= _WHOLE_FILE_LIMIT:
        stream.seek(0)
        digest.update(stream.read())
        return digest.digest()
    inner = size - 2 * _EDGE_BYTES - _BLOCK_BYTES
    spans = [(0, _EDGE_BYTES), (size - _EDGE_BYTES, _EDGE_BYTES)]
    spans += [(_EDGE_BYTES + inner * i // (_BLOCK_COUNT - 1), _BLOCK_BYTES) for i in range(_BLOCK_COUNT)]
    for offset, length in spans:
        stream.seek(offset)
        digest.update(stream.read(length))
    return digest.digest()


def files_fingerprint(files: list[Path]) -> bytes:
    """SHA-256 digest of an ordered list of files: names and sizes of all, content of a few (see above)."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0" + path.stat().st_size.to_bytes(8, "little"))
    last = len(files) - 1
    for index in sorted({last * i // (_SAMPLED_FILES - 1) for i in range(_SAMPLED_FILES)}):
        digest.update(file_fingerprint(files[index]))
    return digest.digest()


def folder_id(folder: Path) -> str:
    """Content id of the files directly in ``folder`` (hidden ones aside), in name order."""
    files = sorted(path for path in Path(folder).iterdir() if path.is_file() and not path.name.startswith("."))
    return content_id(files_fingerprint(files)) if files else content_id()


def content_id(*parts: bytes) -> str:
    """Hex SHA-256 over fingerprints and any extra bytes (such as frame times) that define a source."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(len(part).to_bytes(8, "little"))
        digest.update(part)
    return digest.hexdigest()
