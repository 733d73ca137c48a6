"""``surgvlp export onnx``: the bundle's network (image -> phase logits) as an ONNX file, checked against PyTorch."""

from __future__ import annotations

import argparse
from pathlib import Path

from surgvlp.cli.options import add_allow_untrained_option
from surgvlp.cli.preflight import preflight


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export the bundle's network (image encoder + phase head) for other runtimes",
        description="Export the bundle's network: the image encoder with the stored phase prompt embeddings as its "
        "head (image 3x224x224 -> pred, one logit per phase). Needs models/model.pt and models/prompt_set.json, "
        "written by `surgvlp weights convert SOURCE --bundle DIR --prompt-set cholec80`.",
    )
    formats = parser.add_subparsers(dest="export_format", required=True, metavar="FORMAT")
    onnx = formats.add_parser("onnx", help="ONNX, any batch size; checked with ONNX Runtime on the CPU")
    onnx.add_argument("--out", type=Path, required=True, help="ONNX file to write")
    onnx.add_argument("--bundle", type=Path, help="bundle folder whose models/ to export (default: $SURGVLP_BUNDLE_DIR, else ~/.local/share/surgvlp/bundle)")
    onnx.add_argument("--opset", type=int, default=17, help="ONNX opset (default: 17)")
    onnx.add_argument("--no-check", action="store_true", help="skip comparing ONNX Runtime with PyTorch")
    add_allow_untrained_option(onnx, "export random weights (for tests; the file's metadata says untrained)")
    onnx.set_defaults(handler=run_onnx)


def run_onnx(args: argparse.Namespace) -> int:
    from surgvlp.folders import bundle_dir
    from surgvlp.weights import WeightStore

    models = WeightStore(bundle_dir(args.bundle) / "models")
    recorded = [path for path in [*(entry.path for entry in models.entries()), models.manifest_path] if path.exists()]
    preflight(args, {"--out": args.out}, {"model file": recorded})
    from surgvlp.bundle.export import LOGIT_TOLERANCE, export_onnx, onnx_difference
    from surgvlp.network.phase_network import open_bundle_network

    loaded = open_bundle_network(models.root, args.allow_untrained)
    export_onnx(loaded, args.out, opset=args.opset)
    note = " (untrained weights: the file's metadata says so)" if loaded.checkpoint.untrained else ""
    print(f"wrote {args.out}: {len(loaded.prompt_set.classes)} phases of {loaded.prompt_set.name}{note}")
    if args.no_check:
        return 0
    difference = onnx_difference(loaded.network, args.out)
    verdict = "ok" if difference <= LOGIT_TOLERANCE else "FAILED"
    print(f"{verdict}: ONNX Runtime vs PyTorch, largest logit difference {difference:.2e} (tolerance {LOGIT_TOLERANCE:.0e})")
    return 0 if verdict == "ok" else 1
