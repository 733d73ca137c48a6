"""The ``surgvlp`` command.

Each subcommand lives in its own module of this package and exposes ``register(subparsers)``; the
module imports heavy libraries (torch, av) only inside its handler so that ``surgvlp --help`` is instant.
"""

from __future__ import annotations

import argparse
import importlib
import sys

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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args) or 0
    except SurgVLPError as error:
        print(f"surgvlp {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"surgvlp {args.command}: interrupted", file=sys.stderr)
        return 130
