"""Checks every command runs first: a typo in a path must cost milliseconds, not torch's import and a model load.

Nothing here imports torch (a test runs the console script and checks), so that a missing input, a prompt
file that is not there or an output over an input is reported before the 5 to 10 s and 880 MB it takes to
load a model.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from pathlib import Path

from surgvlp.atomic import PathOrPaths, check_outputs, path_list
from surgvlp.errors import SurgVLPError


def preflight(
    args: argparse.Namespace,
    outputs: Mapping[str, Path | None],
    inputs: Mapping[str, PathOrPaths] | None = None,
) -> dict[str, Path]:
    """Require the named inputs (and the model options, if the command has them); check the outputs against both.

    Returns the outputs that were given, by option name, ready for :func:`surgvlp.atomic.atomic_paths`.
    """
    inputs = dict(inputs or {})
    require_inputs(inputs)
    if hasattr(args, "checkpoint") and hasattr(args, "text_model"):  # the model options of surgvlp.cli.options
        inputs |= model_inputs(args)
    return check_outputs(outputs, inputs)


def require_inputs(inputs: Mapping[str, PathOrPaths]) -> None:
    """Each named input exists and can be read."""
    for name, paths in inputs.items():
        for path in path_list(paths):
            if not path.exists():
                raise SurgVLPError(f"{name} {path}: no such file or folder")
            if not os.access(path, os.R_OK | (os.X_OK if path.is_dir() else 0)):
                raise SurgVLPError(f"{name} {path}: permission denied")


def prompt_set_file(name_or_path: str) -> Path | None:
    """The user's prompt-set file, which outputs must spare; None for a built-in set's name."""
    path = Path(name_or_path)
    return path if path.is_file() else None


def model_inputs(args: argparse.Namespace) -> dict[str, Path | None]:
    """Check ``--checkpoint`` and ``--text-model`` name something, and return them as inputs outputs must spare.

    A recorded name is looked up without hashing its file (the model loader verifies it); a name that is
    neither recorded nor a file gets the weights store's own advice (fetch it, or import a copy).
    """
    from surgvlp.weights import WeightStore

    store = WeightStore()
    recorded = {entry.name: entry for entry in store.entries()}
    entry = recorded.get(args.checkpoint) or recorded.get(args.checkpoint.lower())
    checkpoint = Path(args.checkpoint).expanduser()
    if entry is not None and entry.path.is_file():
        checkpoint = entry.path
    elif not checkpoint.exists():  # a checkpoint file or a weights folder
        store.resolve(args.checkpoint)  # raises: what is missing and how to get it
    require_inputs({"--text-model": args.text_model})
    return {"--checkpoint": checkpoint, "--text-model": args.text_model}
