"""Multi-frame (and single-frame) DICOM images: native pixel data or 8-bit JPEG / JPEG 2000 fragments.

Frames are read one at a time from their byte range in the file, so a long cine never has to fit in
memory. Native frames need 8 bits per sample (what endoscopy and visible-light cameras produce);
JPEG and JPEG 2000 frames are decoded by Pillow, which applies the colour transform the codestream
declares (JFIF/Adobe markers, JPEG 2000 multi-component transform).
"""

from __future__ import annotations

import io
from collections.abc import Generator
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from pydicom.pixel_data_handlers.util import convert_color_space

from surgvlp.errors import SurgVLPError
from surgvlp.sources.base import FrameSource
from surgvlp.sources.dicom_file import (
    IMAGE_TRANSFER_SYNTAXES,
    NATIVE_TRANSFER_SYNTAXES,
    DicomObject,
    Fragments,
    dicom_details,
    frame_times,
    read_fragments,
)
from surgvlp.sources.identity import content_id, file_fingerprint
from surgvlp.sources.images import decode_rgb

_NATIVE_PHOTOMETRICS = frozenset({"RGB", "YBR_FULL", "MONOCHROME1", "MONOCHROME2"})


class DicomFrameDecoder:
    """Decodes the frames of one DICOM object's image pixel data to (H, W, 3) uint8 RGB."""

    def __init__(self, dicom: DicomObject) -> None:
        dataset = dicom.dataset
        self.path = dicom.path
        if "Rows" not in dataset or "Columns" not in dataset:
            raise SurgVLPError(f"{self.path}: image has no Rows/Columns")
        self.frame_size = (int(dataset.Rows), int(dataset.Columns))
        self._samples = int(dataset.get("SamplesPerPixel", 1))
        self._photometric = str(dataset.get("PhotometricInterpretation", "")).strip()
        self._planar = int(dataset.get("PlanarConfiguration", 0) or 0)
        count = dicom.number_of_frames
        if dicom.transfer_syntax in NATIVE_TRANSFER_SYNTAXES:
            bits = int(dataset.get("BitsAllocated", 0))
            if bits != 8 or self._photometric not in _NATIVE_PHOTOMETRICS:
                raise SurgVLPError(
                    f"{self.path}: {bits}-bit {self._photometric or 'unknown'} pixel data is not supported; "
                    "frame sources read 8-bit RGB, YBR_FULL or MONOCHROME images"
                )
            self._frame_bytes = self.frame_size[0] * self.frame_size[1] * self._samples
            if dicom.pixel_length < count * self._frame_bytes:
                raise SurgVLPError(
                    f"{self.path}: truncated: {count} frames need {count * self._frame_bytes} bytes of pixel data, "
                    f"found {dicom.pixel_length}"
                )
            self._spans = [[(dicom.pixel_offset + i * self._frame_bytes, self._frame_bytes)] for i in range(count)]
            self._convert = self._native
        elif dicom.transfer_syntax in IMAGE_TRANSFER_SYNTAXES:
            self._spans = _frame_spans(read_fragments(dicom), count, self.path)
            self._convert = self._pillow
        else:
            raise SurgVLPError(
                f"{self.path}: unsupported transfer syntax {dicom.transfer_syntax} ({dicom.transfer_syntax_name}); "
                "convert it to an uncompressed syntax first (for example `gdcmconv --raw IN OUT`)"
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
            grey = samples.reshape(rows, columns)
            grey = 255 - grey if self._photometric == "MONOCHROME1" else grey
            return np.repeat(grey[:, :, None], 3, axis=2)
        if self._planar == 1:
            image = samples.reshape(3, rows, columns).transpose(1, 2, 0)
        else:
            image = samples.reshape(rows, columns, 3)
        if self._photometric == "YBR_FULL":
            return convert_color_space(image, "YBR_FULL", "RGB")
        return image.copy()

    def _pillow(self, data: bytes, frame: int) -> np.ndarray:
        return decode_rgb(io.BytesIO(data), self.frame_size, f"{self.path} frame {frame}")


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
                    f"{dicom.path}: {count} frames but no frame timing (Frame Time, Frame Time Vector or Cine Rate)"
                )
            times = np.zeros(1)
        if np.any(np.diff(times) <= 0):
            raise SurgVLPError(f"{dicom.path}: frame times do not increase (check Frame Time Vector)")
        super().__init__(
            dicom.path,
            times=times,
            indices=np.arange(count),
            native_fps=None,
            frame_size=self._decoder.frame_size,
            fps=fps,
            start=start,
            end=end,
        )

    def _decode(self, positions: np.ndarray) -> Generator[np.ndarray, None, None]:
        with open(self.path, "rb") as stream:
            for position in positions:
                yield self._decoder.read(stream, int(position))

    def _content_id(self) -> str:
        return content_id(file_fingerprint(self.path))

    def _details(self) -> dict[str, Any]:
        return {**dicom_details(self._dicom), "number_of_frames": self._dicom.number_of_frames}


def _frame_spans(fragments: Fragments, count: int, path: Path) -> list[list[tuple[int, int]]]:
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
