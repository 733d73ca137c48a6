"""Decoding one long source in several processes, for when a single decoder cannot keep up with the model.

One decoder uses about one core, and sampling a long video at 1 fps with a keyframe every second or two
is mostly seeks, which split across processes without any coordination. Each worker process receives
the source once, pickled with its frame index (nothing is re-scanned), and decodes consecutive runs of
the sampled frames. ``transform`` runs in the worker on each image (the model's resize and crop), so
what crosses the process boundary is small. Runs come back in order, at most two per worker ahead of
the consumer, so memory stays bounded whatever the length of the video.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Iterator
from itertools import islice

import numpy as np
import torch

from surgvlp.sources.base import Frame, FrameSource, Transform, transformed

RUN_LENGTH = 16
RUNS_AHEAD_PER_WORKER = 2

_source: FrameSource | None = None
_transform: Transform | None = None


def _adopt(source: FrameSource, transform: Transform | None) -> None:
    """Worker start-up: keep the source and transform, and leave the cores to the other workers."""
    global _source, _transform
    _source, _transform = source, transform
    torch.set_num_threads(1)


def _decode_run(positions: np.ndarray) -> list[Frame]:
    return list(transformed(_source.frames_at(positions), _transform))


def iterate_parallel(
    source: FrameSource,
    workers: int,
    transform: Transform | None = None,
    run_length: int = RUN_LENGTH,
) -> Iterator[Frame]:
    """The frames ``iter(source)`` yields, decoded by ``workers`` processes; ``transform`` (a module-level
    function, so that it pickles) is applied to every image in the workers."""
    runs = iter(source.runs(run_length))
    context = multiprocessing.get_context("spawn")  # fork would copy the parent's threads and CUDA state
    with context.Pool(workers, initializer=_adopt, initargs=(source, transform)) as pool:
        pending = deque(pool.apply_async(_decode_run, (run,)) for run in islice(runs, workers * RUNS_AHEAD_PER_WORKER))
        while pending:
            frames = pending.popleft().get()
            following = next(runs, None)
            if following is not None:
                pending.append(pool.apply_async(_decode_run, (following,)))
            yield from frames
