"""``surgvlp segment``: masks of what a text names, on every sampled frame of a video (.seg.nrrd, NIfTI, JSON)."""

from __future__ import annotations

import argparse
from pathlib import Path

from surgvlp.cli import arguments
from surgvlp.cli.options import add_model_options, add_source_options, load_model_from_args, open_input
from surgvlp.cli.preflight import preflight
from surgvlp.segmentation.outputs import check_output_names
from surgvlp.segmentation.prompts import DEFAULT_NEGATIVES, check_prompts
from surgvlp.segmentation.settings import PROMPT_KINDS, DetectionSettings
from surgvlp.weights.variants import SAM2_MODELS

DEFAULTS = DetectionSettings()
DEFAULT_BATCH_SIZE = 8
"""Whole 360 x 640 frames: a batch of 8 keeps the encoder's activations near 1 GB."""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "segment",
        help="text-referring segmentation: masks of what --text names on every sampled frame (.seg.nrrd, NIfTI, JSON)",
        description="Find what --text names with the image encoder's dense similarity map, start at the first frame "
        "where it is found confidently on several frames in a row, and track it forwards and backwards through the clip "
        "with SAM2 (--sam2), or without SAM2 threshold the maps frame by frame (coarse mode). Training-free; every output "
        "says which mode drew it and whether a model was untrained.",
    )
    add_source_options(parser, decode_workers=False)
    parser.add_argument("--text", type=arguments.text, required=True, help="what to segment, e.g. 'the clipper'")
    parser.add_argument(
        "--negative",
        type=arguments.prompt_list,
        action="append",
        metavar="PROMPTS",
        help=f"comma-separated prompts every region is contrasted with; repeatable (default: {','.join(DEFAULT_NEGATIVES)})",
    )
    parser.add_argument(
        "--sam2",
        metavar="NAME_OR_DIR",
        help="the SAM2 tracker: a fetched name (`surgvlp weights fetch sam2-tiny`) or a folder holding config.json and "
        "model.safetensors; without it the masks are the coarse similarity maps (mode: coarse)",
    )
    detection = parser.add_argument_group("detection")
    detection.add_argument("--threshold", type=arguments.fraction, default=DEFAULTS.threshold, help=f"probability from which a region belongs to the target (default: {DEFAULTS.threshold})")
    detection.add_argument("--confidence", type=arguments.fraction, default=DEFAULTS.confidence, help=f"best-region probability from which a frame shows the target (default: {DEFAULTS.confidence})")
    detection.add_argument("--consecutive", type=arguments.consecutive, default=DEFAULTS.consecutive, help=f"confident frames in a row that start tracking (default: {DEFAULTS.consecutive})")
    detection.add_argument("--prompt", choices=PROMPT_KINDS, default="box", help="seed SAM2 with a box and a point (default) or with the detected region's mask")
    parser.add_argument("--threads", type=arguments.threads, default=1, help="torch CPU threads; SAM2 runs fastest with 1 on a shared machine (default: 1)")
    parser.add_argument("--out", type=Path, required=True, help="label volume for Slicer, *.seg.nrrd (one slice per sampled frame)")
    parser.add_argument("--nifti", type=Path, help="also write the label volume as *.nii.gz or *.nii")
    parser.add_argument("--json", type=Path, help="also write the prompt, mode, frame times, per-frame scores and areas")
    add_model_options(parser, batch_size=DEFAULT_BATCH_SIZE)
    parser.set_defaults(handler=run)


def sam2_input(name_or_folder: str | None) -> Path | None:
    """The SAM2 folder that outputs must spare; a fetched name is looked up without hashing (loading verifies it)."""
    if name_or_folder is None:
        return None
    from surgvlp.weights import WeightStore
    from surgvlp.weights.sam2_files import require_sam2_folder

    folder = Path(name_or_folder).expanduser()
    name = name_or_folder.lower()
    if not folder.exists():
        store = WeightStore()
        if name in store.sam2_names():
            return store.root / name
        if name in SAM2_MODELS:
            store.sam2_folder(name)  # raises: how to fetch it
    require_sam2_folder(folder)
    return folder


def _negatives(args: argparse.Namespace) -> list[str]:
    return [prompt for group in args.negative for prompt in group] if args.negative else list(DEFAULT_NEGATIVES)


def run(args: argparse.Namespace) -> None:
    check_output_names(args.out, args.nifti)
    negatives = _negatives(args)
    check_prompts(args.text, negatives)
    outputs = preflight(
        args,
        {"--out": args.out, "--nifti": args.nifti, "--json": args.json},
        {"INPUT": args.input, "--sam2": sam2_input(args.sam2)},
    )
    source = open_input(args)
    # No background preload of torch here: this command imports it at once, and two threads importing
    # torchvision together can see each other's half-initialised modules.
    from surgvlp.progress import progress_bar
    from surgvlp.segmentation.pipeline import segment
    from surgvlp.segmentation.tracking import load_sam2

    # The tracker first: a refused untrained SAM2 folder then costs no encoder load.
    tracker = None if args.sam2 is None else load_sam2(args.sam2, device=args.device, allow_untrained=args.allow_untrained)
    model = load_model_from_args(args)
    bar, progress = progress_bar(len(source) * (2 if tracker else 1), args.command)
    with bar:
        result = segment(
            model, source, args.text, negatives=negatives, sam2=tracker, threshold=args.threshold,
            confidence=args.confidence, consecutive=args.consecutive, prompt=args.prompt, threads=args.threads,
            batch_size=args.batch_size, progress=progress,
        )
    result.write(outputs["--out"], nifti=outputs.get("--nifti"), json=outputs.get("--json"))
    found = sum(1 for area in result.areas if area)
    start = "never found confidently" if result.start_frame is None else f"start frame {result.start_frame} ({result.times[result.start_frame]:.2f} s)"
    note = " (untrained model: the masks mean nothing)" if result.untrained else ""
    print(f"wrote {args.out}: {len(result.times)} frames, mode {result.mode}, {start}, target on {found} frames{note}")
