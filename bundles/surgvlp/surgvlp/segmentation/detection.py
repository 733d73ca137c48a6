"""Where the target is found: confident frames, the start frame, and the prompt that seeds the tracker.

A single frame's similarity map can light up on a reflection or a look-alike for one frame; a target that is
really there stays for several. Tracking therefore starts at the first frame of the first run of
``consecutive`` confident frames, and a frame is confident when its best cell reaches ``confidence``. The
region handed to the tracker is the connected group of cells at or above ``threshold`` around that best
cell: one object, as SAM2 tracks one object per prompt.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from surgvlp.segmentation.similarity import SimilarityMaps, upsample

NEIGHBOURS = ((1, 0), (-1, 0), (0, 1), (0, -1))


def frame_scores(maps: SimilarityMaps) -> np.ndarray:
    """(T,) the best cell's probability on each frame: how surely the frame shows the target."""
    return maps.probabilities.reshape(len(maps), -1).max(axis=1)


def start_frame(confident: np.ndarray, consecutive: int) -> int | None:
    """The first frame of the first run of ``consecutive`` confident frames (all of them, in a shorter clip)."""
    run = min(consecutive, len(confident))
    if run == 0:
        return None
    windows = np.lib.stride_tricks.sliding_window_view(np.asarray(confident, dtype=bool), run).all(axis=1)
    found = np.flatnonzero(windows)
    return int(found[0]) if len(found) else None


@dataclass(frozen=True)
class Seed:
    """The target's region on one frame, in frame pixels, in the forms SAM2 takes as prompts."""

    mask: np.ndarray  # (H, W) bool
    box: tuple[float, float, float, float]  # x0, y0, x1, y1
    point: tuple[float, float]  # x, y of the best cell's centre


def _region(cells: np.ndarray, peak: tuple[int, int]) -> np.ndarray:
    """The cells connected (4-neighbourhood) to ``peak`` among those marked in ``cells``, peak included."""
    region = np.zeros_like(cells, dtype=bool)
    region[peak] = True
    pending = [peak]
    while pending:
        row, column = pending.pop()
        for step_row, step_column in NEIGHBOURS:
            neighbour = (row + step_row, column + step_column)
            if 0 <= neighbour[0] < cells.shape[0] and 0 <= neighbour[1] < cells.shape[1]:
                if cells[neighbour] and not region[neighbour]:
                    region[neighbour] = True
                    pending.append(neighbour)
    return region


def seed(probabilities: np.ndarray, frame_size: tuple[int, int], threshold: float) -> Seed:
    """The region around the best cell of one frame's (h, w) map, scaled to ``frame_size`` (height, width)."""
    cells_h, cells_w = probabilities.shape
    height, width = frame_size
    peak = np.unravel_index(int(np.argmax(probabilities)), probabilities.shape)
    region = _region(probabilities >= threshold, (int(peak[0]), int(peak[1])))
    rows = np.arange(height) * cells_h // height
    columns = np.arange(width) * cells_w // width
    cells_mask = region[rows[:, None], columns[None, :]]
    mask = cells_mask & (upsample(probabilities, frame_size) >= threshold)
    if not mask.any():  # a single cell just at the threshold: bilinear blur keeps no pixel above it
        mask = cells_mask
    marked_rows, marked_columns = np.nonzero(region)
    box = (
        marked_columns.min() * width / cells_w,
        marked_rows.min() * height / cells_h,
        (marked_columns.max() + 1) * width / cells_w,
        (marked_rows.max() + 1) * height / cells_h,
    )
    point = ((peak[1] + 0.5) * width / cells_w, (peak[0] + 0.5) * height / cells_h)
    return Seed(mask, tuple(float(value) for value in box), (float(point[0]), float(point[1])))
