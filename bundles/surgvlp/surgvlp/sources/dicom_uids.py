"""The DICOM UIDs this package reads and writes, in one place: SOP classes and transfer syntaxes.

Names come from pydicom's UID dictionary, so messages use the standard's own names (PS3.6 Annex A).
"""

from __future__ import annotations

from pydicom import uid
from pydicom.uid import UID

VIDEO_ENDOSCOPIC_IMAGE_STORAGE = uid.VideoEndoscopicImageStorage
MULTIFRAME_TRUE_COLOR_SC_IMAGE_STORAGE = uid.MultiFrameTrueColorSecondaryCaptureImageStorage

VIDEO_SOP_CLASSES = frozenset(
    {VIDEO_ENDOSCOPIC_IMAGE_STORAGE, uid.VideoPhotographicImageStorage, uid.VideoMicroscopicImageStorage}
)
"""The SOP classes of DICOM video (PS3.3 A.32): an MPEG stream in the pixel data."""

MULTIFRAME_SOP_CLASSES = frozenset(
    {
        MULTIFRAME_TRUE_COLOR_SC_IMAGE_STORAGE,
        uid.MultiFrameGrayscaleByteSecondaryCaptureImageStorage,
        uid.UltrasoundMultiFrameImageStorage,
    }
)
"""Multi-frame image SOP classes whose frames are 8 bits per sample, the only depth the frame sources read."""

MPEG2_MAIN_LEVEL = uid.MPEG2MPML
H264_HIGH_LEVEL_4_1 = uid.MPEG4HP41
HEVC_MAIN_LEVEL_5_1 = uid.HEVCMP51

MPEG_TRANSFER_SYNTAXES = frozenset(
    {
        *uid.MPEGTransferSyntaxes,
        # the fragmentable variants of the MPEG-2 and H.264 syntaxes, which pydicom 2 names but does not list
        *(UID(f"{syntax}.1") for syntax in uid.MPEGTransferSyntaxes if syntax not in (uid.HEVCMP51, uid.HEVCM10P51)),
    }
)
"""Video transfer syntaxes: the encapsulated bytes are a stream (MP4, MPEG-TS/PS or elementary) for PyAV."""

NATIVE_TRANSFER_SYNTAXES = frozenset({uid.ImplicitVRLittleEndian, uid.ExplicitVRLittleEndian, uid.ExplicitVRBigEndian})

PILLOW_TRANSFER_SYNTAXES = frozenset({uid.JPEGBaseline8Bit, uid.JPEGExtended12Bit, uid.JPEG2000Lossless, uid.JPEG2000})
"""Encapsulated still-image syntaxes whose fragments Pillow decodes directly (8-bit JPEG and JPEG 2000)."""


def uid_name(value: str, unknown: str = "unknown SOP class") -> str:
    """The standard's name for ``value``, the UID itself when pydicom does not know it, ``unknown`` when empty."""
    return UID(value).name if value else unknown
