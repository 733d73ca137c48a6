"""``surgvlp adapt``: train a few-shot phase adapter from labelled videos (cached embeddings, CPU)."""

from __future__ import annotations

import argparse
from pathlib import Path

from surgvlp.cli.options import add_model_options, load_model_from_args
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
    parser.add_argument("--fps", type=float, default=1.0, help="frames per second to sample (default: 1)")
    parser.add_argument("--epochs", type=int, default=300, help="full-batch training steps (default: 300)")
    parser.add_argument("--out", type=Path, help="adapter file (default: adapters/ in the weights folder)")
    add_model_options(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> None:
    from surgvlp import PhaseAdapter, embed, load_prompt_set, open_source
    from surgvlp.recognition.evaluation import align, read_truth
    from surgvlp.weights import default_weights_dir

    if len(args.video) != len(args.truth):
        raise SurgVLPError(f"{len(args.video)} videos but {len(args.truth)} label files: give one --truth per --video")
    prompt_set = load_prompt_set(args.prompt_set)
    truths = [read_truth(path, prompt_set.class_names) for path in args.truth]
    model = load_model_from_args(args)
    features, labels = [], []
    for video, truth in zip(args.video, truths):
        source = open_source(video, fps=args.fps)
        bar, progress = progress_bar(len(source), video.name)
        with bar:
            embedded = embed(model, source, prompt_set, batch_size=args.batch_size, progress=progress)
        covered, true_labels = align(embedded.times, truth)
        features.append(embedded.frames[covered])
        labels.append(true_labels)
    adapter = PhaseAdapter.from_prompts(prompt_set, embedded.classes, model.sha256, model.untrained)
    loss = adapter.fit(features, labels, epochs=args.epochs)
    out = args.out or default_weights_dir() / "adapters" / f"{prompt_set.name}-{model.sha256[:12]}.npz"
    adapter.save(out)
    note = " on an untrained encoder (for testing only)" if model.untrained else ""
    print(f"wrote {out}: trained{note} on {sum(map(len, labels))} frames of {len(labels)} videos, final loss {loss:.4f}")
