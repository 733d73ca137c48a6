"""A minimal NRRD reader and writer (attached data, raw or gzip), on numpy alone.

Slicer's Python has no pynrrd, and the frames and segmentations the server sends are NRRD files held in
memory, so the module reads and writes them itself. Only what those files use is supported: one header
with the data attached, ``raw`` or ``gzip`` encoding, any NRRD scalar type, either byte order. Detached
data, ``text``/``hex``/``bzip2`` encodings and line or byte skips are refused with a one-line error rather
than misread.

Arrays are held in C order with NRRD's fastest axis last: a file with ``sizes: 3 W H T`` is an array of
shape ``(T, H, W, 3)``.
"""

from __future__ import annotations

import gzip
import re
import zlib
from dataclasses import dataclass, field

import numpy as np

from .errors import ClientError

_MAGIC = re.compile(rb"^NRRD000[1-5]$")
_TYPES = {
    np.dtype("int8"): ("signed char", "int8", "int8_t"),
    np.dtype("uint8"): ("uchar", "unsigned char", "uint8", "uint8_t"),
    np.dtype("int16"): ("short", "short int", "signed short", "signed short int", "int16", "int16_t"),
    np.dtype("uint16"): ("ushort", "unsigned short", "unsigned short int", "uint16", "uint16_t"),
    np.dtype("int32"): ("int", "signed int", "int32", "int32_t"),
    np.dtype("uint32"): ("uint", "unsigned int", "uint32", "uint32_t"),
    np.dtype("int64"): ("longlong", "long long", "long long int", "signed long long", "signed long long int",
                        "int64", "int64_t"),
    np.dtype("uint64"): ("ulonglong", "unsigned long long", "unsigned long long int", "uint64", "uint64_t"),
    np.dtype("float32"): ("float",),
    np.dtype("float64"): ("double",),
}
_DTYPE_OF_NAME = {name: dtype for dtype, names in _TYPES.items() for name in names}
# Fields whose values the reader interprets; every other field is kept verbatim for the writer.
_DATA_FIELDS = ("type", "dimension", "sizes", "encoding", "endian")
_DETACHED = ("data file", "datafile")
_SKIPS = ("line skip", "lineskip", "byte skip", "byteskip")


@dataclass
class NrrdImage:
    """An NRRD file: its data and the header fields (``name: value``) and key/value pairs (``key:=value``).

    ``fields`` holds every field other than the ones that describe the data bytes (type, dimension, sizes,
    encoding, endian), with field names in lower case, in file order, so a file round-trips.
    """

    data: np.ndarray
    fields: dict[str, str] = field(default_factory=dict)
    key_values: dict[str, str] = field(default_factory=dict)

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(reversed(self.data.shape))

    def vector(self, name: str) -> list[list[float] | None]:
        """A field holding NRRD vectors, such as ``space directions``: one list per vector, None for ``none``."""
        return parse_vectors(self.fields.get(name, ""))


def parse_vectors(text: str) -> list[list[float] | None]:
    vectors: list[list[float] | None] = []
    for token in re.findall(r"\([^)]*\)|none", text):
        if token == "none":
            vectors.append(None)
        else:
            try:
                vectors.append([float(value) for value in token[1:-1].split(",")])
            except ValueError:
                raise ClientError(f"NRRD: bad vector {token!r}") from None
    return vectors


def format_vector(values) -> str:
    return "(" + ",".join(repr(float(value)) for value in values) + ")"


def read_nrrd(data: bytes, origin: str = "NRRD") -> NrrdImage:
    """Parse an NRRD file held in memory; ``origin`` names it in error messages."""
    end = data.find(b"\n\n")
    if end < 0 or not _MAGIC.match(data[:8]):
        raise ClientError(f"{origin}: not an NRRD file with attached data")
    try:  # Slicer writes segment names and other header text as UTF-8
        lines = data[:end].decode("utf-8").splitlines()[1:]
    except UnicodeDecodeError:
        lines = data[:end].decode("latin-1").splitlines()[1:]
    fields: dict[str, str] = {}
    key_values: dict[str, str] = {}
    for line in lines:
        if not line or line.startswith("#"):
            continue
        if ":=" in line:
            key, value = line.split(":=", 1)
            key_values[key] = value
        elif ": " in line:
            name, value = line.split(": ", 1)
            fields[name.strip().lower()] = value.strip()
        else:
            raise ClientError(f"{origin}: bad NRRD header line {line!r}")
    unsupported = [name for name in _DETACHED if name in fields]
    unsupported += [name for name in _SKIPS if fields.get(name, "0") != "0"]
    if unsupported:
        raise ClientError(f"{origin}: NRRD field {unsupported[0]!r} is not supported")
    try:
        dtype = _DTYPE_OF_NAME[fields.pop("type")]
        dimension = int(fields.pop("dimension"))
        sizes = [int(value) for value in fields.pop("sizes").split()]
        encoding = fields.pop("encoding")
    except KeyError as missing:
        raise ClientError(f"{origin}: NRRD header lacks or misstates {missing}") from None
    except ValueError:
        raise ClientError(f"{origin}: NRRD dimension or sizes are not integers") from None
    endian = fields.pop("endian", "little")
    if len(sizes) != dimension or min(sizes, default=0) < 1:
        raise ClientError(f"{origin}: NRRD sizes {sizes} do not match dimension {dimension}")
    body = data[end + 2:]
    if encoding in ("gzip", "gz"):
        try:
            body = gzip.decompress(body)
        except (OSError, EOFError, zlib.error):
            raise ClientError(f"{origin}: the NRRD's gzip data is damaged") from None
    elif encoding != "raw":
        raise ClientError(f"{origin}: NRRD encoding {encoding!r} is not supported (raw and gzip are)")
    dtype = dtype.newbyteorder("<" if endian == "little" else ">") if dtype.itemsize > 1 else dtype
    count = int(np.prod(sizes))
    if len(body) < count * dtype.itemsize:
        raise ClientError(f"{origin}: the NRRD data is truncated ({len(body)} of {count * dtype.itemsize} bytes)")
    array = np.frombuffer(body, dtype=dtype, count=count).reshape(tuple(reversed(sizes)))
    return NrrdImage(array.astype(dtype.newbyteorder("="), copy=True), fields, key_values)


def write_nrrd(image: NrrdImage, compress: bool = True) -> bytes:
    """The bytes of an NRRD file (little endian, gzip unless ``compress`` is false)."""
    dtype = np.dtype(image.data.dtype)
    if dtype.newbyteorder("=") not in _TYPES:
        raise ClientError(f"NRRD cannot hold {dtype} data")
    data = np.ascontiguousarray(image.data, dtype=dtype.newbyteorder("<"))
    header = [
        "NRRD0004",
        "# Complete NRRD file format specification at http://teem.sourceforge.net/nrrd/format.html",
        f"type: {_TYPES[dtype.newbyteorder('=')][0]}",
        f"dimension: {data.ndim}",
        f"sizes: {' '.join(str(size) for size in reversed(data.shape))}",
        f"encoding: {'gzip' if compress else 'raw'}",
    ]
    if dtype.itemsize > 1:
        header.append("endian: little")
    for name, value in image.fields.items():
        _check_header_text(name, value)
        header.append(f"{name}: {value}")
    for key, value in image.key_values.items():
        _check_header_text(key, value)
        header.append(f"{key}:={value}")
    body = data.tobytes()
    if compress:
        body = gzip.compress(body, compresslevel=1, mtime=0)
    return ("\n".join(header) + "\n\n").encode("utf-8") + body


def _check_header_text(name: str, value: str) -> None:
    if "\n" in name + value or ":=" in name or ": " in name:
        raise ClientError(f"NRRD header entry {name!r} cannot be written (line break or separator in it)")

