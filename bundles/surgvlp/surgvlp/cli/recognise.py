"""``surgvlp phases`` and ``surgvlp tools``: zero-shot timelines for one video."""

from __future__ import annotations

import argparse
from pathlib import Path

from surgvlp.cli.options import add_model_options, add_source_options, load_model_from_args, open_input
from surgvlp.progress import progress_bar


def register(subparsers: argparse._SubParsersAction) -> None:
    phases = subparsers.add_parser(
        "phases",
        help="zero-shot surgical phase timeline of a video (JSON, optional CSV and PNG plot)",
        description="Recognise surgical phases zero-shot. Frame embeddings are cached, so a second run with "
        "another prompt set or decoder does not run the image encoder again.",
    )
    add_source_options(phases)
    phases.add_argument("--prompt-set", default="cholec80", help="cholec80, autolaparo, gastric-bypass or a YAML/JSON file (default: cholec80)")
    phases.add_argument("--decoder", choices=("argmax", "viterbi", "online"), default="argmax", help="argmax: per frame, as upstream (default); viterbi: offline HMM; online: causal filter")
    phases.add_argument("--min-segment", type=float, default=0.0, metavar="SECONDS", help="shortest segment kept (default: 0)")
    phases.add_argument("--adapter", type=Path, help="few-shot phase adapter trained with `surgvlp adapt`")
    _add_outputs(phases)
    phases.add_argument("--plot", type=Path, help="also write a PNG timeline plot")
    phases.set_defaults(handler=run_phases)

    tools = subparsers.add_parser(
        "tools",
        help="zero-shot multi-label tool presence over a video (JSON)",
        description="Score every tool prompt on every sampled frame and report presence intervals.",
    )
    add_source_options(tools)
    tools.add_argument("--prompt-set", default="cholec80-tools", help="cholec80-tools or a YAML/JSON file (default: cholec80-tools)")
    tools.add_argument("--threshold", type=float, default=0.5, help="presence score threshold, between 0 and 1 (default: 0.5)")
    tools.add_argument("--min-segment", type=float, default=0.0, metavar="SECONDS", help="shortest presence or gap kept (default: 0)")
    _add_outputs(tools)
    tools.set_defaults(handler=run_tools)


def _add_outputs(parser: argparse.ArgumentParser) -> None:
    add_model_options(parser)
    parser.add_argument("--out", type=Path, required=True, help="timeline JSON to write")
    parser.add_argument("--csv", type=Path, help="also write one CSV row per sampled frame")
    parser.add_argument("--no-cache", action="store_true", help="ignore and do not fill the embedding cache")


def _recognise(args: argparse.Namespace, recognise, **settings):
    """Open the input, load the model and run ``recognise`` with this command's options and a progress bar."""
    source = open_input(args)
    model = load_model_from_args(args)
    bar, progress = progress_bar(len(source), args.command)
    with bar:
        return recognise(
            model, source, args.prompt_set, cache=not args.no_cache, batch_size=args.batch_size,
            decode_workers=args.decode_workers, progress=progress, **settings,
        )


def _write(args: argparse.Namespace, timeline) -> None:
    from surgvlp.recognition.timeline import write_csv, write_json

    write_json(timeline, args.out)
    if args.csv:
        write_csv(timeline, args.csv)
    note = " (untrained model: the result means nothing)" if timeline.untrained else ""
    print(f"wrote {args.out}: {len(timeline.times)} frames, {len(timeline.segments)} segments{note}")


def run_phases(args: argparse.Namespace) -> None:
    from surgvlp import PhaseAdapter, load_prompt_set, recognise_phases
    from surgvlp.recognition.timeline import write_plot

    args.prompt_set = load_prompt_set(args.prompt_set)
    adapter = PhaseAdapter.load(args.adapter) if args.adapter else None
    timeline = _recognise(args, recognise_phases, decoder=args.decoder, min_segment=args.min_segment, adapter=adapter)
    _write(args, timeline)
    if args.plot:
        write_plot(timeline, args.plot)


def run_tools(args: argparse.Namespace) -> None:
    from surgvlp import load_prompt_set, recognise_tools

    args.prompt_set = load_prompt_set(args.prompt_set)
    _write(args, _recognise(args, recognise_tools, threshold=args.threshold, min_segment=args.min_segment))
