"""The files of a segmentation: ``.seg.nrrd`` that Slicer opens as a segmentation, NIfTI, and a JSON of the rest.

The label volume has one slice per sampled frame. Both image files use the same grid: voxel (i, j, k) is
column i, row j of frame k, one millimetre per pixel and per frame, origin 0, axes along LPS: the grid of
:func:`surgvlp.sources.frame_volume.write_frame_volume` (the MONAI Label app's ``surgvlp_frames``), so the
frames lie exactly under the masks and appear upright in Slicer's axial view. Frame times are in the JSON, not in the grid. A Slicer segmentation
stores arrays as (i, j, k), that is (W, H, T): the (T, H, W) labels are written transposed.

The ``.seg.nrrd`` holds one segment, named after the text, with a colour derived from it (the same text gets
the same colour in every file), and says in its header and the segment's tags which mode drew it and whether
the models were untrained, so that the file alone is honest about what it is.
"""

from __future__ import annotations

import colorsys
import hashlib
import json as json_module
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from surgvlp.atomic import atomic_paths
from surgvlp.errors import SurgVLPError

if TYPE_CHECKING:
    from surgvlp.segmentation.result import Segmentation

IJK_TO_LPS = np.eye(4)
SEGMENT_ID = "target"
COMPRESSION_LEVEL = 1
"""gzip level of the .seg.nrrd: masks are mostly zeros, which the fastest level already packs tightly."""
SEG_NRRD_SUFFIXES = (".seg.nrrd", ".nrrd")
NIFTI_SUFFIXES = (".nii.gz", ".nii")


def segment_colour(text: str) -> list[float]:
    """A saturated RGB colour (0..1) chosen by the text, stable across runs and machines."""
    hue = int.from_bytes(hashlib.sha256(text.strip().lower().encode()).digest()[:2], "big") / 65536
    return [round(channel, 4) for channel in colorsys.hsv_to_rgb(hue, 0.75, 0.95)]


def _suffix(path: Path, allowed: tuple[str, ...], option: str) -> str:
    for suffix in allowed:
        if path.name.lower().endswith(suffix):
            return suffix
    raise SurgVLPError(f"{option} {path}: name it {' or '.join('*' + suffix for suffix in allowed)}")


def check_output_names(seg_nrrd: Path | None = None, nifti: Path | None = None) -> None:
    """Refuse, before any work, a ``.seg.nrrd`` or NIfTI output whose name says another format."""
    if seg_nrrd is not None:
        _suffix(Path(seg_nrrd), SEG_NRRD_SUFFIXES, "--out")
    if nifti is not None:
        _suffix(Path(nifti), NIFTI_SUFFIXES, "--nifti")


# Each writer fills the path it is given; write_outputs gives them temporary files beside their targets.


def write_seg_nrrd(segmentation: Segmentation, path: Path) -> None:
    """The label volume as a Slicer segmentation of one segment, written by slicerio."""
    import slicerio

    voxels = segmentation.labels.transpose(2, 1, 0) != 0
    untrained = "true" if segmentation.untrained else "false"
    volume = slicerio.create_segmentation(voxels.shape, IJK_TO_LPS)
    slicerio.add_segment(
        volume,
        voxels,
        {
            "id": SEGMENT_ID,
            "name": segmentation.text,
            "color": segment_colour(segmentation.text),
            "tags": {"SurgVLP.Mode": segmentation.mode, "SurgVLP.Untrained": untrained},
        },
    )
    volume["SurgVLP_Mode"] = segmentation.mode
    volume["SurgVLP_Untrained"] = untrained
    slicerio.write_segmentation(str(path), volume, compression_level=COMPRESSION_LEVEL)


def write_nifti(segmentation: Segmentation, path: Path, suffix: str) -> None:
    """The label volume as NIfTI on the same grid; ``suffix`` (``.nii`` or ``.nii.gz``) is the target's.

    SimpleITK picks the format and the compression by the file name, so it writes a sibling named with the
    target's suffix, which then replaces ``path`` (a temporary file of :func:`surgvlp.atomic.atomic_paths`).
    """
    import SimpleITK as sitk

    named = path.with_name(path.name + suffix)
    try:
        sitk.WriteImage(sitk.GetImageFromArray(segmentation.labels), str(named), useCompression=suffix.endswith(".gz"))
        os.replace(named, path)
    finally:
        named.unlink(missing_ok=True)


def write_json(segmentation: Segmentation, path: Path) -> None:
    with open(path, "w", encoding="utf-8") as stream:
        json_module.dump(segmentation.to_dict(), stream, separators=(",", ":"))
        stream.write("\n")


def write_outputs(
    segmentation: Segmentation, *, seg_nrrd: Path | None = None, nifti: Path | None = None, json: Path | None = None
) -> None:
    """Write the outputs asked for through temporary files renamed together: all appear, or none."""
    check_output_names(seg_nrrd, nifti)
    with atomic_paths({"seg_nrrd": seg_nrrd, "nifti": nifti, "json": json}) as staged:
        if "seg_nrrd" in staged:
            write_seg_nrrd(segmentation, staged["seg_nrrd"])
        if "nifti" in staged:
            write_nifti(segmentation, staged["nifti"], _suffix(Path(nifti), NIFTI_SUFFIXES, "--nifti"))
        if "json" in staged:
            write_json(segmentation, staged["json"])
