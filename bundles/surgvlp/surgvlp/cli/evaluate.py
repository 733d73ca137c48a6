"""``surgvlp evaluate``: score phase timelines against ground-truth annotations."""

from __future__ import annotations

import argparse
from pathlib import Path

from surgvlp.cli import arguments
from surgvlp.cli.preflight import preflight
from surgvlp.errors import SurgVLPError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="score phase timelines against annotations (accuracy, macro-F1, Jaccard, edit score)",
        description="Compare each --pred timeline with the --truth annotation at the same position. Metrics are "
        "computed per video and averaged over videos; the rules are documented in surgvlp.recognition.evaluation.",
    )
    parser.add_argument("--pred", nargs="+", required=True, type=Path, metavar="P.json",
                        help="timeline JSON files written by 'surgvlp phases'")
    parser.add_argument("--truth", nargs="+", required=True, type=Path, metavar="T",
                        help="annotations in the same order: Cholec80 'Frame<TAB>Phase' files, 'path,label' CSVs "
                        "at 1 fps, or timeline JSON files")
    parser.add_argument("--relaxed", action="store_true",
                        help="also report the relaxed metrics that accept the neighbouring phase near transitions")
    parser.add_argument("--tolerance", type=arguments.seconds, default=None, metavar="SECONDS",
                        help="transition tolerance of --relaxed (default: 10 s, as in the Cholec80 evaluation)")
    parser.add_argument("--truth-fps", type=arguments.fps, default=None, metavar="FPS",
                        help="frame rate of the annotations (default: 25 for Cholec80 files, 1 for CSVs)")
    parser.add_argument("--out", type=Path, metavar="F.json", help="also write the full report as JSON")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    preflight(args, {"--out": args.out}, {"--pred": args.pred, "--truth": args.truth})
    from surgvlp.recognition import evaluation

    if len(args.pred) != len(args.truth):
        raise SurgVLPError(
            f"{len(args.pred)} predictions but {len(args.truth)} annotations; give one --truth per --pred"
        )
    if args.tolerance is not None and not args.relaxed:
        raise SurgVLPError("--tolerance only applies to the relaxed metrics; add --relaxed")
    tolerance = None
    if args.relaxed:
        tolerance = evaluation.RELAXED_TOLERANCE if args.tolerance is None else args.tolerance
    report = evaluation.evaluate(list(zip(args.pred, args.truth)), tolerance, args.truth_fps)
    if args.out is not None:  # before the table: `evaluate ... | head` must not lose the report
        evaluation.write_report(report, args.out)
    print(evaluation.format_table(report))
    return 0
