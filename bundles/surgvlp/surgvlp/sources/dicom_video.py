"""DICOM video instances (Video Endoscopic / Photographic / Microscopic and any other SOP class) whose
pixel data is an MPEG-2, MPEG-4 AVC/H.264 or HEVC/H.265 stream.

The stream in the fragment(s) goes to PyAV as it is (PS3.5 allows an MP4 or MPEG-TS container, and
older writers store elementary streams). Times come from the stream's timestamps; an elementary
stream has none, and then the DICOM timing attributes (Frame Time Vector, Frame Time, Cine Rate) time it.
"""

from __future__ import annotations

from typing import Any, BinaryIO

import av
import numpy as np

from surgvlp.sources.dicom_file import DicomObject, dicom_details, frame_times, read_fragments
from surgvlp.sources.fragment_stream import FragmentStream
from surgvlp.sources.video import VideoSource


class DicomVideoSource(VideoSource):
    kind = "dicom_video"

    def __init__(self, dicom: DicomObject, *, fps: float | None, start: float | None, end: float | None) -> None:
        self._dicom = dicom
        self._spans = read_fragments(dicom).spans
        super().__init__(dicom.file, fps=fps, start=start, end=end)

    def _input(self) -> BinaryIO:
        return FragmentStream(self._dicom.file.open(), self._spans)

    def _untimed_frame_times(self, count: int, stream: av.video.stream.VideoStream) -> np.ndarray:
        times = frame_times(self._dicom.dataset, count)
        return super()._untimed_frame_times(count, stream) if times is None else times

    def _details(self) -> dict[str, Any]:
        return {**super()._details(), **dicom_details(self._dicom)}
