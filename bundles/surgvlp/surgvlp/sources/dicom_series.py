"""A folder holding one DICOM series of single-frame instances (endoscopy stills, exported frames).

Instances are ordered by Instance Number when every instance has a distinct one, else by acquisition
time, else by file name (natural order). Frame times come, in this order, from the ``folder_fps``
argument, from the acquisition times (Acquisition DateTime, Acquisition Date/Time or Content Date/Time,
when every instance has one and they increase), or from 1 frame per second.
"""

from __future__ import annotations

import datetime
from collections.abc import Generator
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.valuerep import DA, DT, TM

from surgvlp.errors import SurgVLPError
from surgvlp.sources.base import FrameSource
from surgvlp.sources.dicom_file import DicomObject, read_dicom
from surgvlp.sources.dicom_frames import DicomFrameDecoder
from surgvlp.sources.frame_folder import DEFAULT_FOLDER_FPS
from surgvlp.sources.identity import content_id, files_fingerprint


class DicomSeriesSource(FrameSource):
    kind = "dicom_series"

    def __init__(
        self,
        folder: Path,
        files: list[Path],
        *,
        folder_fps: float | None,
        fps: float | None,
        start: float | None,
        end: float | None,
    ) -> None:
        instances = [read_dicom(path) for path in files]
        series = {str(dicom.dataset.get("SeriesInstanceUID", "")) for dicom in instances}
        if len(series) > 1:
            raise SurgVLPError(
                f"{folder}: holds {len(series)} DICOM series; point to a folder with one series "
                "(or to a single multi-frame or video file)"
            )
        for dicom in instances:
            if dicom.number_of_frames > 1 or dicom.is_video:
                raise SurgVLPError(
                    f"{dicom.path}: is a multi-frame or video instance inside a series folder; open that file directly"
                )
        instances, acquired = _ordered(instances)
        if folder_fps is not None:
            times = np.arange(len(instances)) / folder_fps
        elif acquired is not None and np.all(np.diff(acquired) > 0):
            times = acquired - acquired[0]
        else:
            times = np.arange(len(instances)) / DEFAULT_FOLDER_FPS
        self._instances = instances
        self._decoders = [DicomFrameDecoder(dicom) for dicom in instances]
        sizes = {decoder.frame_size for decoder in self._decoders}
        if len(sizes) > 1:
            raise SurgVLPError(f"{folder}: instances have different frame sizes {sorted(sizes)}")
        super().__init__(
            folder,
            times=times,
            indices=np.arange(len(instances)),
            native_fps=folder_fps,
            frame_size=self._decoders[0].frame_size,
            fps=fps,
            start=start,
            end=end,
        )

    def _decode(self, positions: np.ndarray) -> Generator[np.ndarray, None, None]:
        for position in positions:
            with self._instances[position].file.open() as stream:
                yield self._decoders[position].read(stream, 0)

    def _content_id(self) -> str:
        return content_id(files_fingerprint([dicom.path for dicom in self._instances]), self._times.tobytes())

    def _details(self) -> dict[str, Any]:
        first = self._instances[0].dataset
        return {
            "study_instance_uid": str(first.get("StudyInstanceUID", "")),
            "series_instance_uid": str(first.get("SeriesInstanceUID", "")),
            "modality": str(first.get("Modality", "")),
            "instance_count": len(self._instances),
        }


def _ordered(instances: list[DicomObject]) -> tuple[list[DicomObject], np.ndarray | None]:
    """Instances in series order, and their acquisition times in seconds (None unless all have one)."""
    seconds = [_acquisition_seconds(dicom.dataset) for dicom in instances]
    acquired = None if None in seconds else np.asarray(seconds, dtype=np.float64)
    numbers = [dicom.dataset.get("InstanceNumber") for dicom in instances]
    if None not in numbers and len({int(number) for number in numbers}) == len(numbers):
        order = np.argsort([int(number) for number in numbers], kind="stable")
    elif acquired is not None:
        order = np.argsort(acquired, kind="stable")
    else:
        order = np.arange(len(instances))
    return [instances[i] for i in order], None if acquired is None else acquired[order]


def _acquisition_seconds(dataset: Dataset) -> float | None:
    """Seconds since the epoch (or since midnight when only a time is known) of the frame's acquisition."""
    try:
        if dataset.get("AcquisitionDateTime"):
            return DT(dataset.AcquisitionDateTime).timestamp()
        for date_keyword, time_keyword in (("AcquisitionDate", "AcquisitionTime"), ("ContentDate", "ContentTime")):
            if dataset.get(time_keyword):
                moment = TM(dataset.get(time_keyword))
                day = DA(dataset.get(date_keyword)) if dataset.get(date_keyword) else datetime.date(1970, 1, 1)
                return datetime.datetime.combine(day, moment).timestamp()
    except ValueError:
        return None
    return None
