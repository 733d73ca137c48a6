"""Reading a DICOM file's header and locating its pixel data without loading it.

pydicom reads the data set up to the Pixel Data element; the element and (for encapsulated transfer
syntaxes) its fragment items are then located by reading item headers only. Video streams and frames
are later read straight from those byte ranges, so a multi-gigabyte DICOM video never sits in memory.
"""

from __future__ import annotations

import struct
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import UID

from surgvlp.errors import SurgVLPError
from surgvlp.sources.dicom_uids import MPEG_TRANSFER_SYNTAXES, uid_name
from surgvlp.sources.input_file import InputFile

_PIXEL_DATA_TAG = (0x7FE0, 0x0010)
_ITEM = (0xFFFE, 0xE000)
_SEQUENCE_DELIMITER = (0xFFFE, 0xE0DD)
_UNDEFINED_LENGTH = 0xFFFFFFFF


@dataclass(frozen=True)
class DicomObject:
    """A DICOM file's data set (without Pixel Data) and where its pixel data lies in the file."""

    file: InputFile
    dataset: Dataset
    transfer_syntax: UID
    pixel_offset: int
    pixel_length: int | None
    """Byte length of native pixel data; None when encapsulated (a sequence of fragment items)."""

    @property
    def path(self) -> Path | None:
        return self.file.path

    @property
    def name(self) -> str:
        """The file in messages."""
        return self.file.name

    @property
    def transfer_syntax_name(self) -> str:
        return uid_name(self.transfer_syntax)

    @property
    def is_video(self) -> bool:
        return self.transfer_syntax in MPEG_TRANSFER_SYNTAXES

    @property
    def number_of_frames(self) -> int:
        """Number of Frames, or 1 for single-frame objects that leave it out."""
        value = self.dataset.get("NumberOfFrames")
        return 1 if value is None or value == "" else int(value)


@dataclass(frozen=True)
class Fragments:
    """The items of encapsulated pixel data: Basic Offset Table entries and (offset, length) of each fragment."""

    offset_table: list[int]
    spans: list[tuple[int, int]]


def read_dicom(file: InputFile | Path) -> DicomObject:
    """Read the header of a DICOM file and locate its Pixel Data element; refuse files without one."""
    file = InputFile.of(file)
    path = file.name
    try:
        with file.open() as stream, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom's notes on odd values; what matters is raised below
            dataset = pydicom.dcmread(stream, stop_before_pixels=True)
            for _ in dataset:  # converts every element now, so malformed values fail here, not mid-run
                pass
            element_offset = stream.tell()
            header = stream.read(12)
            file_size = stream.seek(0, 2)
        if file.path is None:
            dataset.filename = None  # not the closed stream, so that the source pickles for decoding workers
    except SurgVLPError:
        raise
    except OSError as error:
        raise SurgVLPError(f"{path}: cannot read file: {error.strerror or error}") from error
    except Exception as error:  # pydicom reports malformed input with many exception types
        raise SurgVLPError(f"{path}: not a readable DICOM file (corrupt or truncated?): {error}") from error
    transfer_syntax = UID(getattr(dataset.file_meta, "TransferSyntaxUID", "") or "")
    if not transfer_syntax:
        raise SurgVLPError(f"{path}: DICOM file meta information has no Transfer Syntax UID")
    big_endian = transfer_syntax == pydicom.uid.ExplicitVRBigEndian
    implicit = transfer_syntax == pydicom.uid.ImplicitVRLittleEndian
    order = ">" if big_endian else "<"
    if len(header) < 8 or struct.unpack(order + "HH", header[:4]) != _PIXEL_DATA_TAG:
        sop_class = uid_name(dataset.get("SOPClassUID", ""))
        if "Image" in sop_class:
            raise SurgVLPError(f"{path}: {sop_class} instance ends before its pixel data: truncated?")
        raise SurgVLPError(f"{path}: {sop_class} instance has no pixel data: it is not an image or a video")
    if implicit:
        (length,) = struct.unpack("<I", header[4:8])
        value_offset = element_offset + 8
    else:
        if len(header) < 12:
            raise SurgVLPError(f"{path}: truncated in the Pixel Data element header")
        (length,) = struct.unpack(order + "I", header[8:12])
        value_offset = element_offset + 12
    if length == _UNDEFINED_LENGTH:
        pixel_length = None
    else:
        pixel_length = length
        if value_offset + length > file_size:
            raise SurgVLPError(
                f"{path}: truncated: pixel data needs {length} bytes but only {file_size - value_offset} are present"
            )
    return DicomObject(file, dataset, transfer_syntax, value_offset, pixel_length)


def read_fragments(dicom: DicomObject) -> Fragments:
    """Walk the item headers of encapsulated pixel data (values are skipped, not read)."""
    path = dicom.name
    if dicom.pixel_length is not None:
        raise SurgVLPError(f"{path}: pixel data is not encapsulated although {dicom.transfer_syntax_name} requires it")
    offset_table: list[int] | None = None
    spans: list[tuple[int, int]] = []
    with dicom.file.open() as stream:
        file_size = stream.seek(0, 2)
        position = dicom.pixel_offset
        while True:
            stream.seek(position)
            header = stream.read(8)
            if len(header) < 8:
                raise SurgVLPError(f"{path}: truncated: encapsulated pixel data ends without a sequence delimiter")
            group, element, length = struct.unpack("<HHI", header)
            if (group, element) == _SEQUENCE_DELIMITER:
                break
            if (group, element) != _ITEM or length == _UNDEFINED_LENGTH:
                raise SurgVLPError(f"{path}: corrupt encapsulated pixel data at byte {position}")
            start = position + 8
            if start + length > file_size:
                raise SurgVLPError(
                    f"{path}: truncated: a pixel data fragment needs {length} bytes, "
                    f"only {file_size - start} are present"
                )
            if offset_table is None:
                offset_table = list(struct.unpack(f"<{length // 4}I", stream.read(length)))
            else:
                spans.append((start, length))
            position = start + length
    if not spans:
        raise SurgVLPError(f"{path}: encapsulated pixel data holds no fragments")
    return Fragments(offset_table or [], spans)


def frame_times(dataset: Dataset, count: int) -> np.ndarray | None:
    """Frame times in seconds from Frame Time Vector, Frame Time, Cine Rate or Recommended Display Frame Rate."""
    vector = dataset.get("FrameTimeVector")
    if vector is not None and len(vector) == count:
        increments = np.asarray(vector, dtype=np.float64) / 1000.0
        times = np.cumsum(increments)
        return times - times[0]
    for keyword, seconds_per_frame in (
        ("FrameTime", lambda value: value / 1000.0),
        ("CineRate", lambda value: 1.0 / value),
        ("RecommendedDisplayFrameRate", lambda value: 1.0 / value),
    ):
        value = dataset.get(keyword)
        if value is not None and value != "" and float(value) > 0:
            return np.arange(count) * seconds_per_frame(float(value))
    return None


def dicom_details(dicom: DicomObject) -> dict[str, Any]:
    """The identifiers a timeline records so that results can be filed back against the PACS object."""
    dataset = dicom.dataset
    return {
        "study_instance_uid": str(dataset.get("StudyInstanceUID", "")),
        "series_instance_uid": str(dataset.get("SeriesInstanceUID", "")),
        "sop_instance_uid": str(dataset.get("SOPInstanceUID", "")),
        "sop_class_uid": str(dataset.get("SOPClassUID", "")),
        "modality": str(dataset.get("Modality", "")),
        "transfer_syntax_uid": str(dicom.transfer_syntax),
        "transfer_syntax": dicom.transfer_syntax_name,
    }

