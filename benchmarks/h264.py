"""The one H.264 writer the benchmarks share: each benchmark draws its own pictures, this encodes them."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import av
import numpy as np


def write_h264(
    path: Path, images: Iterable[np.ndarray], fps: int, options: dict[str, str] | None = None, faststart: bool = False
) -> None:
    """Encode (H, W, 3) uint8 RGB images with libx264; the size is taken from the first image."""
    with av.open(str(path), "w", options={"movflags": "+faststart"} if faststart else {}) as container:
        stream = container.add_stream("libx264", rate=fps, options=options or {})
        stream.pix_fmt = "yuv420p"
        for index, image in enumerate(images):
            if index == 0:
                stream.height, stream.width = image.shape[:2]
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
