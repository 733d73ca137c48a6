"""The ``surgvlp`` command.

Each subcommand lives in its own module of this package and exposes ``register(subparsers)``; the
module imports heavy libraries (torch, av) only inside its handler so that ``surgvlp --help`` is instant.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import NoReturn

from surgvlp.cli.memory import reuse_freed_memory
from surgvlp.errors import SurgVLPError

SUBCOMMAND_MODULES = ("sample_data", "embed", "recognise", "segment", "evaluate", "adapt", "cache", "weights", "bundle", "export")


class OneLineErrorParser(argparse.ArgumentParser):
    """Usage errors as one line with exit status 2, like every other error of the command.

    argparse's own ``error`` prints the whole usage first; a script that reads stderr (or a person) gets
    the one line that matters, and ``--help`` is named in it. Subcommand parsers inherit this class.
    """

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(
        prog="surgvlp",
        description="Zero-shot surgical video understanding with SurgVLP, HecVL and PeskaVLP.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(f"surgvlp.cli.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    reuse_freed_memory()
    try:
        status = args.handler(args) or 0
        sys.stdout.flush()  # a closed pipe raises here, where it is caught, not at interpreter exit
        return status
    except BrokenPipeError:  # `surgvlp evaluate ... | head`: the reader has all it wanted
        # As the Python documentation advises (signal module, "Note on SIGPIPE"): point stdout at devnull so
        # that the interpreter's final flush does not raise again, and end quietly.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except SurgVLPError as error:
        print(f"surgvlp {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"surgvlp {args.command}: interrupted", file=sys.stderr)
        return 130
