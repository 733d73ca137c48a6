"""``surgvlp adapt``: train a few-shot phase adapter from labelled videos (cached embeddings, CPU)."""

from __future__ import annotations

import argparse
from pathlib import Path

from surgvlp.cli import arguments
from surgvlp.cli.options import add_fps_option, add_model_options, load_model_from_args
from surgvlp.cli.preflight import preflight, prompt_set_file
from surgvlp.errors import SurgVLPError
from surgvlp.progress import progress_bar


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "adapt",
        help="train a few-shot phase adapter on labelled videos, used by `surgvlp phases --adapter`",
        description="Train a linear phase head, initialised from the prompt embeddings, on the cached frame "
        "embeddings of labelled videos. Labels: Cholec80 'Frame<TAB>Phase' files, 'path,label' CSVs at 1 fps, "
        "or corrected timeline JSON files.",
    )
    parser.add_argument("--video", type=Path, nargs="+", required=True, help="labelled videos (any frame source)")
    parser.add_argument("--truth", type=Path, nargs="+", required=True, help="one label file per video, in the same order")
    parser.add_argument("--prompt-set", default="cholec80", help="phase prompt set the labels use (default: cholec80)")
    add_fps_option(parser, "frames per second to sample")
    parser.add_argument(
        "--epochs", type=arguments.count(minimum=1, maximum=arguments.MAX_EPOCHS), default=300,
        help="full-batch training steps, at least 1 (default: 300)",
    )
    parser.add_argument("--out", type=Path, help="adapter file (default: adapters/ in the weights folder)")
    add_model_options(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> None:
    if len(args.video) != len(args.truth):
        raise SurgVLPError(f"{len(args.video)} videos but {len(args.truth)} label files: give one --truth per --video")
    preflight(args, {"--out": args.out},
              {"--video": args.video, "--truth": args.truth, "--prompt-set": prompt_set_file(args.prompt_set)})
    from surgvlp.recognition.evaluation import align, read_truth
    from surgvlp.recognition.prompts import load_prompt_set
    from surgvlp.sources import open_source

    prompt_set = load_prompt_set(args.prompt_set)
    truths = [read_truth(path, prompt_set.class_names) for path in args.truth]
    sources = [open_source(video, fps=args.fps) for video in args.video]  # every video is readable before training
    from surgvlp.recognition.pipeline import train_adapter
    from surgvlp.weights import default_weights_dir

    model = load_model_from_args(args)
    bar, progress = progress_bar(sum(map(len, sources)), "embedding")
    with bar:
        adapter = train_adapter(model, list(zip(sources, truths)), prompt_set, epochs=args.epochs,
                                batch_size=args.batch_size, progress=progress)
    loss, frames = adapter.history["final_loss"], adapter.history["frames"]
    out = args.out or default_weights_dir() / "adapters" / f"{prompt_set.name}-{model.sha256[:12]}.npz"
    adapter.save(out)
    note = " on an untrained encoder (for testing only)" if model.untrained else ""
    print(f"wrote {out}: trained{note} on {frames} frames of {len(sources)} videos, final loss {loss:.4f}")
