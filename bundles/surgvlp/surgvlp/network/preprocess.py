"""The upstream image preprocessing, applied to batches of decoded RGB frames.

Upstream runs ``Resize((360, 640))`` on PIL images, ``CenterCrop(224)`` and ImageNet normalisation. Resizing
the uint8 tensor with antialiasing reproduces PIL's bilinear filter (including its rounding to uint8) while
using torchvision's vectorised uint8 kernel, so whole batches are prepared at once. The geometric part
(:func:`crop`) and the normalisation are separate so that the crop can run where the frame is decoded,
leaving only 224 x 224 uint8 images to move between processes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torchvision.transforms.v2 import functional as F

RESIZE = (360, 640)
CROP = 224
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def crop(batch: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) uint8 -> (N, 3, 224, 224) uint8: resize to 360 x 640, then the centre crop."""
    batch = F.resize(batch, list(RESIZE), interpolation=F.InterpolationMode.BILINEAR, antialias=True)
    return F.center_crop(batch, [CROP, CROP])


def crop_frame(image: np.ndarray) -> np.ndarray:
    """One (H, W, 3) uint8 frame -> its (224, 224, 3) uint8 crop, for decoding workers."""
    return crop(torch.from_numpy(image).permute(2, 0, 1)[None])[0].permute(1, 2, 0).numpy()


def normalize(crops: torch.Tensor) -> torch.Tensor:
    """(N, 3, 224, 224) uint8 -> float32 with ImageNet mean and std."""
    return F.normalize(crops.float().div_(255.0), mean=list(MEAN), std=list(STD))


def _stack(frames: Sequence[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2)


def to_model_input(frames: Sequence[np.ndarray]) -> torch.Tensor:
    """(H, W, 3) uint8 RGB frames -> (N, 3, 224, 224) float32, prepared as upstream."""
    if len({frame.shape for frame in frames}) > 1:  # a frame folder may mix sizes
        return torch.cat([to_model_input([frame]) for frame in frames])
    return normalize(crop(_stack(frames)))


def crops_to_model_input(crops: Sequence[np.ndarray]) -> torch.Tensor:
    """(224, 224, 3) uint8 crops from :func:`crop_frame` -> (N, 3, 224, 224) float32."""
    return normalize(_stack(crops))
