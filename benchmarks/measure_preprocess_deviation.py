"""How far ``--preprocess tensor`` is from upstream's PIL pixels, per frame size (the README's figures).

For each size it renders synthetic laparoscopy frames (smooth, as the sample case) and the same frames
with sensor-like noise (sigma 8 grey levels, closer to real endoscope video), crops them with both
preprocessing modes and counts the uint8 values of the 224 x 224 crops that differ. (That the ``pil`` crops
equal upstream's bit for bit is a test: tests/test_parity.py.) Pixels only, no model, seconds on one core.

    python benchmarks/measure_preprocess_deviation.py [--frames 10]
"""

from __future__ import annotations

import argparse

import numpy as np

from surgvlp.network.preprocess import crop_frame
from surgvlp.sample_data.render import CaseRenderer
from surgvlp.sample_data.scenario import plan_scenario

SIZES = [(854, 480), (1920, 1080), (1280, 720), (640, 360), (720, 576), (333, 217)]
NOISE_SIGMA = 8.0


def tensor_deviation(frames: list[np.ndarray]) -> tuple[float, int]:
    """Fraction of crop values where ``tensor`` differs from ``pil``, and the largest difference in grey levels."""
    differences = np.stack([
        np.abs(crop_frame(frame, "tensor").astype(np.int16) - crop_frame(frame, "pil").astype(np.int16))
        for frame in frames
    ])
    return float(np.count_nonzero(differences)) / differences.size, int(differences.max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=10, help="frames per size (default: 10)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print("| frame size | smooth: values differing, max | noisy: values differing, max |")
    print("|---|---|---|")
    for width, height in SIZES:
        renderer = CaseRenderer(plan_scenario(0, args.frames * 6, 1, width, height))
        smooth = [renderer.render(index * 6)[0] for index in range(args.frames)]
        noisy = [(frame + rng.normal(0, NOISE_SIGMA, frame.shape)).clip(0, 255).astype(np.uint8) for frame in smooth]
        cells = []
        for frames in (smooth, noisy):
            fraction, largest = tensor_deviation(frames)
            cells.append(f"{100 * fraction:.3f} %, {largest}")
        print(f"| {width}×{height} | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    main()
