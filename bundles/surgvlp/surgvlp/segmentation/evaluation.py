"""Agreement of a label volume with reference masks, frame by frame."""

from __future__ import annotations

import numpy as np

from surgvlp.errors import SurgVLPError


def dice_per_frame(labels: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(T,) Dice coefficient ``2 |A and B| / (|A| + |B|)`` of each frame's masks (non-zero = foreground).

    A frame where both masks are empty agrees perfectly (1.0): the target was rightly found absent.
    """
    labels, truth = np.asarray(labels) != 0, np.asarray(truth) != 0
    if labels.shape != truth.shape or labels.ndim != 3:
        raise SurgVLPError(f"masks of shape {labels.shape} and {truth.shape} cannot be compared frame by frame")
    overlap = (labels & truth).reshape(len(labels), -1).sum(axis=1)
    total = labels.reshape(len(labels), -1).sum(axis=1) + truth.reshape(len(truth), -1).sum(axis=1)
    return np.where(total > 0, 2.0 * overlap / np.maximum(total, 1), 1.0)
