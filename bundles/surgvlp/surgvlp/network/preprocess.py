"""The upstream image preprocessing, applied to decoded RGB frames.

Upstream runs torchvision's ``Resize((360, 640))`` on PIL images, which is PIL's bilinear resize with its
own fixed-point rounding to uint8, then ``CenterCrop(224)``, ``ToTensor`` and ImageNet normalisation. A
network trained on those pixels flips argmaxes when a few of them are one grey level off, so there are two
ways to resize, and the faithful one is the default:

- ``pil`` resizes with PIL itself, frame by frame: the 224 x 224 uint8 crops are bit-identical to upstream's
  and the float tensors are too.
- ``tensor`` resizes whole batches with torchvision's antialiased uint8 tensor kernel, several times faster
  but another filter: it differs from PIL by one grey level on a fraction of the values that depends on the
  frame size (measured figures in the README). Choose it explicitly, when throughput matters more.

The geometric part (:func:`crop_frame`, in PIL :mod:`surgvlp.network.crop`) and the normalisation are
separate so that the crop can run where the frame is decoded, leaving only 224 x 224 uint8 images to move
between threads and processes. torchvision is imported by the ``tensor`` mode alone: its import costs a
second that the default never needs.

Referring segmentation looks at the whole frame, not the centre crop: :func:`whole_frames_to_model_input`
stops after the same resize to 360 x 640, so objects keep the scale the network was trained on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, get_args

import numpy as np
import torch

from surgvlp.errors import SurgVLPError
from surgvlp.network.crop import CROP, CROP_LEFT, CROP_TOP, RESIZE, pil_crop, pil_resize

PreprocessMode = Literal["pil", "tensor"]
PREPROCESS_MODES: tuple[PreprocessMode, ...] = get_args(PreprocessMode)
DEFAULT_PREPROCESS: PreprocessMode = "pil"

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def check_preprocess(mode: str) -> PreprocessMode:
    if mode not in PREPROCESS_MODES:
        raise SurgVLPError(f"unknown preprocessing {mode!r}; choose one of {', '.join(PREPROCESS_MODES)}")
    return mode


def preprocessing_id(mode: PreprocessMode) -> str:
    """Names everything that turns a frame into model input, for cache keys: other pixels, other embeddings."""
    return f"resize{RESIZE[0]}x{RESIZE[1]}-{check_preprocess(mode)}-crop{CROP}-imagenet"


def _tensor_resize(batch: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) uint8 -> (N, 3, 360, 640) uint8 with torchvision's antialiased bilinear kernel."""
    from torchvision.transforms.v2 import functional as F

    return F.resize(batch, list(RESIZE), interpolation=F.InterpolationMode.BILINEAR, antialias=True)


def _tensor_crops(batch: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) uint8 -> (N, 3, 224, 224) uint8 with torchvision's antialiased bilinear kernel."""
    return _tensor_resize(batch)[..., CROP_TOP : CROP_TOP + CROP, CROP_LEFT : CROP_LEFT + CROP]  # CenterCrop(224)


def _stack(frames: Sequence[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2)


def crop_frame(image: np.ndarray, mode: PreprocessMode = DEFAULT_PREPROCESS) -> np.ndarray:
    """One (H, W, 3) uint8 frame -> its (224, 224, 3) uint8 crop (also what decoding workers run)."""
    if mode == "pil":
        return pil_crop(image)
    return _tensor_crops(_stack([image]))[0].permute(1, 2, 0).numpy()


def normalize(crops: torch.Tensor) -> torch.Tensor:
    """(N, 3, 224, 224) uint8 -> float32 scaled to [0, 1] and standardised with the ImageNet mean and std.

    The result is laid out channel-first in memory, as ``ToTensor`` makes it: on the CPU the convolutions
    then sum in upstream's order, and the embeddings equal upstream's to the last bit. The arithmetic is
    torchvision's ``Normalize``: subtract the mean, then divide by the std, in float32.
    """
    mean, std = (torch.tensor(values, dtype=torch.float32).view(-1, 1, 1) for values in (MEAN, STD))
    return crops.contiguous().float().div_(255.0).sub_(mean).div_(std)


def crops_to_model_input(crops: Sequence[np.ndarray]) -> torch.Tensor:
    """(224, 224, 3) uint8 crops from :func:`crop_frame` -> (N, 3, 224, 224) float32."""
    return normalize(_stack(crops))


def to_model_input(frames: Sequence[np.ndarray], mode: PreprocessMode = DEFAULT_PREPROCESS) -> torch.Tensor:
    """(H, W, 3) uint8 RGB frames, of one size or several -> (N, 3, 224, 224) float32 model input."""
    if mode == "tensor" and len({frame.shape for frame in frames}) == 1:
        return normalize(_tensor_crops(_stack(frames)))
    return crops_to_model_input([crop_frame(frame, mode) for frame in frames])


def whole_frames_to_model_input(frames: Sequence[np.ndarray], mode: PreprocessMode = DEFAULT_PREPROCESS) -> torch.Tensor:
    """(H, W, 3) uint8 RGB frames -> (N, 3, 360, 640) float32: the upstream resize and normalisation, uncropped."""
    if mode == "tensor":
        groups = [frames] if len({frame.shape for frame in frames}) == 1 else [[frame] for frame in frames]
        return normalize(torch.cat([_tensor_resize(_stack(group)) for group in groups]))
    return normalize(_stack([np.asarray(pil_resize(frame)) for frame in frames]))
