"""What the image encoder hands on: frame embeddings with their times, in a module free of torch.

The cache stores and returns these, so that ``surgvlp cache`` and a cache look-up never import torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class EncodedFrames:
    embeddings: np.ndarray  # (N, 768) float32, not normalised
    times: np.ndarray  # (N,) seconds from the start of the source
    indices: np.ndarray  # (N,) frame index in the source
