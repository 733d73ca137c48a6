"""Upstream's geometry on one frame, in PIL: ``Resize((360, 640))`` with PIL's bilinear filter, then ``CenterCrop(224)``.

Kept apart from :mod:`surgvlp.network.preprocess` because it needs neither torch nor torchvision: a command
can crop its first frames in the decoding thread while torch is still being imported.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

RESIZE = (360, 640)
CROP = 224
# torchvision's CenterCrop rounds the margins this way.
CROP_TOP = int(round((RESIZE[0] - CROP) / 2.0))
CROP_LEFT = int(round((RESIZE[1] - CROP) / 2.0))


def pil_resize(image: np.ndarray) -> Image.Image:
    """One (H, W, 3) uint8 frame resized to 360 x 640 exactly as PIL does it for upstream."""
    # Decoded frames are views with padded rows; PIL copies those pixel by pixel, ten times slower than numpy.
    return Image.fromarray(np.ascontiguousarray(image)).resize((RESIZE[1], RESIZE[0]), Image.Resampling.BILINEAR)


def pil_crop(image: np.ndarray) -> np.ndarray:
    """One (H, W, 3) uint8 frame -> its (224, 224, 3) uint8 centre crop after the resize, bit for bit upstream's."""
    return np.asarray(pil_resize(image).crop((CROP_LEFT, CROP_TOP, CROP_LEFT + CROP, CROP_TOP + CROP)))
