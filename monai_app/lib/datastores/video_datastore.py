"""The app's datastore: videos from a catalogue (a folder, a PACS), labels in a versioned store beside them.

It answers the stock MONAI Label datastore API (``/datastore/...``) so the stock client and Slicer's MONAI Label
code keep working, with three differences a clinician's data needs: an image id only ever names a listed video,
a label upload is checked (a timeline or a segmentation) before it is kept, and every save is a new version.

Errors are ``SurgVLPError`` subclasses, answered as HTTP 4xx (see ``lib/http_errors.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional

from monailabel.interfaces.datastore import Datastore, DefaultLabelTag

from lib.datastores.catalogue import ImageNotFound, SourceData, UploadRefused, VideoCatalogue
from lib.datastores.label_kinds import KINDS, TIMELINE, check_label, kind_of_label, kind_of_upload
from lib.datastores.labels import LabelNotFound, LabelStore, check_tag, split_version
from lib.http_errors import answers_http_everywhere
from surgvlp.errors import SurgVLPError


class UploadTooLarge(SurgVLPError):
    """An upload over the configured limit (``--conf max_upload_mb``)."""


@answers_http_everywhere
class VideoDatastore(Datastore):
    def __init__(self, catalogue: VideoCatalogue, labels: LabelStore, max_upload_bytes: int) -> None:
        self.catalogue = catalogue
        self.labels = labels
        self.max_upload_bytes = max_upload_bytes
        self._name = "SurgVLP videos"
        self._description = f"Surgical videos in {catalogue.description}"

    # -- names ----------------------------------------------------------------------------------------------

    def name(self) -> str:
        return self._name

    def set_name(self, name: str) -> None:
        self._name = name

    def description(self) -> str:
        return self._description

    def set_description(self, description: str) -> None:
        self._description = description

    # -- images ---------------------------------------------------------------------------------------------

    def list_images(self) -> List[str]:
        return list(self.catalogue.entries())

    def source_data(self, image_id: str) -> tuple[SourceData, str]:
        """What the core opens for ``image_id``; :class:`ImageNotFound` for anything not listed."""
        return self.catalogue.source_data(image_id)

    def get_image(self, image_id: str, params=None) -> Any:
        data, _ = self.source_data(image_id)
        return data.read_bytes() if isinstance(data, Path) else data

    def get_image_uri(self, image_id: str) -> str:
        try:
            return self.catalogue.uri(image_id)
        except ImageNotFound:
            return ""  # the stock download endpoint answers 404 for an empty uri

    def get_image_info(self, image_id: str) -> Dict[str, Any]:
        return dict(self.catalogue.entry(image_id).info)

    def add_image(self, image_id: str, image_filename: str, image_info: Dict[str, Any]) -> str:
        self._check_size(Path(image_filename), "video")
        return self.catalogue.add(image_id, Path(image_filename))

    def remove_image(self, image_id: str) -> None:
        raise UploadRefused("videos are never deleted through the server; remove the file from the datastore folder")

    def update_image_info(self, image_id: str, info: Dict[str, Any]) -> None:
        raise UploadRefused("image info is read from the video itself and cannot be changed")

    # -- labels ---------------------------------------------------------------------------------------------

    def _check_size(self, path: Path, what: str) -> None:
        size = path.stat().st_size
        if size > self.max_upload_bytes:
            raise UploadTooLarge(f"the {what} upload is {size >> 20} MiB, over the limit of "
                                 f"{self.max_upload_bytes >> 20} MiB (--conf max_upload_mb)")

    def save_label(self, image_id: str, label_filename: str, label_tag: str, label_info: Dict[str, Any]) -> str:
        check_tag(label_tag)
        self.catalogue.entry(image_id)
        path = Path(label_filename)
        kind = kind_of_upload(path.name)
        self._check_size(path, "label")
        checked = check_label(kind, path, f"label for {image_id!r}")
        kept = self.catalogue.keep_label(image_id, kind.name, path) if label_tag == DefaultLabelTag.FINAL.value else {}
        label_id = kind.label_id(image_id)
        self.labels.save(label_id, label_tag, path, kind.ext, {**(label_info or {}), **checked, **kept})
        return label_id

    def get_label_uri(self, label_id: str, label_tag: str) -> str:
        try:
            return str(self.labels.get(label_id, label_tag).path)
        except LabelNotFound:
            return ""

    def get_label(self, label_id: str, label_tag: str, params=None) -> Any:
        return self.labels.get(label_id, label_tag).path.read_bytes()

    def get_label_info(self, label_id: str, label_tag: str) -> Dict[str, Any]:
        """The chosen version's record (the latest, or ``LABEL@N``) and the list of all versions."""
        chosen = self.labels.get(label_id, label_tag)
        versions = self.labels.versions(split_version(label_id)[0], label_tag)
        return {**chosen.describe(), "versions": [version.describe() for version in versions]}

    def update_label_info(self, label_id: str, label_tag: str, info: Dict[str, Any]) -> None:
        raise UploadRefused("a label's record is kept as saved; save a new version instead")

    def remove_label(self, label_id: str, label_tag: str) -> None:
        raise UploadRefused("labels are never deleted: every version is kept; save a new version instead")

    def _labels_of(self, image_id: str) -> Dict[str, Dict[str, Any]]:
        """Per tag, the labels of one video: its timeline and its segmentation, each with its versions."""
        found: Dict[str, Dict[str, Any]] = {}
        for kind in KINDS:
            label_id = kind.label_id(image_id)
            for tag in self.labels.tags(label_id):
                versions = self.labels.versions(label_id, tag)
                entry = found.setdefault(tag, {"ext": kind.ext, "info": {"labels": {}}})
                if kind is TIMELINE:
                    entry["ext"] = kind.ext
                entry["info"]["labels"][label_id] = {
                    "kind": kind.name,
                    "ts": versions[-1].info.get("ts"),
                    "versions": [version.describe() for version in versions],
                }
        return found

    def get_labels_by_image_id(self, image_id: str) -> Dict[str, str]:
        return {tag: image_id for tag in self._labels_of(image_id)}

    def get_label_by_image_id(self, image_id: str, tag: str) -> str:
        return image_id if self.labels.versions(TIMELINE.label_id(image_id), tag) else ""

    def get_labeled_images(self, label_tag: Optional[str] = None, labels: Optional[List[str]] = None) -> List[str]:
        tag = label_tag or DefaultLabelTag.FINAL.value
        return [image_id for image_id in self.list_images() if self.labels.versions(TIMELINE.label_id(image_id), tag)]

    def get_unlabeled_images(self, label_tag: Optional[str] = None, labels: Optional[List[str]] = None) -> List[str]:
        labelled = set(self.get_labeled_images(label_tag))
        return [image_id for image_id in self.list_images() if image_id not in labelled]

    def datalist(self) -> List[Dict[str, Any]]:
        """Every video with a final timeline: what the adapter trains on."""
        tag = DefaultLabelTag.FINAL.value
        return [{"image": image_id, "label": str(self.labels.get(image_id, tag).path)}
                for image_id in self.get_labeled_images(tag)]

    def get_dataset_archive(self, limit_cases: Optional[int]) -> str:
        raise UploadRefused("dataset archives are not offered; copy the datastore folder instead")

    def refresh(self) -> None:
        """Nothing to do: every call lists the catalogue afresh."""

    def status(self) -> Dict[str, Any]:
        images = self.list_images()
        return {"total": len(images), "completed": len(self.get_labeled_images()), "label_tags": {}}

    def json(self):
        return {
            "name": self._name,
            "description": self._description,
            "objects": {
                image_id: {"image": {"ext": Path(entry.info.get("name", image_id)).suffix, "info": entry.info}, "labels": self._labels_of(image_id)}
                for image_id, entry in self.catalogue.entries().items()
            },
        }
