"""Folders of extracted frames (PNG or JPEG), as public datasets such as Cholec80 ship them.

Order and time come from the file names: when every name ends in a number (``video01_1.png``,
``frame_000250.jpg``) and the numbers are distinct, that number is the frame index; otherwise the
frames are numbered in natural order (``f_2`` before ``f_10``) from 0. A frame's time is its index
divided by the folder's frame rate, which is, in this order: the ``folder_fps`` argument, the number in
a sidecar file :data:`FPS_SIDECAR` in the folder (for example ``25``), or 1 frame per second (the rate
at which Cholec80 frames are usually extracted).
"""

from __future__ import annotations

import re
from collections.abc import Generator
from pathlib import Path
from typing import Any

import numpy as np

from surgvlp.errors import SurgVLPError
from surgvlp.sources.base import FrameSource
from surgvlp.sources.identity import content_id, files_fingerprint
from surgvlp.sources.images import decode_rgb

FPS_SIDECAR = "fps.txt"
DEFAULT_FOLDER_FPS = 1.0

_TRAILING_NUMBER = re.compile(r"(\d+)$")


class FrameFolderSource(FrameSource):
    kind = "frame_folder"

    def __init__(
        self,
        folder: Path,
        images: list[Path],
        *,
        folder_fps: float | None,
        fps: float | None,
        start: float | None,
        end: float | None,
    ) -> None:
        rate = folder_fps if folder_fps is not None else _sidecar_fps(folder)
        self._folder_fps = DEFAULT_FOLDER_FPS if rate is None else rate
        if not self._folder_fps > 0:
            raise SurgVLPError(f"{folder}: folder frame rate must be positive, got {self._folder_fps}")
        numbers = [_TRAILING_NUMBER.search(path.stem) for path in images]
        if all(numbers) and len({int(match.group(1)) for match in numbers}) == len(images):
            indices = np.array([int(match.group(1)) for match in numbers], dtype=np.int64)
            order = np.argsort(indices, kind="stable")
            images, indices = [images[i] for i in order], indices[order]
        else:
            indices = np.arange(len(images))
        self._images = images
        frame_size = decode_rgb(images[0], None, str(images[0])).shape[:2]
        super().__init__(
            folder,
            times=indices / self._folder_fps,
            indices=indices,
            native_fps=self._folder_fps,
            frame_size=frame_size,
            fps=fps,
            start=start,
            end=end,
        )

    def _decode(self, positions: np.ndarray) -> Generator[np.ndarray, None, None]:
        for position in positions:
            yield decode_rgb(self._images[position], self.frame_size, str(self._images[position]))

    def _content_id(self) -> str:
        return content_id(files_fingerprint(self._images), self._times.tobytes())

    def _details(self) -> dict[str, Any]:
        return {"folder_fps": self._folder_fps, "first_file": self._images[0].name}


def _sidecar_fps(folder: Path) -> float | None:
    sidecar = folder / FPS_SIDECAR
    if not sidecar.is_file():
        return None
    try:
        text = sidecar.read_text(errors="replace").strip()
        return float(text)
    except OSError as error:
        raise SurgVLPError(f"{sidecar}: cannot read file: {error.strerror or error}") from error
    except ValueError:
        raise SurgVLPError(f"{sidecar}: expected one number (frames per second), found {text[:40]!r}") from None
