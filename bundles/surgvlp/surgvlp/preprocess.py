"""The upstream image preprocessing, applied to batches of decoded RGB frames.

Upstream runs ``Resize((360, 640))`` on PIL images, ``CenterCrop(224)`` and ImageNet normalisation. Resizing
the uint8 tensor with antialiasing reproduces PIL's bilinear filter (including its rounding to uint8) while
using torchvision's vectorised uint8 kernel, so whole batches are prepared at once.
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


def to_model_input(frames: Sequence[np.ndarray] | torch.Tensor) -> torch.Tensor:
    """(N, H, W, 3) uint8 RGB frames -> (N, 3, 224, 224) float32, normalised as upstream."""
    if not isinstance(frames, torch.Tensor):
        if len({frame.shape for frame in frames}) > 1:  # a frame folder may mix sizes
            return torch.cat([to_model_input([frame]) for frame in frames])
        frames = torch.from_numpy(np.stack(frames))
    batch = frames.permute(0, 3, 1, 2)
    batch = F.resize(batch, list(RESIZE), interpolation=F.InterpolationMode.BILINEAR, antialias=True)
    batch = F.center_crop(batch, [CROP, CROP])
    return F.normalize(batch.float().div_(255.0), mean=list(MEAN), std=list(STD))
