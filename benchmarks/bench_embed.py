"""Frames per second of ``surgvlp embed`` end to end versus the bare image-encoder forward, on the same frames.

End to end is what ``surgvlp embed --frames DIR`` runs after the model is loaded: PNG decoding in the frame
source's thread, resize/crop/normalise in the encoder's prefetch thread, and the forward pass. The baseline
feeds the same frames, already preprocessed into tensors, straight to the forward pass. The target is a ratio
of at least 0.8: preprocessing overlapped with the model rather than added to it.

    python benchmarks/bench_embed.py [--frames 96] [--batch-size 32] [--size full|tiny]
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

from surgvlp.network.encoder import SurgVLPEncoder
from surgvlp.network.preprocess import to_model_input
from surgvlp.sources import open_source
from surgvlp.network.untrained import write_untrained_model


def write_frames(folder: Path, count: int, height: int = 480, width: int = 854) -> None:
    """Endoscope-sized PNG frames with smooth structure and noise, so PNG decoding costs what it does on real video."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:height, 0:width] / height
    for index in range(count):
        base = np.stack([np.sin(3 * x + 2 * y + index * 0.1 + shift) for shift in (0.0, 2.0, 4.0)], axis=-1)
        image = ((base + 1) * 110 + rng.normal(0, 6, base.shape)).clip(0, 255).astype(np.uint8)
        Image.fromarray(image).save(folder / f"frame_{index}.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--size", choices=("full", "tiny"), default="full", help="text-model size; the image encoder is always the full ResNet-50")
    parser.add_argument("--device", default=None)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        files = write_untrained_model(scratch / "model", size=args.size)
        frames_dir = scratch / "frames"
        frames_dir.mkdir()
        write_frames(frames_dir, args.frames)
        encoder = SurgVLPEncoder.from_files(files.checkpoint, files.text_model_dir, device=args.device)

        ready = to_model_input([frame.image for frame in open_source(frames_dir, fps=None)])
        encoder.encode_images(ready[: args.batch_size])  # warm-up: allocator, kernels, thread pools

        start = time.perf_counter()
        for first in range(0, len(ready), args.batch_size):
            encoder.encode_images(ready[first : first + args.batch_size])
        bare = args.frames / (time.perf_counter() - start)

        start = time.perf_counter()
        encoded = encoder.encode_source(open_source(frames_dir, fps=None), batch_size=args.batch_size)
        end_to_end = len(encoded.embeddings) / (time.perf_counter() - start)

    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, device {encoder.device}")
    print(f"frames: {args.frames} PNG 854x480, batch {args.batch_size}")
    print(f"bare forward on ready tensors: {bare:.2f} frames/s")
    print(f"surgvlp embed end to end:      {end_to_end:.2f} frames/s")
    print(f"ratio end-to-end / bare:       {end_to_end / bare:.2f} (target >= 0.80)")


if __name__ == "__main__":
    main()
