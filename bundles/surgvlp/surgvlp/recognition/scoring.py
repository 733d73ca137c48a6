"""Scores from embeddings: the one implementation of the zero-shot classifier, softmax(100 * cos), and its kin.

Everything that turns embeddings into scores (phase and tool recognition, prompt ensembles, the adapter's
starting point, the frame-to-phase network of the bundle) uses these functions, so the rule exists once.
"""

from __future__ import annotations

import numpy as np

PHASE_LOGIT_SCALE = 100.0
"""The CLIP-style temperature of the published zero-shot protocol."""


def unit_rows(rows: np.ndarray, dtype: type = np.float64) -> np.ndarray:
    """Each row scaled to unit L2 length (a zero row stays zero instead of becoming NaN)."""
    rows = np.asarray(rows, dtype=dtype)
    return rows / np.linalg.norm(rows, axis=-1, keepdims=True).clip(min=1e-12)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, shifted by each row's maximum so that large logits cannot overflow."""
    weights = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return weights / weights.sum(axis=-1, keepdims=True)


def cosine_similarity(image_embeddings: np.ndarray, class_embeddings: np.ndarray) -> np.ndarray:
    """(T, D) and (C, D) embeddings -> (T, C) cosines; neither input needs to be normalised."""
    return unit_rows(image_embeddings) @ unit_rows(class_embeddings).T


def _sigmoid(logits: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * logits))  # the overflow-free form of 1 / (1 + exp(-x))


def phase_probabilities(
    image_embeddings: np.ndarray, class_embeddings: np.ndarray, logit_scale: float = PHASE_LOGIT_SCALE
) -> np.ndarray:
    """The upstream zero-shot rule: ``softmax(logit_scale * cos)`` over classes, one row per frame."""
    return softmax(logit_scale * cosine_similarity(image_embeddings, class_embeddings))


def tool_scores(
    image_embeddings: np.ndarray,
    class_embeddings: np.ndarray,
    scale: float = PHASE_LOGIT_SCALE,
    offset: float | None = None,
) -> np.ndarray:
    """Multi-label presence scores ``sigmoid(scale * (cos - offset))``, each tool on its own.

    The cosine level of a contrastive model is not calibrated: it shifts with the model and the video, so
    a fixed threshold on ``sigmoid(cos)`` means little. With ``offset=None`` each frame is centred on its
    own mean cosine over the tools, so a score above 0.5 reads "closer to this tool's prompt than to the
    average tool prompt"; pass a number for a fixed, calibrated offset instead.
    """
    cosines = cosine_similarity(image_embeddings, class_embeddings)
    centre = cosines.mean(axis=1, keepdims=True) if offset is None else offset
    return _sigmoid(scale * (cosines - centre))
