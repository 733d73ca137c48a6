"""``surgvlp evaluate``: score phase timelines against ground-truth annotations."""

from __future__ import annotations

import argparse
from pathlib import Path

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
    parser.add_argument("--tolerance", type=float, default=None, metavar="SECONDS",
                        help="transition tolerance of --relaxed (default: 10 s, as in the Cholec80 evaluation)")
    parser.add_argument("--truth-fps", type=float, default=None, metavar="FPS",
                        help="frame rate of the annotations (default: 25 for Cholec80 files, 1 for CSVs)")
    parser.add_argument("--out", type=Path, metavar="F.json", help="also write the full report as JSON")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from surgvlp.recognition import evaluation

    if len(args.pred) != len(args.truth):
        raise SurgVLPError(
            f"{len(args.pred)} predictions but {len(args.truth)} annotations; give one --truth per --pred"
        )
    if args.tolerance is not None and not args.relaxed:
        raise SurgVLPError("--tolerance only applies to the relaxed metrics; add --relaxed")
    if args.truth_fps is not None and not args.truth_fps > 0:
        raise SurgVLPError(f"--truth-fps must be positive, got {args.truth_fps}")
    tolerance = None
    if args.relaxed:
        tolerance = evaluation.RELAXED_TOLERANCE if args.tolerance is None else args.tolerance
        if not tolerance >= 0:
            raise SurgVLPError(f"--tolerance must be 0 or more seconds, got {tolerance}")
    report = evaluation.evaluate(list(zip(args.pred, args.truth)), tolerance, args.truth_fps)
    print(evaluation.format_table(report))
    if args.out is not None:
        evaluation.write_report(report, args.out)
    return 0
