"""Decoding compressed still images (PNG, JPEG, JPEG 2000) to RGB with Pillow, for folders and DICOM fragments."""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image

from surgvlp.errors import SurgVLPError


def decode_rgb(image: Path | BinaryIO, frame_size: tuple[int, int] | None, where: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB of ``image``, which must be ``frame_size`` (height, width) when given.

    ``where`` names the image in error messages (a file, or a file and frame number).
    """
    try:
        with Image.open(image) as opened:
            rgb = np.asarray(opened.convert("RGB"))
    except Image.DecompressionBombError as error:  # Pillow's limit on untrusted images stays in force
        raise SurgVLPError(f"{where}: image too large to decode: {error}") from error
    except (OSError, ValueError, SyntaxError) as error:  # Pillow's ways of saying "corrupt"
        raise SurgVLPError(f"{where}: cannot decode image (corrupt or truncated?): {error}") from error
    if frame_size is not None and rgb.shape[:2] != frame_size:
        raise SurgVLPError(
            f"{where}: image is {rgb.shape[1]}x{rgb.shape[0]} but {frame_size[1]}x{frame_size[0]} was expected "
            "(all frames of a source must have one size)"
        )
    return rgb
