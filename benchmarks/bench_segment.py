"""Frames per second of SAM2 tracking in ``surgvlp segment``, at 480p, with one torch thread and with more.

The tracker is the SAM2.1 Hiera-Tiny architecture (transformers' default ``Sam2VideoConfig``, random weights:
speed does not depend on what the weights learned), run through the real tracking path: frames decoded from a
PNG folder in runs, SAM2's preprocessing, the video model seeded on the middle frame and propagated forwards
and backwards with its memory windowed, the masks upsampled to the frame. The similarity maps are given (a blob
on the moving object), so only tracking is timed. The baseline is the same run with ``--baseline-threads``
torch threads: on a 2-core machine shared with other work, one thread was far faster.

    python benchmarks/bench_segment.py [--frames 12] [--size hiera-tiny|hiera-small|tiny] [--image-size 1024]
                                       [--baseline-threads 2] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from surgvlp.segmentation.pipeline import segment_maps
from surgvlp.segmentation.settings import DetectionSettings
from surgvlp.segmentation.similarity import SimilarityMaps
from surgvlp.segmentation.tracking import load_sam2
from surgvlp.segmentation.untrained_sam2 import write_untrained_sam2
from surgvlp.sources import open_source

HEIGHT, WIDTH = 480, 854
CELLS = (12, 20)


def write_clip(folder: Path, count: int) -> list[tuple[int, int]]:
    """PNG frames of a textured field with a bright disk moving across it; returns the disk's centre per frame."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH]
    field = (np.stack([np.sin(x / 37.0 + shift) + np.cos(y / 23.0 - shift) for shift in (0.0, 1.0, 2.0)], -1) + 2) * 50
    centres = []
    for index in range(count):
        cy, cx = HEIGHT // 2, int(WIDTH * (0.2 + 0.6 * index / max(count - 1, 1)))
        image = field + rng.normal(0, 6, field.shape)
        image[(y - cy) ** 2 + (x - cx) ** 2 < 60**2] = (235, 235, 220)
        Image.fromarray(image.clip(0, 255).astype(np.uint8)).save(folder / f"frame_{index}.png")
        centres.append((cy, cx))
    return centres


def maps_for(source, centres: list[tuple[int, int]], found_from: int) -> SimilarityMaps:
    """Similarity maps with a confident blob on the disk from frame ``found_from`` on."""
    frames = [(frame.time, frame.index) for frame in source]
    probabilities = np.full((len(centres), *CELLS), 0.05, dtype=np.float32)
    for frame, (cy, cx) in enumerate(centres[found_from:], start=found_from):
        row, column = cy * CELLS[0] // HEIGHT, cx * CELLS[1] // WIDTH
        probabilities[frame, max(row - 1, 0) : row + 2, max(column - 1, 0) : column + 2] = 0.95
    times, indices = (np.array(values) for values in zip(*frames))
    return SimilarityMaps(probabilities, times, indices, (HEIGHT, WIDTH), "the disk", ("background",), {"untrained": True})


def frames_per_second(maps, source, tracker, threads: int) -> float:
    start = time.perf_counter()
    result = segment_maps(maps, source, tracker=tracker, settings=DetectionSettings(consecutive=1), threads=threads)
    elapsed = time.perf_counter() - start
    assert result.start_frame is not None and "none" not in result.states
    return len(result.times) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--size", choices=("hiera-tiny", "hiera-small", "tiny"), default="hiera-tiny")
    parser.add_argument("--image-size", type=int, default=1024, help="SAM2 input size of the Hiera sizes (default: 1024, as SAM2.1)")
    parser.add_argument("--baseline-threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        frames = scratch / "frames"
        frames.mkdir()
        centres = write_clip(frames, args.frames)
        (frames / "fps.txt").write_text("1\n")
        source = open_source(frames, fps=None)
        middle = args.frames // 2
        maps = maps_for(source, centres, middle)  # found from the middle frame on: tracking runs both ways
        tracker = load_sam2(write_untrained_sam2(scratch / "sam2", args.size, image_size=args.image_size), device=args.device, allow_untrained=True)
        short = open_source(frames, fps=None, end=2)
        frames_per_second(maps_for(short, centres[:2], 0), short, tracker, 1)  # warm-up: allocator, kernels, thread pools

        one = frames_per_second(maps, source, tracker, 1)
        baseline = frames_per_second(maps, source, tracker, args.baseline_threads)

    parameters = sum(parameter.numel() for parameter in tracker.model.parameters()) / 1e6
    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads available, device {tracker.device}")
    print(f"SAM2 {args.size} ({parameters:.1f} M parameters, random weights), input {tracker.image_size} px; {args.frames} PNG frames {WIDTH}x{HEIGHT}, seeded on frame {middle}")
    print(f"tracking, 1 torch thread:               {one:.3f} frames/s ({1 / one:.2f} s per frame)")
    print(f"baseline, {args.baseline_threads} torch threads:              {baseline:.3f} frames/s ({1 / baseline:.2f} s per frame)")
    print(f"ratio 1 thread / {args.baseline_threads} threads:               {one / baseline:.2f}")


if __name__ == "__main__":
    main()
