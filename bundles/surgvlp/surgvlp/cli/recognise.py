"""``surgvlp phases`` and ``surgvlp tools``: zero-shot timelines for one video."""

from __future__ import annotations

import argparse
from pathlib import Path

from surgvlp.cli import arguments
from surgvlp.cli.options import add_model_options, add_source_options, load_model_from_args, open_input, start_decoding
from surgvlp.cli.preflight import preflight, prompt_set_file
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
    phases.add_argument("--min-segment", type=arguments.seconds, default=0.0, metavar="SECONDS", help="shortest segment kept (default: 0)")
    phases.add_argument("--adapter", type=Path, help="few-shot phase adapter trained with `surgvlp adapt`")
    _add_outputs(phases)
    phases.add_argument("--plot", type=Path, help="also write a timeline plot, as .png, .pdf or .svg by its name")
    phases.set_defaults(handler=run_phases)

    tools = subparsers.add_parser(
        "tools",
        help="zero-shot multi-label tool presence over a video (JSON)",
        description="Score every tool prompt on every sampled frame and report presence intervals.",
    )
    add_source_options(tools)
    tools.add_argument("--prompt-set", default="cholec80-tools", help="cholec80-tools or a YAML/JSON file (default: cholec80-tools)")
    tools.add_argument("--threshold", type=arguments.fraction, default=0.5, help="presence score threshold, between 0 and 1 (default: 0.5)")
    tools.add_argument("--min-segment", type=arguments.seconds, default=0.0, metavar="SECONDS", help="shortest presence or gap kept (default: 0)")
    _add_outputs(tools)
    tools.set_defaults(handler=run_tools)


def _add_outputs(parser: argparse.ArgumentParser) -> None:
    add_model_options(parser)
    parser.add_argument("--out", type=Path, required=True, help="timeline JSON to write")
    parser.add_argument("--csv", type=Path, help="also write one CSV row per sampled frame")
    parser.add_argument("--no-cache", action="store_true", help="ignore and do not fill the embedding cache")


def _check(args: argparse.Namespace, **outputs: Path | None) -> dict[str, Path]:
    """Inputs and outputs of both commands, checked before anything is loaded."""
    from surgvlp.recognition.timeline import plot_format

    if outputs.get("plot"):
        plot_format(outputs["plot"])
    return preflight(args, {f"--{name}": path for name, path in outputs.items()},
                     {"INPUT": args.input, "--adapter": getattr(args, "adapter", None),
                      "--prompt-set": prompt_set_file(args.prompt_set)})


def _recognise(args: argparse.Namespace, prompt_set, **settings):
    """Open the input, load the model and run this command's recognition with its options and a progress bar."""
    from surgvlp.recognition.cache import EmbeddingCache

    source = open_input(args)
    start_decoding(args, source)
    cache = False if args.no_cache else EmbeddingCache()  # a bad size limit in the environment costs no model load
    from surgvlp.recognition.pipeline import recognise_phases, recognise_tools

    recognise = recognise_phases if args.command == "phases" else recognise_tools
    model = load_model_from_args(args)
    bar, progress = progress_bar(len(source), args.command)
    with bar:
        return recognise(
            model, source, prompt_set, cache=cache, batch_size=args.batch_size,
            decode_workers=args.decode_workers, progress=progress, **settings,
        )


def _write(args: argparse.Namespace, timeline, outputs: dict[str, Path]) -> None:
    """Every output of the run, appearing together or not at all."""
    from surgvlp.atomic import atomic_paths
    from surgvlp.recognition.timeline import plot_format, write_csv, write_json, write_plot

    with atomic_paths(outputs) as staged:
        write_json(timeline, staged["--out"])
        if "--csv" in staged:
            write_csv(timeline, staged["--csv"])
        if "--plot" in staged:
            write_plot(timeline, staged["--plot"], plot_format(args.plot))
    note = " (untrained model: the result means nothing)" if timeline.untrained else ""
    print(f"wrote {args.out}: {len(timeline.times)} frames, {len(timeline.segments)} segments{note}")


def run_phases(args: argparse.Namespace) -> None:
    outputs = _check(args, out=args.out, csv=args.csv, plot=args.plot)
    from surgvlp.recognition.adapter import PhaseAdapter
    from surgvlp.recognition.prompts import load_prompt_set

    prompt_set = load_prompt_set(args.prompt_set)
    adapter = PhaseAdapter.load(args.adapter) if args.adapter else None
    timeline = _recognise(args, prompt_set, decoder=args.decoder, min_segment=args.min_segment, adapter=adapter)
    _write(args, timeline, outputs)


def run_tools(args: argparse.Namespace) -> None:
    outputs = _check(args, out=args.out, csv=args.csv)
    from surgvlp.recognition.prompts import load_prompt_set

    prompt_set = load_prompt_set(args.prompt_set)
    _write(args, _recognise(args, prompt_set, threshold=args.threshold, min_segment=args.min_segment), outputs)
