"""Options shared by every subcommand that runs the model, so they are spelled the same everywhere."""

from __future__ import annotations

import argparse
from pathlib import Path

from surgvlp.cli import arguments

DEFAULT_VARIANT = "peskavlp"


def add_model_options(parser: argparse.ArgumentParser, batch_size: int = 64) -> None:
    model = parser.add_argument_group("model")
    model.add_argument(
        "--checkpoint",
        default=DEFAULT_VARIANT,
        help=f"a fetched variant (surgvlp, hecvl, peskavlp) or a checkpoint file (default: {DEFAULT_VARIANT})",
    )
    model.add_argument("--text-model", type=Path, help="Bio_ClinicalBERT folder (default: the one in the weights folder)")
    model.add_argument("--device", type=arguments.device, help="cpu, cuda or cuda:N (default: cuda when available)")
    model.add_argument("--precision", choices=("auto", "bf16", "fp16", "fp32"), default="auto", help="autocast on CUDA (default: bf16 where supported); the CPU always uses fp32")
    model.add_argument(
        "--preprocess",
        choices=("pil", "tensor"),  # surgvlp.network.preprocess.PREPROCESS_MODES, without importing torch
        default="pil",
        help="pil: resize frames exactly as upstream (default); tensor: faster, differs by one grey level on some pixels",
    )
    model.add_argument("--batch-size", type=arguments.batch_size, default=batch_size, help=f"frames per forward pass, 1 to {arguments.MAX_BATCH_SIZE} (default: {batch_size})")
    add_allow_untrained_option(model, "run a model with random weights (for demos and tests; outputs are marked untrained)")


def add_allow_untrained_option(parser: argparse.ArgumentParser | argparse._ArgumentGroup, purpose: str) -> None:
    """The one switch, besides SURGVLP_ALLOW_UNTRAINED=1, that lets random weights through."""
    parser.add_argument("--allow-untrained", action="store_true", help=f"{purpose}. Also SURGVLP_ALLOW_UNTRAINED=1")


def add_source_options(parser: argparse.ArgumentParser, decode_workers: bool = True) -> None:
    parser.add_argument("input", type=Path, metavar="INPUT", help="video file, DICOM video, multi-frame DICOM, DICOM series folder or frame folder")
    sampling = parser.add_argument_group("sampling")
    add_fps_option(sampling, "frames per second to sample")
    sampling.add_argument("--start", type=arguments.seconds, help="first second to read")
    sampling.add_argument("--end", type=arguments.positive_seconds, help="second to stop reading at, after --start")
    sampling.add_argument("--folder-fps", type=arguments.fps, help="frame rate of a frame folder when it has no sidecar (default: 1)")
    if decode_workers:
        add_decode_workers_option(sampling)


def add_fps_option(parser: argparse.ArgumentParser | argparse._ArgumentGroup, purpose: str) -> None:
    """``--fps``: above the source's native rate, every frame is read once, as at the native rate."""
    parser.add_argument(
        "--fps",
        type=arguments.fps,
        default=1.0,
        help=f"{purpose}, above 0 and at most {arguments.MAX_FPS:g}; a rate above the video's own reads every "
        "frame once (default: 1, as upstream)",
    )


def add_decode_workers_option(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    parser.add_argument(
        "--decode-workers",
        type=arguments.decode_workers,
        default=0,
        metavar="N",
        help=f"decode in N processes (at most {arguments.MAX_DECODE_WORKERS}), for long videos on machines with cores "
        "to spare (default: 0, one decoding thread)",
    )


def open_input(args: argparse.Namespace):
    from surgvlp.sources import open_source

    return open_source(args.input, fps=args.fps, start=args.start, end=args.end, folder_fps=args.folder_fps)


PREFETCH_CROPS = 256
"""Frames cropped ahead while the model loads: about what one core decodes meanwhile, in 38 MB of crops."""


def start_decoding(args: argparse.Namespace, source) -> None:
    """Decode, and crop, the first frames before the model loads: an unreadable source is reported before that
    work, and the decoding uses the core that importing torch and reading the checkpoint leave idle."""
    if args.decode_workers > 1:  # the encoder starts processes of its own, which decode from the start
        return
    if args.preprocess == "pil":
        from surgvlp.network.crop import pil_crop

        source.prefetch(min(PREFETCH_CROPS, len(source)), transform=pil_crop)
    else:  # the tensor resize runs on whole batches of whole frames, which are large
        source.prefetch(min(args.batch_size, len(source)))


def load_model_from_args(args: argparse.Namespace, text_encoder: bool = True):
    from surgvlp import load_model

    return load_model(
        args.checkpoint,
        text_model=args.text_model,
        allow_untrained=args.allow_untrained,
        device=args.device,
        precision=args.precision,
        preprocess=args.preprocess,
        text_encoder=text_encoder,
    )

