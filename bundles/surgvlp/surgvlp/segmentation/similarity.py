"""Dense text-to-pixel similarity: where in each frame the text is, according to the image encoder alone.

The image projection is linear and commutes with the average pool, so applying it to every layer4 cell gives
per-region embeddings in the same space as the prompts (see ``ImageEncoder.dense_embeddings``). The whole
frame is resized to 360 x 640 as upstream resizes it before its centre crop, so objects keep the scale the
network saw in training, and no part of the frame is cut away: that gives a 12 x 20 grid of 32-pixel cells.

Each cell is scored as zero-shot classification is, ``softmax(100 * cos)``, over the target and the
contrasting prompts (background, tissue, other instruments): the target's probability says how much more the
cell looks like the target than like anything it was contrasted with. Only these small maps are kept, one
per frame (about 1 KB each), never the 768-channel features, so a long clip costs little memory.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import torch

from surgvlp.errors import SurgVLPError
from surgvlp.network.loading import LoadedModel
from surgvlp.network.preprocess import whole_frames_to_model_input
from surgvlp.progress import CancelToken, Progress
from surgvlp.recognition.scoring import PHASE_LOGIT_SCALE
from surgvlp.segmentation.prompts import DEFAULT_NEGATIVES, check_prompts
from surgvlp.sources import FrameSource

@dataclass(frozen=True)
class SimilarityMaps:
    """The target's probability on every cell of every sampled frame, where those frames lie, and what made them."""

    probabilities: np.ndarray  # (T, h, w) float32 in [0, 1]
    times: np.ndarray  # (T,) seconds
    indices: np.ndarray  # (T,) frame index in the source
    frame_size: tuple[int, int]  # (height, width) of the frames, which every frame shares
    text: str
    negatives: tuple[str, ...]
    model: dict[str, Any]  # LoadedModel.describe() of the encoder

    def __len__(self) -> int:
        return len(self.times)


def _target_probability(cells: torch.Tensor, prompts: torch.Tensor) -> torch.Tensor:
    """(N, D, h, w) cell embeddings and (P, D) unit prompt embeddings -> (N, h, w) probability of prompt 0."""
    cosine = torch.einsum("ndhw,pd->nphw", torch.nn.functional.normalize(cells, dim=1), prompts)
    return torch.softmax(PHASE_LOGIT_SCALE * cosine, dim=1)[:, 0]


def similarity_maps(
    model: LoadedModel,
    source: FrameSource,
    text: str,
    negatives: Sequence[str] = DEFAULT_NEGATIVES,
    *,
    batch_size: int = 8,
    progress: Progress | None = None,
    total: int | None = None,
    cancel: CancelToken | None = None,
) -> SimilarityMaps:
    """The target's per-cell probability on every sampled frame of ``source``, frames streamed in batches.

    ``progress`` hears (frames done, ``total``; by default the number of frames) after each batch; ``cancel``
    is checked before each batch.
    """
    prompts = check_prompts(text, negatives)
    encoder = model.encoder
    units = torch.nn.functional.normalize(torch.from_numpy(encoder.encode_prompts(prompts)), dim=1)
    times: list[float] = []
    indices: list[int] = []
    sizes: set[tuple[int, int]] = set()

    def images() -> Iterator[np.ndarray]:
        for frame in source:
            sizes.add(frame.image.shape[:2])
            if len(sizes) > 1:
                raise SurgVLPError(f"{source.name}: frame {frame.index} differs in size from the first; a label volume needs one size")
            times.append(frame.time)
            indices.append(frame.index)
            yield frame.image

    probabilities = encoder.encode_frames(
        images(),
        batch_size=batch_size,
        prepare=partial(whole_frames_to_model_input, mode=encoder.preprocess),
        encode=lambda batch: _target_probability(encoder.encode_dense(batch), units),
        progress=progress,
        total=len(source) if total is None else total,
        cancel=cancel,
    )
    return SimilarityMaps(
        probabilities.astype(np.float32),
        np.asarray(times, dtype=np.float64),
        np.asarray(indices, dtype=np.int64),
        sizes.pop(),
        text,
        tuple(prompts[1:]),
        model.describe(),
    )


def upsample(probabilities: np.ndarray, frame_size: tuple[int, int]) -> np.ndarray:
    """(h, w) cell probabilities -> (H, W) pixel probabilities, bilinear.

    The grid covers the frame as ResNet's strides round it (360 rows give 12 cells of 32), so stretching it over
    the whole frame misplaces a boundary by at most a few per cent of the height: far less than a cell.
    """
    grid = torch.from_numpy(np.ascontiguousarray(probabilities, dtype=np.float32))[None, None]
    return torch.nn.functional.interpolate(grid, size=frame_size, mode="bilinear", align_corners=False)[0, 0].numpy()
