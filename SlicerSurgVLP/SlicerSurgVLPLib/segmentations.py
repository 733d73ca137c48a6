"""Slicer's ``.seg.nrrd`` segmentation files as per-segment masks over the frames, and back.

A ``.seg.nrrd`` is an NRRD label volume (one frame per slice, aligned with the frames volume) whose
key/value pairs describe the segments: ``Segment<N>_ID``, ``_Name``, ``_Color`` (three floats in 0..1),
``_LabelValue``, ``_Layer``, ``_Extent``, ``_Tags`` ..., plus ``Segmentation_*`` entries. Overlapping
segments live in separate layers: the file is then 4D, its first (fastest) axis, of kind ``list``, being the
layer.
Unknown entries are kept, so a file read and written again loses nothing Slicer put there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from .errors import ClientError
from .nrrd import NrrdImage, read_nrrd, write_nrrd
from .volumes import Geometry

_SEGMENT_KEY = re.compile(r"^Segment(\d+)_(\w+)$")
_BINARY_LABELMAP = "Binary labelmap"
_SEGMENTATION_DEFAULTS = {
    "Segmentation_MasterRepresentation": _BINARY_LABELMAP,
    "Segmentation_ContainedRepresentationNames": _BINARY_LABELMAP + "|",
    "Segmentation_ReferenceImageExtentOffset": "0 0 0",
}


@dataclass
class SegmentInfo:
    """One segment: its id, name, colour (0..1 floats) and where its voxels are (layer, label value)."""

    id: str
    name: str
    colour: tuple[float, float, float]
    layer: int = 0
    label_value: int = 1
    extra: dict[str, str] = field(default_factory=dict)  # other Segment<N>_ entries, e.g. Tags


@dataclass
class Segmentation:
    """Label layers (L, T, H, W) uint8 over the frames, the segments they hold and the frames' geometry."""

    layers: np.ndarray
    segments: list[SegmentInfo]
    geometry: Geometry = field(default_factory=Geometry)
    key_values: dict[str, str] = field(default_factory=dict)  # Segmentation_* and other entries

    def __post_init__(self) -> None:
        self.layers = np.asarray(self.layers)
        if self.layers.ndim != 4:
            raise ClientError(f"segmentation layers must be (L, T, H, W), got {self.layers.shape}")
        for segment in self.segments:
            if not 0 <= segment.layer < self.layers.shape[0]:
                raise ClientError(f"segment {segment.name!r} is in layer {segment.layer}, "
                                  f"the segmentation has {self.layers.shape[0]}")

    @property
    def shape(self) -> tuple[int, int, int]:
        """(T, H, W): frames, rows, columns."""
        return tuple(self.layers.shape[1:])

    def mask(self, segment: SegmentInfo) -> np.ndarray:
        """(T, H, W) booleans: where ``segment`` is."""
        return self.layers[segment.layer] == segment.label_value

    @classmethod
    def from_masks(cls, masks: list[tuple[SegmentInfo, np.ndarray]], geometry: Geometry | None = None,
                   key_values: dict[str, str] | None = None) -> Segmentation:
        """Pack (segment, (T, H, W) mask) pairs into as few layers as overlaps allow.

        Each segment gets the first layer in which it overlaps nothing, with the next free label value
        there; the ``layer`` and ``label_value`` of the given segments are ignored.
        """
        if not masks:
            raise ClientError("a segmentation needs at least one segment")
        shape = np.asarray(masks[0][1]).shape
        layers: list[np.ndarray] = []
        packed: list[SegmentInfo] = []
        for segment, mask in masks:
            mask = np.asarray(mask, dtype=bool)
            if mask.shape != shape:
                raise ClientError(f"segment {segment.name!r} is {mask.shape}, the others are {shape}")
            layer = next((index for index, labels in enumerate(layers)
                          if labels.max(initial=0) < 255 and not np.any(labels[mask])), None)
            if layer is None:
                layers.append(np.zeros(shape, dtype=np.uint8))
                layer = len(layers) - 1
            value = sum(1 for other in packed if other.layer == layer) + 1
            layers[layer][mask] = value
            packed.append(SegmentInfo(segment.id, segment.name, segment.colour, layer, value, dict(segment.extra)))
        return cls(np.stack(layers), packed, geometry or Geometry(), dict(key_values or {}))

    def to_nrrd(self) -> bytes:
        """The ``.seg.nrrd`` bytes, with the entries Slicer's segmentation reader uses."""
        frames, rows, columns = self.shape
        several = self.layers.shape[0] > 1
        fields = {"kinds": ("list " if several else "") + "domain domain domain",
                  **self.geometry.nrrd_fields(leading_axes=1 if several else 0)}
        key_values = {**_SEGMENTATION_DEFAULTS, **self.key_values}
        extent = f"0 {columns - 1} 0 {rows - 1} 0 {frames - 1}"
        for number, segment in enumerate(self.segments):
            prefix = f"Segment{number}_"
            entries = {
                **segment.extra,
                "ID": segment.id,
                "Name": segment.name,
                "Color": " ".join(repr(float(value)) for value in segment.colour),
                "Layer": str(segment.layer),
                "LabelValue": str(segment.label_value),
                "Extent": extent,
            }
            entries.setdefault("Tags", "|")
            entries.setdefault("NameAutoGenerated", "0")
            entries.setdefault("ColorAutoGenerated", "0")
            key_values.update({prefix + key: value for key, value in entries.items()})
        # NRRD's first (fastest) axis is the layer: C-ordered data is (T, H, W, L), sizes ``L W H T``
        data = np.moveaxis(self.layers, 0, -1) if several else self.layers[0]
        return write_nrrd(NrrdImage(np.ascontiguousarray(data, dtype=np.uint8), fields, key_values))

    @classmethod
    def from_nrrd(cls, data: bytes, origin: str = "segmentation") -> Segmentation:
        image = read_nrrd(data, origin)
        kinds = image.fields.get("kinds", "").split()
        if image.data.ndim == 3:
            layers = image.data[np.newaxis]
        elif image.data.ndim == 4 and kinds[:1] == ["list"]:
            layers = np.moveaxis(image.data, -1, 0)
        else:
            raise ClientError(f"{origin}: not a segmentation volume (sizes {list(image.sizes)}, kinds {kinds})")
        if not np.issubdtype(layers.dtype, np.integer) or layers.min(initial=0) < 0 or layers.max(initial=0) > 255:
            raise ClientError(f"{origin}: segmentation labels must be integers in 0..255")
        entries: dict[int, dict[str, str]] = {}
        others: dict[str, str] = {}
        for key, value in image.key_values.items():
            match = _SEGMENT_KEY.match(key)
            if match:
                entries.setdefault(int(match.group(1)), {})[match.group(2)] = value
            else:
                others[key] = value
        segments = [_segment_info(entries[number], number, origin) for number in sorted(entries)]
        return cls(layers.astype(np.uint8), segments, Geometry.from_nrrd(image, origin), others)


def _segment_info(entries: dict[str, str], number: int, origin: str) -> SegmentInfo:
    entries = dict(entries)
    try:
        colour = tuple(float(value) for value in entries.pop("Color", "0.5 0.5 0.5").split())
        layer = int(entries.pop("Layer", "0"))
        label_value = int(entries.pop("LabelValue", "1"))
    except ValueError:
        raise ClientError(f"{origin}: segment {number} has a bad colour, layer or label value") from None
    if len(colour) != 3:
        raise ClientError(f"{origin}: segment {number}'s colour is not three numbers")
    entries.pop("Extent", None)  # rewritten from the data
    segment_id = entries.pop("ID", f"Segment_{number + 1}")
    return SegmentInfo(segment_id, entries.pop("Name", segment_id), colour, layer, label_value, entries)
