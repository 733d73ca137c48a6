"""Labels that are never lost: every save is a new numbered version, written atomically, never overwritten.

A clinician's corrected timeline is hours of expert time. The stock local datastore copies an upload over the
previous label in place; here each save of (label, tag) becomes ``v0001``, ``v0002``, ... in a folder of its
own, linked into place only once complete (``os.link`` refuses to replace an existing version, so two saves at
once get two versions). The newest version is the label; older ones stay listable and readable as
``LABEL@N``.

Layout: ``ROOT/<tag>/<quoted label id>/v0003.json`` plus ``v0003.info.json`` with who/when/what.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from surgvlp.atomic import atomic_write
from surgvlp.errors import SurgVLPError

TAG_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
_VERSION_FILE = re.compile(r"v(\d{4,})(\..+)")
_INFO_SUFFIX = ".info.json"


class LabelNotFound(SurgVLPError):
    """No label (or no such version) under that id and tag."""


@dataclass(frozen=True)
class LabelVersion:
    version: int
    path: Path
    info: dict[str, Any]

    def describe(self) -> dict[str, Any]:
        return {"version": self.version, "name": self.path.name, "size": self.path.stat().st_size, **self.info}


def check_tag(tag: str) -> str:
    """Tags name folders: only letters, digits, ``_`` and ``-`` can never reach outside the label store."""
    if not TAG_PATTERN.fullmatch(tag or ""):
        raise SurgVLPError(f"label tag {tag!r}: use 1 to 64 letters, digits, '_' or '-' (for example 'final')")
    return tag


def split_version(label_id: str) -> tuple[str, int | None]:
    """``case.mp4@3`` -> (``case.mp4``, 3); ``case.mp4`` -> (``case.mp4``, None): the latest."""
    base, at, number = label_id.rpartition("@")
    if at and number.isdigit():
        return base, int(number)
    return label_id, None


class LabelStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _folder(self, label_id: str, tag: str) -> Path:
        # quote() with nothing safe turns '/' and '..' into plain characters of one folder name
        return self.root / check_tag(tag) / quote(label_id, safe="").replace(".", "%2E")

    def versions(self, label_id: str, tag: str) -> list[LabelVersion]:
        folder = self._folder(label_id, tag)
        if not folder.is_dir():
            return []
        found = []
        for path in folder.iterdir():
            match = _VERSION_FILE.fullmatch(path.name)
            if match and not path.name.endswith(_INFO_SUFFIX):
                info_path = path.with_name(f"v{match.group(1)}{_INFO_SUFFIX}")
                info = json.loads(info_path.read_text(encoding="utf-8")) if info_path.is_file() else {}
                found.append(LabelVersion(int(match.group(1)), path, info))
        return sorted(found, key=lambda version: version.version)

    def get(self, label_id: str, tag: str) -> LabelVersion:
        """The latest version, or the one ``LABEL@N`` names."""
        base, wanted = split_version(label_id)
        versions = self.versions(base, tag)
        if wanted is not None:
            versions = [version for version in versions if version.version == wanted]
        if not versions:
            raise LabelNotFound(f"no label {label_id!r} with tag {tag!r}")
        return versions[-1]

    def tags(self, label_id: str) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(tag.name for tag in self.root.iterdir() if self._folder(label_id, tag.name).is_dir())

    def save(self, label_id: str, tag: str, file: Path, ext: str, info: dict[str, Any]) -> LabelVersion:
        """Store ``file`` as the next version; the upload is copied first, so a failed copy leaves nothing."""
        folder = self._folder(label_id, tag)
        folder.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=folder, prefix=".upload-")
        os.close(handle)
        try:
            shutil.copyfile(file, temporary)
            with open(temporary, "rb") as stream:
                os.fsync(stream.fileno())
            info = {**info, "ts": int(time.time())}
            while True:
                existing = self.versions(label_id, tag)
                number = existing[-1].version + 1 if existing else 1
                target = folder / f"v{number:04d}{ext}"
                try:
                    os.link(temporary, target)  # never replaces: a concurrent save took this number, try the next
                    break
                except FileExistsError:
                    continue
            with atomic_write(folder / f"v{number:04d}{_INFO_SUFFIX}", "w", encoding="utf-8") as stream:
                json.dump(info, stream, default=str)
            return LabelVersion(number, target, info)
        finally:
            os.unlink(temporary)
