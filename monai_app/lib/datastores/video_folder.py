"""A folder of videos as a catalogue: every video and DICOM file below it, by its path relative to the folder.

Only known video extensions are listed (the stock ``MONAI_LABEL_DATASTORE_FILE_EXT`` knows neither mp4 nor dcm,
and adding ``*.json`` would list the datastore's own files as images); hidden folders, where the app keeps its
labels and state (``.surgvlp/``), are never listed. An id is looked up in the listing, never joined onto the
folder, so no id (``..``, an absolute path) can name a file outside it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path, PurePosixPath

from lib.datastores.catalogue import ImageNotFound, SourceData, UploadRefused, VideoCatalogue, VideoEntry

VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mkv", ".avi", ".mov", ".mpg", ".mpeg", ".webm", ".dcm", ".dicom")


class VideoFolder(VideoCatalogue):
    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise ImageNotFound(f"--studies {root}: no such folder")

    @property
    def description(self) -> str:
        return f"the folder {self.root}"

    def entries(self) -> dict[str, VideoEntry]:
        found = {}
        for folder, subfolders, files in os.walk(self.root):
            subfolders[:] = sorted(name for name in subfolders if not name.startswith("."))
            for name in sorted(files):
                if name.startswith(".") or not name.lower().endswith(VIDEO_EXTENSIONS):
                    continue
                path = Path(folder) / name
                image_id = path.relative_to(self.root).as_posix()
                stat = path.stat()
                found[image_id] = VideoEntry(image_id, {"name": name, "size": stat.st_size, "ts": int(stat.st_mtime)})
        return found

    def _path(self, image_id: str) -> Path:
        self.entry(image_id)
        return self.root / PurePosixPath(image_id)

    def source_data(self, image_id: str) -> tuple[SourceData, str]:
        return self._path(image_id), image_id

    def uri(self, image_id: str) -> str:
        return str(self._path(image_id))

    def add(self, image_id: str, file: Path) -> str:
        """A new video, copied in under a temporary name and renamed: an existing case is never replaced."""
        name = PurePosixPath(image_id or file.name).name
        if not name.lower().endswith(VIDEO_EXTENSIONS):
            raise UploadRefused(f"{name!r} is not a video file ({', '.join(VIDEO_EXTENSIONS)})")
        target = self.root / name
        if target.exists():
            raise UploadRefused(f"{name!r} exists already; upload it under another name")
        temporary = self.root / f".upload-{os.getpid()}-{name}"
        shutil.copyfile(file, temporary)
        try:
            os.link(temporary, target)
        except FileExistsError:
            raise UploadRefused(f"{name!r} exists already; upload it under another name") from None
        finally:
            os.unlink(temporary)
        return name
