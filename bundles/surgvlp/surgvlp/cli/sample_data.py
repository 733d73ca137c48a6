"""``surgvlp sample-data DIR``: write the synthetic laparoscopic case used by tests, benchmarks and demos."""

from __future__ import annotations

import argparse
from pathlib import Path

from surgvlp.cli import arguments

MAX_DURATION = 3600  # an hour renders for minutes; more is a typo
MAX_VIDEO_FPS = 240


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "sample-data",
        help="write a synthetic laparoscopic case (mp4, DICOM video, multi-frame DICOM, frames, annotations, masks)",
        description=(
            "Render a synthetic laparoscopic cholecystectomy with the seven Cholec80 phases in order, "
            "deterministic for a seed, and write it in every container SurgVLP reads, with its phase and "
            "instrument ground truth. Unset options keep the defaults: 70 s, 640x360, 25 fps, seed 0."
        ),
    )
    parser.add_argument("directory", type=Path, metavar="DIR", help="folder to write the case into (created)")
    parser.add_argument(
        "--duration",
        type=arguments.count(maximum=MAX_DURATION),
        metavar="SECONDS",
        default=argparse.SUPPRESS,
        help=f"length in whole seconds, at least 7 (one per phase), at most {MAX_DURATION}",
    )
    parser.add_argument("--seed", type=arguments.seed, metavar="N", default=argparse.SUPPRESS, help="random seed, 0 or more")
    parser.add_argument("--size", type=_size, metavar="WxH", default=argparse.SUPPRESS, help="frame size, even numbers")
    parser.add_argument(
        "--fps", type=arguments.count(maximum=MAX_VIDEO_FPS), metavar="N", default=argparse.SUPPRESS,
        help=f"video frame rate, at most {MAX_VIDEO_FPS}",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from surgvlp.sample_data import write_sample_case

    options = {name: getattr(args, name) for name in ("duration", "seed", "size", "fps") if hasattr(args, name)}
    case = write_sample_case(args.directory, **options)
    scenario = case.scenario
    print(
        f"wrote a {scenario.duration} s synthetic case ({scenario.width}x{scenario.height}, {scenario.fps} fps, "
        f"seed {scenario.seed}) to {case.directory}"
    )
    return 0


def _size(text: str) -> tuple[int, int]:
    width, separator, height = text.lower().partition("x")
    if not separator or not width.isdigit() or not height.isdigit():
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 640x360, got {text!r}")
    return int(width), int(height)
