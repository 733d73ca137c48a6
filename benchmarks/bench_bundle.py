"""Speed of the MONAI bundle: image-encoder frames/s, and the wall time of bundle inference over one video.

Two figures per model size (random weights in the official layout, converted into a scratch bundle exactly as
``surgvlp weights convert`` does):

- encoder: frames/s of the image encoder on ready (N, 3, 224, 224) batches (bf16 autocast on CUDA, fp32 on
  the CPU). Target on one H100-class card, batch 256: at least 2,000 frames/s.
- bundle: the wall time of MONAI's infer workflow on ``configs/inference.json`` (``monai.bundle.run`` in this
  process, logging off) over a synthetic 640x360, 25 fps H.264 video sampled at 1 fps, from loading and hash-checking the weights to the
  written timeline: decoding, preprocessing, both encoders, decoding of phases. Target for a one-hour
  video (3,600 sampled frames) on one H100-class card: at most 15 s.

    python benchmarks/bench_bundle.py                       # CUDA: full model, batch 256, a one-hour video
    python benchmarks/bench_bundle.py --device cpu          # CPU: tiny and full model, 64 frames, batch 16

The image encoder is the full ResNet-50 in both sizes; the sizes differ in the text encoder (a 4-layer toy
BERT or Bio_ClinicalBERT's 12 layers), which shows in loading and prompt encoding, not in frames/s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from monai.bundle import run as run_bundle

import surgvlp
from surgvlp.bundle.convert import convert_checkpoint
from surgvlp.bundle.inference import INDEX_NAME
from surgvlp.network.encoder import pick_device
from surgvlp.network.untrained import write_untrained_model
from surgvlp.weights import WeightStore

from h264 import write_h264

VIDEO_SIZE = (640, 360)
VIDEO_FPS = 25
LOOP_SECONDS = 8


def write_video(path: Path, seconds: int, gop: int) -> None:
    """A moving colour pattern with texture, encoded as H.264 with a keyframe every ``gop`` frames.

    x264's default keyframe interval is 250 frames (10 s at 25 fps), as in many recorder exports: sampling at
    1 fps then has to decode nearly every frame, which is the case that costs. The pattern loops every
    ``LOOP_SECONDS``, so that writing a one-hour video costs the encoder's time, not numpy's.
    """
    width, height = VIDEO_SIZE
    y, x = np.mgrid[0:height, 0:width].astype(np.float32) / height
    texture = np.random.default_rng(0).normal(0, 8, (height, width, 1)).astype(np.float32)
    loop = LOOP_SECONDS * VIDEO_FPS
    images = []
    for index in range(loop):
        phase = 2 * np.pi * index / loop
        base = np.stack([np.sin(3 * x + 2 * y + phase + shift) for shift in (0.0, 2.0, 4.0)], axis=-1)
        images.append(((base + 1) * 110 + texture).clip(0, 255).astype(np.uint8))
    frames = (images[index % loop] for index in range(seconds * VIDEO_FPS))
    write_h264(path, frames, VIDEO_FPS, {"preset": "ultrafast", "g": str(gop)})


SOURCE_BUNDLE = Path(__file__).resolve().parents[1] / "bundles" / "surgvlp"


def scratch_bundle(folder: Path, size: str) -> Path:
    """A copy of the bundle's configs holding a random model of ``size``, recorded as untrained and converted."""
    files = write_untrained_model(folder / f"untrained-{size}", size=size)
    store = WeightStore(folder / "weights")
    store.record(f"untrained-{size}", files.checkpoint, source="generated", untrained=True)
    shutil.copytree(SOURCE_BUNDLE / "configs", folder / "bundle" / "configs")
    convert_checkpoint(f"untrained-{size}", folder / "bundle", store=store)
    return folder / "bundle"


def encoder_frames_per_second(bundle: Path, device: str, precision: str, frames: int, batch_size: int) -> float:
    loaded = surgvlp.load_model("model", allow_untrained=True, device=device, precision=precision, store=WeightStore(bundle / "models"))
    batch = torch.randn(batch_size, 3, 224, 224)
    loaded.encoder.encode_images(batch)  # warm-up: allocator, kernels, cuDNN autotuning
    batches = max(1, frames // batch_size)
    if loaded.encoder.device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(batches):
        loaded.encoder.encode_images(batch)  # returns on the CPU, so each batch is complete when it returns
    return batches * batch_size / (time.perf_counter() - start)


def bundle_wall_time(
    bundle: Path, video: Path, scratch: Path, device: str, precision: str, batch_size: int, decode_workers: int
) -> tuple[float, int]:
    out = scratch / f"out-{decode_workers}"
    start = time.perf_counter()
    run_bundle(
        config_file=str(bundle / "configs" / "inference.json"), logging_file=False, bundle_root=str(bundle),
        videos=[str(video)], output_dir=str(out), device=device, precision=precision, batch_size=batch_size,
        decode_workers=decode_workers, allow_untrained=True,
        cache_dir=str(scratch / f"cache-{decode_workers}"),  # an empty cache: every frame is decoded and encoded
    )
    wall = time.perf_counter() - start
    return wall, json.loads((out / INDEX_NAME).read_text())["videos"][0]["frames"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available)")
    parser.add_argument("--sizes", nargs="+", choices=("tiny", "full"), help="model sizes (default: full on CUDA, tiny and full on the CPU)")
    parser.add_argument("--frames", type=int, help="frames for the encoder figure (default: 4096 on CUDA, 64 on the CPU)")
    parser.add_argument("--batch-size", type=int, help="default: 256 on CUDA, 16 on the CPU")
    parser.add_argument("--precision", default="bf16", choices=("bf16", "fp16", "fp32"), help="autocast on CUDA (default: bf16)")
    parser.add_argument("--video-seconds", type=int, help="length of the bundle-inference video (default: 3600 on CUDA, 64 on the CPU)")
    parser.add_argument("--gop", type=int, default=250, help="keyframe interval of that video, in frames (default: 250)")
    parser.add_argument("--decode-workers", type=int, help="decoding processes (default: every core on CUDA, 2 on the CPU); "
                        "the bundle is also timed with one decoding thread, as the baseline")
    args = parser.parse_args()

    device = pick_device(args.device)
    on_gpu = device.type == "cuda"
    sizes = args.sizes or (["full"] if on_gpu else ["tiny", "full"])
    frames = args.frames or (4096 if on_gpu else 64)
    batch_size = args.batch_size or (256 if on_gpu else 16)
    seconds = args.video_seconds or (3600 if on_gpu else 64)
    workers = args.decode_workers if args.decode_workers is not None else (os.cpu_count() if on_gpu else 2)
    processor = platform.processor() or platform.machine()
    card = torch.cuda.get_device_name(device) if on_gpu else f"CPU {processor}, {torch.get_num_threads()} torch threads"
    print(f"device: {card}; precision {args.precision if on_gpu else 'fp32'}; batch {batch_size}")

    with tempfile.TemporaryDirectory() as folder:
        scratch = Path(folder)
        video = scratch / "video.mp4"
        start = time.perf_counter()
        write_video(video, seconds, args.gop)
        print(f"video: {seconds} s, {VIDEO_SIZE[0]}x{VIDEO_SIZE[1]} at {VIDEO_FPS} fps, keyframe every {args.gop} frames "
              f"(written in {time.perf_counter() - start:.0f} s)")
        for size in sizes:
            bundle = scratch_bundle(scratch / size, size)
            rate = encoder_frames_per_second(bundle, str(device), args.precision, frames, batch_size)
            print(f"{size:>4} model: image encoder {rate:8.1f} frames/s ({frames // batch_size * batch_size} frames)")
            for decode_workers in dict.fromkeys([0, workers]):
                wall, sampled = bundle_wall_time(bundle, video, scratch / size, str(device), args.precision, batch_size, decode_workers)
                how = f"{decode_workers} decoding processes" if decode_workers > 1 else "one decoding thread"
                print(f"      bundle inference, {how}: {wall:6.1f} s for {sampled} frames at 1 fps = "
                      f"{sampled / wall:6.1f} frames/s end to end ({sampled / wall / rate:.2f} x the encoder alone)")
    if on_gpu:
        print("targets on one H100-class card: encoder >= 2000 frames/s at batch 256 bf16; one-hour video <= 15 s")


if __name__ == "__main__":
    main()
