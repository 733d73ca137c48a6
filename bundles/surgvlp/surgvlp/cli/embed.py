"""``surgvlp embed``: frame and prompt embeddings to an ``.npz`` file that other tools read."""

from __future__ import annotations

import argparse
from pathlib import Path

from surgvlp.cli.options import add_decode_workers_option, add_fps_option, add_model_options, load_model_from_args, start_decoding
from surgvlp.cli.preflight import preflight
from surgvlp.errors import SurgVLPError
from surgvlp.progress import progress_bar


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "embed",
        help="embed video frames (and optional prompts) into an .npz of SurgVLP embeddings",
        description="Embed frames and prompts with a SurgVLP-family model. The .npz holds image_embeddings (N x 768), "
        "text_embeddings (P x 768), probabilities (N x P, softmax of 100 x cosine) when prompts are given, and the "
        "frame times in seconds.",
    )
    add_model_options(parser)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--frames", type=Path, help="folder of .png/.jpg frames, taken in natural order of their names")
    source.add_argument("--video", type=Path, help="video file, DICOM video or multi-frame DICOM, or a DICOM series folder")
    add_fps_option(parser, "frames per second sampled from --video")
    add_decode_workers_option(parser)
    parser.add_argument("--prompts", type=Path, help="text file with one prompt per line, kept verbatim")
    parser.add_argument("--out", type=Path, required=True, help="output .npz file")
    parser.set_defaults(handler=run)


def read_prompt_lines(path: Path) -> list[str]:
    """One prompt per line, verbatim: only the line break goes, trailing spaces stay (upstream prompts have them)."""
    try:
        lines = path.read_text(encoding="utf-8").split("\n")
    except (OSError, UnicodeDecodeError) as error:
        raise SurgVLPError(f"cannot read prompts file {path}: {error}") from None
    if lines and lines[-1] == "":
        lines.pop()
    prompts = [line.removesuffix("\r") for line in lines]
    if not prompts:
        raise SurgVLPError(f"prompts file {path} is empty")
    blank = [number for number, prompt in enumerate(prompts, start=1) if not prompt.strip()]
    if blank:
        raise SurgVLPError(f"prompts file {path}: line {blank[0]} is an empty prompt")
    return prompts


def run(args: argparse.Namespace) -> None:
    preflight(args, {"--out": args.out}, {"--frames": args.frames, "--video": args.video, "--prompts": args.prompts})
    import numpy as np

    from surgvlp import open_source
    from surgvlp.atomic import atomic_write
    from surgvlp.recognition.scoring import phase_probabilities

    prompts = read_prompt_lines(args.prompts) if args.prompts else []
    source = open_source(args.frames, fps=None) if args.frames is not None else open_source(args.video, fps=args.fps)
    start_decoding(args, source)
    model = load_model_from_args(args, text_encoder=bool(prompts))
    bar, progress = progress_bar(len(source), args.command)
    with bar:
        sampled = model.encoder.encode_source(
            source, batch_size=args.batch_size, decode_workers=args.decode_workers, progress=progress
        )
    image_embeddings = sampled.embeddings
    text_embeddings = model.encoder.encode_prompts(prompts) if prompts else np.zeros((0, image_embeddings.shape[1]), np.float32)
    arrays = {
        "image_embeddings": image_embeddings,
        "text_embeddings": text_embeddings,
        "times": sampled.times,
        "frame_indices": sampled.indices,
        "prompts": np.asarray(prompts, dtype=str),
        "checkpoint_sha256": np.asarray(model.sha256),
        "untrained": np.asarray(model.untrained),
    }
    if prompts:
        arrays["probabilities"] = phase_probabilities(image_embeddings, text_embeddings).astype(np.float32)
    with atomic_write(args.out) as stream:
        np.savez(stream, **arrays)
    print(f"wrote {args.out}: {len(image_embeddings)} frames, {len(prompts)} prompts" + (" (untrained model)" if model.untrained else ""))
