"""What a label upload may be, told by its extension and checked before anything is stored.

A timeline (``.json``) must read as a surgvlp timeline; a segmentation (``.seg.nrrd``) must carry an NRRD header
with Slicer's segment fields. Both kinds belong to one video, so they have their own label ids: the video's id
for its timeline, ``<video id>#segmentation`` for its segmentation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from surgvlp.errors import SurgVLPError

SEGMENTATION_SUFFIX = "#segmentation"


@dataclass(frozen=True)
class LabelKind:
    name: str
    ext: str
    suffix: str  # appended to the image id to make the label id

    def label_id(self, image_id: str) -> str:
        return image_id + self.suffix


TIMELINE = LabelKind("timeline", ".json", "")
SEGMENTATION = LabelKind("segmentation", ".seg.nrrd", SEGMENTATION_SUFFIX)
KINDS = (SEGMENTATION, TIMELINE)


def kind_of_upload(filename: str) -> LabelKind:
    lowered = filename.lower()
    for kind in KINDS:
        if lowered.endswith(kind.ext):
            return kind
    raise SurgVLPError(f"label {filename!r}: upload a timeline (.json) or a segmentation (.seg.nrrd)")


def kind_of_label(label_id: str) -> tuple[LabelKind, str]:
    """The kind a label id names and the id of its video."""
    if label_id.endswith(SEGMENTATION_SUFFIX):
        return SEGMENTATION, label_id[: -len(SEGMENTATION_SUFFIX)]
    return TIMELINE, label_id


def check_label(kind: LabelKind, path: Path, origin: str) -> dict[str, object]:
    """Refuse what is not a label of ``kind``; returns what the label info records about it."""
    if kind is TIMELINE:
        from surgvlp.recognition.timeline import Timeline

        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, ValueError) as error:
            raise SurgVLPError(f"{origin}: not a timeline (not JSON: {error})") from None
        timeline = Timeline.from_dict(data, origin)
        return {"kind": kind.name, "task": timeline.task, "untrained": timeline.untrained,
                "classes": timeline.class_names}
    import nrrd

    try:
        header = nrrd.read_header(str(path))
    except (nrrd.NRRDError, OSError, UnicodeDecodeError, ValueError) as error:
        raise SurgVLPError(f"{origin}: not a segmentation (.seg.nrrd): {error}") from None
    names = [value for key, value in sorted(header.items()) if key.startswith("Segment") and key.endswith("_Name")]
    if not names:
        raise SurgVLPError(f"{origin}: the NRRD file has no Slicer segments (no SegmentN_Name fields)")
    return {"kind": kind.name, "segments": names, "sizes": [int(size) for size in header["sizes"]]}
