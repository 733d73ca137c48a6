"""Masks from the similarity maps alone, for sites without SAM2 weights.

Each confident frame's map is upsampled to the frame and thresholded; other frames stay empty. The masks are
as coarse as the 32-pixel cells behind them and know nothing of the frames before or after, which is why
every output of this mode says ``"mode": "coarse"``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from surgvlp.segmentation.similarity import SimilarityMaps, upsample


def coarse_masks(
    maps: SimilarityMaps, confident: np.ndarray, threshold: float, on_frame: Callable[[int, np.ndarray, str], None]
) -> None:
    """``on_frame(position, mask, state)`` for every frame: ``"detected"`` with its mask, or ``"none"`` and an empty one."""
    empty = np.zeros(maps.frame_size, dtype=bool)
    for position, probabilities in enumerate(maps.probabilities):
        if confident[position]:
            on_frame(position, upsample(probabilities, maps.frame_size) >= threshold, "detected")
        else:
            on_frame(position, empty, "none")
