"""Row-wise vector helpers shared by the zero-shot scoring, the prompt ensembles and the adapter."""

from __future__ import annotations

import numpy as np


def unit_rows(rows: np.ndarray, dtype: type = np.float64) -> np.ndarray:
    """Each row scaled to unit L2 length (a zero row stays zero instead of becoming NaN)."""
    rows = np.asarray(rows, dtype=dtype)
    return rows / np.linalg.norm(rows, axis=-1, keepdims=True).clip(min=1e-12)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, shifted by each row's maximum so that large logits cannot overflow."""
    weights = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return weights / weights.sum(axis=-1, keepdims=True)
