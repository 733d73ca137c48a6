"""Frame volumes: the server's NRRD of sampled video frames as a (T, H, W, 3) array and its geometry.

The server sends the frames it scored as one NRRD RGB volume (``sizes: 3 W H T``, kinds
``RGB-color domain domain domain``), which Slicer can show without a video decoder. Frame ``k`` is slice
``k``. The geometry places pixel (column, row) so that the video appears upright and unmirrored in
Slicer's axial view: column to patient left, row to posterior, which is the identity in LPS space; that
is also what a file without a ``space`` field gets.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .errors import ClientError
from .nrrd import NrrdImage, format_vector, read_nrrd, write_nrrd

_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])
_SPACES = {"left-posterior-superior": _LPS_TO_RAS, "LPS": _LPS_TO_RAS,
           "right-anterior-superior": np.eye(3), "RAS": np.eye(3)}
_COLOUR_KINDS = ("RGB-color", "3-color", "vector", "3-vector", "list")


@dataclass
class Geometry:
    """Where voxel (i, j, k) lies, in LPS millimetres: ``origin + directions @ (i, j, k)``.

    ``directions`` holds one column per voxel axis (its length is the spacing), as NRRD's
    ``space directions`` lists them.
    """

    origin: np.ndarray = field(default_factory=lambda: np.zeros(3))
    directions: np.ndarray = field(default_factory=lambda: np.eye(3))

    def ijk_to_ras(self) -> np.ndarray:
        """The 4x4 matrix Slicer's ``SetIJKToRASMatrix`` takes."""
        matrix = np.eye(4)
        matrix[:3, :3] = _LPS_TO_RAS @ self.directions
        matrix[:3, 3] = _LPS_TO_RAS @ self.origin
        return matrix

    def nrrd_fields(self, leading_axes: int) -> dict[str, str]:
        """``space``, ``space directions`` and ``space origin``, with ``none`` for non-spatial leading axes."""
        columns = " ".join(format_vector(self.directions[:, axis]) for axis in range(3))
        return {
            "space": "left-posterior-superior",
            "space directions": " ".join(["none"] * leading_axes + [columns]),
            "space origin": format_vector(self.origin),
        }

    @classmethod
    def from_nrrd(cls, image: NrrdImage, origin: str) -> Geometry:
        """The geometry of the last three (spatial) axes; a file without ``space`` gets the default."""
        space = image.fields.get("space")
        if space is None:
            return cls()
        if space not in _SPACES:
            raise ClientError(f"{origin}: NRRD space {space!r} is not supported")
        to_lps = _LPS_TO_RAS @ _SPACES[space]  # both are their own inverse
        vectors = [vector for vector in image.vector("space directions") if vector is not None]
        offset = image.vector("space origin")
        if len(vectors) != 3 or any(len(vector) != 3 for vector in vectors) or len(offset) > 1:
            raise ClientError(f"{origin}: NRRD space directions or origin are not three 3D vectors")
        directions = to_lps @ np.array(vectors, dtype=np.float64).T
        return cls(to_lps @ np.array(offset[0] if offset else [0.0, 0.0, 0.0], dtype=np.float64), directions)


@dataclass
class FrameVolume:
    """Sampled frames, (T, H, W, 3) uint8, and where Slicer places them."""

    frames: np.ndarray
    geometry: Geometry = field(default_factory=Geometry)

    def __post_init__(self) -> None:
        frames = np.asarray(self.frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ClientError(f"frames must be a (T, H, W, 3) uint8 array, got {frames.shape} {frames.dtype}")
        self.frames = frames

    @property
    def count(self) -> int:
        return self.frames.shape[0]

    def to_nrrd(self) -> bytes:
        fields = {"kinds": "RGB-color domain domain domain", **self.geometry.nrrd_fields(leading_axes=1)}
        return write_nrrd(NrrdImage(self.frames, fields))

    @classmethod
    def from_nrrd(cls, data: bytes, origin: str = "frames volume") -> FrameVolume:
        image = read_nrrd(data, origin)
        kinds = image.fields.get("kinds", "RGB-color domain domain domain").split()
        if image.data.ndim != 4 or image.sizes[0] != 3 or kinds[0] not in _COLOUR_KINDS:
            raise ClientError(f"{origin}: not an RGB frame volume (sizes {list(image.sizes)}, kinds {kinds})")
        if image.data.dtype != np.uint8:
            raise ClientError(f"{origin}: frame pixels must be 8-bit, got {image.data.dtype}")
        return cls(image.data, Geometry.from_nrrd(image, origin))
