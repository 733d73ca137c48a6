"""Options shared by every subcommand that runs the model, so they are spelled the same everywhere."""

from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_VARIANT = "peskavlp"


def add_model_options(parser: argparse.ArgumentParser) -> None:
    model = parser.add_argument_group("model")
    model.add_argument(
        "--checkpoint",
        default=DEFAULT_VARIANT,
        help=f"a fetched variant (surgvlp, hecvl, peskavlp) or a checkpoint file (default: {DEFAULT_VARIANT})",
    )
    model.add_argument("--text-model", type=Path, help="Bio_ClinicalBERT folder (default: the one in the weights folder)")
    model.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when available)")
    model.add_argument("--precision", choices=("auto", "bf16", "fp16", "fp32"), default="auto", help="autocast on CUDA (default: bf16 where supported); the CPU always uses fp32")
    model.add_argument(
        "--preprocess",
        choices=("pil", "tensor"),  # surgvlp.network.preprocess.PREPROCESS_MODES, without importing torch
        default="pil",
        help="pil: resize frames exactly as upstream (default); tensor: faster, differs by one grey level on some pixels",
    )
    model.add_argument("--batch-size", type=int, default=64, help="frames per forward pass (default: 64)")
    add_allow_untrained_option(model, "run a model with random weights (for demos and tests; outputs are marked untrained)")
    parser.set_defaults(loads_model=True)


def add_allow_untrained_option(parser: argparse.ArgumentParser | argparse._ArgumentGroup, purpose: str) -> None:
    """The one switch, besides SURGVLP_ALLOW_UNTRAINED=1, that lets random weights through."""
    parser.add_argument("--allow-untrained", action="store_true", help=f"{purpose}. Also SURGVLP_ALLOW_UNTRAINED=1")


def add_source_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", type=Path, metavar="INPUT", help="video file, DICOM video, multi-frame DICOM, DICOM series folder or frame folder")
    sampling = parser.add_argument_group("sampling")
    sampling.add_argument("--fps", type=float, default=1.0, help="frames per second to sample (default: 1, as upstream)")
    sampling.add_argument("--start", type=float, help="first second to read")
    sampling.add_argument("--end", type=float, help="last second to read")
    sampling.add_argument("--folder-fps", type=float, help="frame rate of a frame folder when it has no sidecar (default: 1)")
    add_decode_workers_option(sampling)


def add_decode_workers_option(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    parser.add_argument(
        "--decode-workers",
        type=int,
        default=0,
        metavar="N",
        help="decode in N processes, for long videos on machines with cores to spare (default: 0, one decoding thread)",
    )


def open_input(args: argparse.Namespace):
    from surgvlp.sources import open_source

    return open_source(args.input, fps=args.fps, start=args.start, end=args.end, folder_fps=args.folder_fps)


def load_model_from_args(args: argparse.Namespace):
    from surgvlp import load_model

    return load_model(
        args.checkpoint,
        text_model=args.text_model,
        allow_untrained=args.allow_untrained,
        device=args.device,
        precision=args.precision,
        preprocess=args.preprocess,
    )

