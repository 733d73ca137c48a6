"""Frame-source speed: sampling 1 frame per second from a long H.264 video, as a plain mp4 and wrapped in DICOM.

The test video is a moving colour gradient, 854x480 at 30 fps, H.264 High Profile level 4.1 (x264
"veryfast", CRF 23) with a keyframe every 2 s and B-frames, the GOP structure of a typical camera.
Only the sampling is timed, from opening the source (which scans the packet index) to the last frame;
the best of ``--repeats`` runs is reported.

    python benchmarks/bench_sources.py                 # 10-minute video (generated once, ~1 min)
    python benchmarks/bench_sources.py --duration 60   # quicker check

Targets (issue 3): at least 30x real time (20 s or less for 10 minutes) on 2 CPU cores, and the DICOM
path within 10 % of the mp4 path. The "sequential" row decodes every frame (seeking disabled) to show
what keyframe seeking saves.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

import surgvlp.sources.video as video_module
from surgvlp.sample_data import CaseIdentity, wrap_video
from surgvlp.sources import open_source

from h264 import write_h264


def write_gradient_video(path: Path, duration: int, width: int, height: int, fps: int, keyframe_seconds: int) -> None:
    """A gradient panning over the frame: cheap to draw, and every frame differs from the last."""
    rows, columns = np.mgrid[0 : 2 * height, 0 : 2 * width]
    canvas = np.stack(
        [columns * 255 // (2 * width), rows * 255 // (2 * height), (rows + columns) % 256], axis=-1
    ).astype(np.uint8)
    keyint = keyframe_seconds * fps
    options = {
        "preset": "veryfast",
        "crf": "23",
        "profile": "high",
        "level": "4.1",
        "x264-params": f"keyint={keyint}:min-keyint={keyint}:scenecut=0",
    }

    def frames():
        for number in range(duration * fps):
            x = int((np.sin(number / 50) + 1) / 2 * 0.95 * width)
            y = int((np.cos(number / 70) + 1) / 2 * 0.95 * height)
            yield np.ascontiguousarray(canvas[y : y + height, x : x + width])

    write_h264(path, frames(), fps, options, faststart=True)


def time_sampling(path: Path, fps: float) -> tuple[float, int]:
    start = time.perf_counter()
    source = open_source(path, fps=fps)
    count = sum(1 for _ in source)
    return time.perf_counter() - start, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=600, help="video length in seconds (default 600)")
    parser.add_argument("--size", default="854x480", help="WIDTHxHEIGHT (default 854x480)")
    parser.add_argument("--fps", type=int, default=30, help="video frame rate (default 30)")
    parser.add_argument("--keyframe-seconds", type=int, default=2, help="keyframe interval (default 2 s)")
    parser.add_argument("--sample-fps", type=float, default=1.0, help="sampling rate (default 1)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per source, best reported (default 3)")
    parser.add_argument("--workdir", type=Path, help="keep (and reuse) the generated files here")
    args = parser.parse_args()
    width, height = (int(value) for value in args.size.lower().split("x"))
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-sources-"))
    workdir.mkdir(parents=True, exist_ok=True)
    stem = f"gradient_{args.duration}s_{width}x{height}_{args.fps}fps_k{args.keyframe_seconds}"
    mp4, dicom = workdir / f"{stem}.mp4", workdir / f"{stem}.dcm"
    if not mp4.exists():
        started = time.perf_counter()
        write_gradient_video(mp4, args.duration, width, height, args.fps, args.keyframe_seconds)
        print(f"generated {mp4} in {time.perf_counter() - started:.1f} s")
    if not dicom.exists():
        wrap_video(mp4, dicom, CaseIdentity(seed=0))

    best: dict[str, tuple[float, int]] = {}
    for _ in range(args.repeats):  # alternate the sources so that load from other processes hits both alike
        for label, path in (("mp4", mp4), ("DICOM video", dicom)):
            seconds, count = time_sampling(path, args.sample_fps)
            best[label] = min(best.get(label, (seconds, count)), (seconds, count))
    video_module.SEEK_MIN_SKIPPED_FRAMES = 1 << 62
    best["mp4, sequential"] = time_sampling(mp4, args.sample_fps)
    rows = [(label, seconds, count) for label, (seconds, count) in best.items()]

    print(
        f"{args.duration} s of {width}x{height} {args.fps} fps H.264 (keyframe every {args.keyframe_seconds} s), "
        f"sampled at {args.sample_fps:g} fps"
    )
    print(f"{'source':<18}{'frames':>8}{'seconds':>10}{'x real time':>14}")
    for label, seconds, count in rows:
        print(f"{label:<18}{count:>8}{seconds:>10.2f}{args.duration / seconds:>14.1f}")
    print(f"DICOM / mp4 time ratio: {rows[1][1] / rows[0][1]:.3f}")


if __name__ == "__main__":
    main()
