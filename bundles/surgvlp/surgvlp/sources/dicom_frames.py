"""Multi-frame (and single-frame) DICOM images: native pixel data, or compressed frames in fragments.

Frames are read one at a time from their byte range in the file, so a long cine never has to fit in
memory. Frames need 8 bits per sample (what endoscopy and visible-light cameras produce). JPEG and
JPEG 2000 frames are decoded by Pillow, which applies the colour transform the codestream declares
(JFIF/Adobe markers, JPEG 2000 multi-component transform); every other compressed syntax goes, one
frame at a time, to whichever installed pydicom pixel-data handler decodes it (RLE Lossless needs
none but numpy; JPEG-LS or JPEG Lossless need pylibjpeg or GDCM).
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Generator
from typing import Any, BinaryIO

import numpy as np
import pydicom.config
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.pixel_data_handlers.util import convert_color_space

from surgvlp.errors import SurgVLPError
from surgvlp.sources.base import FrameSource
from surgvlp.sources.dicom_file import DicomObject, Fragments, dicom_details, frame_times, read_fragments
from surgvlp.sources.dicom_uids import NATIVE_TRANSFER_SYNTAXES, PILLOW_TRANSFER_SYNTAXES
from surgvlp.sources.identity import content_id
from surgvlp.sources.images import decode_rgb

_PHOTOMETRICS = frozenset({"RGB", "YBR_FULL", "MONOCHROME1", "MONOCHROME2"})
"""Colour models of decoded samples that become RGB here (JPEG's YBR_*_422 / YBR_ICT / YBR_RCT are Pillow's)."""

_PIXEL_MODULE = (
    "Rows",
    "Columns",
    "SamplesPerPixel",
    "PhotometricInterpretation",
    "PlanarConfiguration",
    "BitsAllocated",
    "BitsStored",
    "HighBit",
    "PixelRepresentation",
)


def pydicom_decodes(transfer_syntax: str) -> bool:
    """Whether an installed pydicom pixel-data handler decodes ``transfer_syntax`` (asked of pydicom itself)."""
    return any(
        handler.is_available() and handler.supports_transfer_syntax(transfer_syntax)
        for handler in pydicom.config.pixel_data_handlers
    )


class DicomFrameDecoder:
    """Decodes the frames of one DICOM object's image pixel data to (H, W, 3) uint8 RGB."""

    def __init__(self, dicom: DicomObject) -> None:
        dataset = dicom.dataset
        self.name = dicom.name
        if "Rows" not in dataset or "Columns" not in dataset:
            raise SurgVLPError(f"{self.name}: image has no Rows/Columns")
        self.frame_size = (int(dataset.Rows), int(dataset.Columns))
        self._samples = int(dataset.get("SamplesPerPixel", 1))
        self._photometric = str(dataset.get("PhotometricInterpretation", "")).strip()
        self._planar = int(dataset.get("PlanarConfiguration", 0) or 0)
        self._syntax = dicom.transfer_syntax
        count = dicom.number_of_frames
        syntax = f"{dicom.transfer_syntax} ({dicom.transfer_syntax_name})"
        if dicom.transfer_syntax in PILLOW_TRANSFER_SYNTAXES:
            self._spans = _frame_spans(read_fragments(dicom), count, self.name)
            self._convert = self._pillow
            return
        bits = int(dataset.get("BitsAllocated", 0))
        if bits != 8 or self._photometric not in _PHOTOMETRICS or self._samples not in (1, 3):
            raise SurgVLPError(
                f"{self.name}: {bits}-bit {self._photometric or 'unknown'} pixel data is not supported; "
                "frame sources read 8-bit RGB, YBR_FULL or MONOCHROME images"
            )
        if dicom.transfer_syntax in NATIVE_TRANSFER_SYNTAXES:
            self._frame_bytes = self.frame_size[0] * self.frame_size[1] * self._samples
            if dicom.pixel_length < count * self._frame_bytes:
                raise SurgVLPError(
                    f"{self.name}: truncated: {count} frames need {count * self._frame_bytes} bytes of pixel data, "
                    f"found {dicom.pixel_length}"
                )
            self._spans = [[(dicom.pixel_offset + i * self._frame_bytes, self._frame_bytes)] for i in range(count)]
            self._convert = self._native
        elif dicom.pixel_length is None and pydicom_decodes(dicom.transfer_syntax):  # encapsulated, compressed
            self._spans = _frame_spans(read_fragments(dicom), count, self.name)
            self._header = {keyword: dataset[keyword].value for keyword in _PIXEL_MODULE if keyword in dataset}
            self._convert = self._pydicom
        else:
            raise SurgVLPError(
                f"{self.name}: unsupported transfer syntax {syntax}: no installed pydicom pixel-data handler "
                "decodes it; install one that does (pylibjpeg or GDCM) or convert the file to an uncompressed "
                "syntax first (for example `gdcmconv --raw IN OUT`)"
            )

    def read(self, stream: BinaryIO, frame: int) -> np.ndarray:
        """The RGB image of ``frame``, read from ``stream`` (the DICOM file, opened by the caller)."""
        data = bytearray()
        for offset, length in self._spans[frame]:
            stream.seek(offset)
            data += stream.read(length)
        return self._convert(bytes(data), frame)

    def _native(self, data: bytes, frame: int) -> np.ndarray:
        rows, columns = self.frame_size
        samples = np.frombuffer(data, dtype=np.uint8)
        if self._samples == 1:
            return self._to_rgb(samples.reshape(rows, columns))
        if self._planar == 1:
            return self._to_rgb(samples.reshape(3, rows, columns).transpose(1, 2, 0))
        return self._to_rgb(samples.reshape(rows, columns, 3))

    def _pydicom(self, data: bytes, frame: int) -> np.ndarray:
        """One frame through pydicom's handlers, as a one-frame data set, so that memory holds one frame."""
        single = Dataset()
        single.file_meta = FileMetaDataset()
        single.file_meta.TransferSyntaxUID = self._syntax
        single.is_little_endian, single.is_implicit_VR = True, False
        for keyword, value in self._header.items():
            setattr(single, keyword, value)
        single.NumberOfFrames = 1
        single.PixelData = encapsulate([data])
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # pydicom's notes on odd values; a wrong frame fails below
                samples = single.pixel_array
        except Exception as error:  # each handler has its own ways of saying "corrupt"
            raise SurgVLPError(f"{self.name} frame {frame}: cannot decode (corrupt or truncated?): {error}") from error
        expected = self.frame_size if self._samples == 1 else (*self.frame_size, 3)
        if samples.shape != expected or samples.dtype != np.uint8:
            raise SurgVLPError(
                f"{self.name} frame {frame}: decoded to {samples.dtype} {samples.shape}, expected uint8 {expected}"
            )
        return self._to_rgb(samples)

    def _to_rgb(self, samples: np.ndarray) -> np.ndarray:
        """(H, W) or (H, W, 3) uint8 samples in the object's colour model -> a new (H, W, 3) RGB array."""
        if samples.ndim == 2:
            grey = 255 - samples if self._photometric == "MONOCHROME1" else samples
            return np.repeat(grey[:, :, None], 3, axis=2)
        if self._photometric == "YBR_FULL":
            return convert_color_space(samples, "YBR_FULL", "RGB")
        return samples.copy()

    def _pillow(self, data: bytes, frame: int) -> np.ndarray:
        return decode_rgb(io.BytesIO(data), self.frame_size, f"{self.name} frame {frame}")


class DicomFramesSource(FrameSource):
    """A multi-frame (or single-frame) DICOM image, timed by its Frame Time / Frame Time Vector / Cine Rate."""

    kind = "dicom_multiframe"

    def __init__(self, dicom: DicomObject, *, fps: float | None, start: float | None, end: float | None) -> None:
        self._dicom = dicom
        self._decoder = DicomFrameDecoder(dicom)
        count = dicom.number_of_frames
        times = frame_times(dicom.dataset, count)
        if times is None:
            if count > 1:
                raise SurgVLPError(
                    f"{dicom.name}: {count} frames but no frame timing (Frame Time, Frame Time Vector or Cine Rate)"
                )
            times = np.zeros(1)
        if np.any(np.diff(times) <= 0):
            raise SurgVLPError(f"{dicom.name}: frame times do not increase (check Frame Time Vector)")
        super().__init__(
            dicom.path,
            name=dicom.name,
            times=times,
            indices=np.arange(count),
            native_fps=None,
            frame_size=self._decoder.frame_size,
            fps=fps,
            start=start,
            end=end,
        )

    def _decode(self, positions: np.ndarray) -> Generator[np.ndarray, None, None]:
        with self._dicom.file.open() as stream:
            for position in positions:
                yield self._decoder.read(stream, int(position))

    def _content_id(self) -> str:
        return content_id(self._dicom.file.fingerprint())

    def _details(self) -> dict[str, Any]:
        return {**dicom_details(self._dicom), "number_of_frames": self._dicom.number_of_frames}


def _frame_spans(fragments: Fragments, count: int, path: str) -> list[list[tuple[int, int]]]:
    """Group fragments into frames: all for one frame, one each, or as the Basic Offset Table says."""
    spans = fragments.spans
    if count == 1:
        return [spans]
    if len(spans) == count:
        return [[span] for span in spans]
    if len(fragments.offset_table) == count:
        first_item = spans[0][0] - 8
        bounds = [*fragments.offset_table, float("inf")]
        return [[span for span in spans if bounds[i] <= span[0] - 8 - first_item < bounds[i + 1]] for i in range(count)]
    raise SurgVLPError(
        f"{path}: cannot tell which of the {len(spans)} pixel data fragments belong to which of the {count} frames "
        "(no Basic Offset Table)"
    )
