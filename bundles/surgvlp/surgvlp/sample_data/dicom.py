"""Writing DICOM video (a stream wrapped in one fragment) and multi-frame true colour images.

pydicom writes the data set; the Pixel Data element is then appended by streaming, so neither a long
video nor a long cine is ever held in memory. Identifiers are derived from a seed, so the same sample
case always gets the same UIDs (under pydicom's UID root), as every other output of the sample command.
"""

from __future__ import annotations

import os
import struct
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import av
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import UID, generate_uid

from surgvlp.errors import SurgVLPError
from surgvlp.sources import open_source
from surgvlp.sources.dicom_uids import (
    H264_HIGH_LEVEL_4_1,
    HEVC_MAIN_LEVEL_5_1,
    MPEG2_MAIN_LEVEL,
    MULTIFRAME_TRUE_COLOR_SC_IMAGE_STORAGE,
    VIDEO_ENDOSCOPIC_IMAGE_STORAGE,
)
from surgvlp.sources.identity import file_fingerprint

VIDEO_ENDOSCOPIC_IOD_ATTRIBUTES = {
    "Patient": {"PatientName": "2", "PatientID": "2", "PatientBirthDate": "2", "PatientSex": "2"},
    "General Study": {
        "StudyInstanceUID": "1",
        "StudyDate": "2",
        "StudyTime": "2",
        "ReferringPhysicianName": "2",
        "StudyID": "2",
        "AccessionNumber": "2",
    },
    "General Series": {"Modality": "1", "SeriesInstanceUID": "1", "SeriesNumber": "2"},
    "General Equipment": {"Manufacturer": "2"},
    "General Image": {"InstanceNumber": "2", "PatientOrientation": "2C", "ContentDate": "2C", "ContentTime": "2C"},
    "Cine": {"FrameTime": "1C"},
    "Multi-frame": {"NumberOfFrames": "1", "FrameIncrementPointer": "1"},
    "Image Pixel": {
        "SamplesPerPixel": "1",
        "PhotometricInterpretation": "1",
        "Rows": "1",
        "Columns": "1",
        "BitsAllocated": "1",
        "BitsStored": "1",
        "HighBit": "1",
        "PixelRepresentation": "1",
        "PlanarConfiguration": "1C",
        "PixelData": "1C",
    },
    "Acquisition Context": {"AcquisitionContextSequence": "2"},
    "VL Image": {
        "ImageType": "1",
        "LossyImageCompression": "2",
        "LossyImageCompressionRatio": "1C",
        "LossyImageCompressionMethod": "1C",
        "AnatomicRegionSequence": "1C",
    },
    "SOP Common": {"SOPClassUID": "1", "SOPInstanceUID": "1"},
}
"""Type 1 and 2 attributes of the Video Endoscopic Image IOD (PS3.3 A.32.7) by module, with the type 1C / 2C
ones whose condition holds for a cine of lossy MPEG frames timed by Frame Time (Patient Orientation: no
Image Plane module; Content Date/Time: temporally related frames; Anatomic Region: an endoscopic image)."""

_VIDEO_SYNTAXES = {  # codec -> (profiles accepted, highest level_idc, transfer syntax, compression method)
    "h264": ({"High", "Main", "Constrained Baseline"}, 41, H264_HIGH_LEVEL_4_1, "ISO_14496_10"),
    "hevc": ({"Main"}, 153, HEVC_MAIN_LEVEL_5_1, "ISO_23008_2"),
    "mpeg2video": ({"Main"}, 8, MPEG2_MAIN_LEVEL, "ISO_13818_2"),
}
"""What a stream must be for each transfer syntax this package writes. H.264 level 4.1 is level_idc 41,
HEVC level 5.1 is 153 (30 x 5.1); MPEG-2 Main Level is level 8 and is limited to 720 x 576."""

_SYNTHETIC_DATE, _SYNTHETIC_TIME = "20240101", "080000"


@dataclass(frozen=True)
class CaseIdentity:
    """Patient, study and series identifiers shared by every DICOM object of one sample case."""

    seed: int

    def uid(self, role: str) -> UID:
        return generate_uid(entropy_srcs=["surgvlp-sample-case", str(self.seed), role])

    def base_dataset(self, sop_class: UID, series: str, series_number: int) -> Dataset:
        dataset = Dataset()
        dataset.SpecificCharacterSet = "ISO_IR 192"
        dataset.SOPClassUID = sop_class
        dataset.SOPInstanceUID = self.uid(f"instance-{series}")
        dataset.PatientName = "Synthetic^Laparoscopy"
        dataset.PatientID = f"SURGVLP-SAMPLE-{self.seed}"
        dataset.PatientBirthDate = ""
        dataset.PatientSex = "O"
        dataset.StudyInstanceUID = self.uid("study")
        dataset.StudyDate = dataset.ContentDate = dataset.SeriesDate = _SYNTHETIC_DATE
        dataset.StudyTime = dataset.ContentTime = dataset.SeriesTime = _SYNTHETIC_TIME
        dataset.ReferringPhysicianName = ""
        dataset.StudyID = "1"
        dataset.AccessionNumber = ""
        dataset.StudyDescription = "Synthetic laparoscopic cholecystectomy (surgvlp sample-data)"
        dataset.Modality = "ES"
        dataset.SeriesInstanceUID = self.uid(f"series-{series}")
        dataset.SeriesNumber = series_number
        dataset.SeriesDescription = series
        dataset.BodyPartExamined = "ABDOMEN"
        dataset.Manufacturer = "SurgVLP synthetic sample"
        dataset.InstanceNumber = 1
        dataset.PatientOrientation = ""
        dataset.BurnedInAnnotation = "NO"
        region = Dataset()
        region.CodeValue, region.CodingSchemeDesignator, region.CodeMeaning = "818981001", "SCT", "Abdomen"
        dataset.AnatomicRegionSequence = Sequence([region])
        return dataset


def video_endoscopic_dataset(identity: CaseIdentity, video: Path) -> Dataset:
    """A Video Endoscopic Image data set describing the stream in ``video`` (without its pixel data)."""
    source = open_source(video, fps=None)
    (height, width), frame_count, rate = source.frame_size, source.frame_count, source.native_fps
    syntax, method = _video_syntax(video, width, height)
    dataset = identity.base_dataset(VIDEO_ENDOSCOPIC_IMAGE_STORAGE, "endoscope video", 1)
    dataset.SOPInstanceUID = identity.uid(f"video-{file_fingerprint(video).hex()}")  # one per stream
    dataset.ImageType = ["ORIGINAL", "PRIMARY"]
    frame_time = 1000.0 / rate
    dataset.NumberOfFrames = frame_count
    dataset.FrameIncrementPointer = pydicom.tag.Tag("FrameTime")
    dataset.FrameTime = f"{frame_time:.6g}"
    dataset.CineRate = round(rate)
    dataset.RecommendedDisplayFrameRate = round(rate)
    dataset.StartTrim = 1
    dataset.StopTrim = frame_count
    dataset.PreferredPlaybackSequencing = 0
    dataset.ActualFrameDuration = round(frame_time)
    _set_pixel_module(dataset, width, height, "YBR_PARTIAL_420")
    raw_bytes = frame_count * width * height * 3
    dataset.LossyImageCompression = "01"
    dataset.LossyImageCompressionRatio = f"{raw_bytes / video.stat().st_size:.4g}"
    dataset.LossyImageCompressionMethod = method
    dataset.AcquisitionContextSequence = Sequence()
    _set_file_meta(dataset, UID(syntax))
    return dataset


def multiframe_dataset(identity: CaseIdentity, width: int, height: int, frame_count: int, fps: float) -> Dataset:
    """A Multi-frame True Color Secondary Capture data set for uncompressed RGB frames at ``fps``."""
    dataset = identity.base_dataset(MULTIFRAME_TRUE_COLOR_SC_IMAGE_STORAGE, "endoscope frames", 2)
    dataset.ConversionType = "SYN"
    dataset.ImageType = ["DERIVED", "SECONDARY"]
    dataset.NumberOfFrames = frame_count
    dataset.FrameIncrementPointer = pydicom.tag.Tag("FrameTime")
    dataset.FrameTime = f"{1000.0 / fps:.6g}"
    _set_pixel_module(dataset, width, height, "RGB")
    _set_file_meta(dataset, pydicom.uid.ExplicitVRLittleEndian)
    return dataset


def write_dicom(dataset: Dataset, path: Path, pixel_chunks: Iterable[bytes], length: int | None) -> None:
    """Write ``dataset`` and then its Pixel Data from ``pixel_chunks``.

    ``length`` is the byte count of native pixel data; ``None`` encapsulates the chunks as one fragment
    (behind an empty Basic Offset Table), as PS3.5 asks of MPEG video, whose length is then measured.
    The file appears at ``path`` only once complete.
    """
    path = Path(path)
    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex}.partial")
    try:
        with open(partial, "wb") as stream:
            pydicom.dcmwrite(stream, dataset, write_like_original=False)
            if length is None:
                _write_fragment(stream, pixel_chunks, path)
            else:
                stream.write(struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OB", 0, length + length % 2))
                written = sum(stream.write(chunk) for chunk in pixel_chunks)
                if written != length:
                    raise ValueError(f"pixel data is {written} bytes, expected {length}")
                stream.write(b"\0" * (length % 2))
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def _write_fragment(stream: BinaryIO, chunks: Iterable[bytes], path: Path) -> None:
    """Encapsulated Pixel Data: an empty Basic Offset Table, one fragment, the sequence delimiter."""
    stream.write(struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OB", 0, 0xFFFFFFFF))
    stream.write(struct.pack("<HHI", 0xFFFE, 0xE000, 0))
    fragment_header = stream.tell()
    stream.write(struct.pack("<HHI", 0xFFFE, 0xE000, 0))
    size = sum(stream.write(chunk) for chunk in chunks)
    if size + size % 2 >= 0xFFFFFFFF:
        raise SurgVLPError(f"{path}: a stream of {size} bytes does not fit in one DICOM fragment (4 GiB)")
    stream.write(b"\0" * (size % 2))
    stream.write(struct.pack("<HHI", 0xFFFE, 0xE0DD, 0))
    stream.seek(fragment_header)
    stream.write(struct.pack("<HHI", 0xFFFE, 0xE000, size + size % 2))


def wrap_video(video: Path, dicom: Path, identity: CaseIdentity) -> Dataset:
    """Store the stream file ``video`` (MP4, MPEG-TS/PS or elementary) as a Video Endoscopic Image at ``dicom``."""
    dataset = video_endoscopic_dataset(identity, video)
    with open(video, "rb") as stream:
        write_dicom(dataset, dicom, iter(lambda: stream.read(1 << 20), b""), length=None)
    return dataset


def _video_syntax(video: Path, width: int, height: int) -> tuple[str, str]:
    """The transfer syntax and compression method for the stream, if DICOM has one for it."""
    with av.open(str(video)) as container:
        context = container.streams.video[0].codec_context
        codec, profile, level = context.name, context.profile, context.level
    if codec not in _VIDEO_SYNTAXES:
        raise SurgVLPError(f"{video}: {codec} video cannot be stored as DICOM; encode it as H.264, HEVC or MPEG-2")
    profiles, max_level, syntax, method = _VIDEO_SYNTAXES[codec]
    if profile not in profiles or level > max_level:
        raise SurgVLPError(
            f"{video}: {codec} {profile} profile at level {level} is outside what DICOM transfer syntax "
            f"{syntax} allows ({', '.join(sorted(profiles))} up to level {max_level})"
        )
    if codec == "mpeg2video" and (width > 720 or height > 576):
        raise SurgVLPError(f"{video}: MPEG-2 Main Level allows at most 720x576, the video is {width}x{height}")
    return syntax, method


def _set_pixel_module(dataset: Dataset, width: int, height: int, photometric: str) -> None:
    dataset.SamplesPerPixel = 3
    dataset.PhotometricInterpretation = photometric
    dataset.PlanarConfiguration = 0
    dataset.Rows = height
    dataset.Columns = width
    dataset.BitsAllocated = 8
    dataset.BitsStored = 8
    dataset.HighBit = 7
    dataset.PixelRepresentation = 0


def _set_file_meta(dataset: Dataset, transfer_syntax: UID) -> None:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = dataset.SOPClassUID
    meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    meta.TransferSyntaxUID = transfer_syntax
    meta.ImplementationClassUID = generate_uid(entropy_srcs=["surgvlp"])
    meta.ImplementationVersionName = "SURGVLP"
    dataset.file_meta = meta
    dataset.is_little_endian = True
    dataset.is_implicit_VR = False
