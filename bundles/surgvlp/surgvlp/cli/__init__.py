"""The ``surgvlp`` command.

Each subcommand lives in its own module of this package and exposes ``register(subparsers)``; the
module imports heavy libraries (torch, av) only inside its handler so that ``surgvlp --help`` is instant.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import sys
import threading

from surgvlp.errors import SurgVLPError

SUBCOMMAND_MODULES = ("sample_data", "embed", "recognise", "evaluate", "adapt", "cache", "weights", "bundle", "export")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="surgvlp",
        description="Zero-shot surgical video understanding with SurgVLP, HecVL and PeskaVLP.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(f"surgvlp.cli.{name}").register(subparsers)
    return parser


def _preload_model_code() -> None:
    """Import torch, torchvision and transformers in the background while the command checks its inputs.

    Those imports are most of a model command's start-up; run beside the input checks, the source scan and
    the checkpoint hash, they cost less wall time. A failing import is left for the command to report.
    """

    def load() -> None:
        with contextlib.suppress(Exception):
            importlib.import_module("surgvlp.network.encoder")

    threading.Thread(target=load, name="surgvlp-preload", daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "loads_model", False):
        _preload_model_code()
    try:
        return args.handler(args) or 0
    except SurgVLPError as error:
        print(f"surgvlp {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"surgvlp {args.command}: interrupted", file=sys.stderr)
        return 130
