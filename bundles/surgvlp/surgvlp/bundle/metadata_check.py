"""Offline check of a bundle's ``configs/metadata.json`` against what the MONAI model zoo requires.

MONAI's own ``verify_metadata`` downloads a JSON schema first, which a hospital network or CI without
internet cannot do. The zoo's requirements are few and stable, so they are written down here: the required
fields and their types, a complete description of every network input and output, and a ``changelog`` that
holds the current ``version``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from surgvlp.errors import SurgVLPError

REQUIRED_FIELDS: dict[str, type | tuple[type, ...]] = {
    "version": str,
    "changelog": dict,
    "monai_version": str,
    "pytorch_version": str,
    "numpy_version": str,
    "required_packages_version": dict,
    "task": str,
    "description": str,
    "authors": (str, list),
    "copyright": str,
    "intended_use": str,
    "network_data_format": dict,
}

TENSOR_FIELDS: dict[str, type | tuple[type, ...]] = {
    "type": str,
    "format": str,
    "modality": str,
    "num_channels": int,
    "spatial_shape": list,
    "dtype": str,
    "value_range": list,
    "is_patch_data": bool,
    "channel_def": dict,
}

VERSION_PATTERN = re.compile(r"\d+\.\d+\.\d+")


def _type_name(expected: type | tuple[type, ...]) -> str:
    types = expected if isinstance(expected, tuple) else (expected,)
    names = {str: "a string", dict: "an object", list: "a list", int: "an integer", bool: "true or false"}
    return " or ".join(names[kind] for kind in types)


def _is_a(value: Any, expected: type | tuple[type, ...]) -> bool:
    # JSON true/false are bools, and bool is a subclass of int: a count must not accept them.
    if isinstance(value, bool) and bool not in (expected if isinstance(expected, tuple) else (expected,)):
        return False
    return isinstance(value, expected)


def _field_problems(mapping: dict[str, Any], fields: dict[str, type | tuple[type, ...]], where: str) -> list[str]:
    problems = []
    for name, expected in fields.items():
        if name not in mapping:
            problems.append(f"{where}{name} is missing")
        elif not _is_a(mapping[name], expected):
            problems.append(f"{where}{name} must be {_type_name(expected)}, not {type(mapping[name]).__name__}")
    return problems


def _tensor_problems(tensors: Any, where: str) -> list[str]:
    if not isinstance(tensors, dict) or not tensors:
        return [f"{where} must name at least one tensor"]
    problems = []
    for name, spec in tensors.items():
        if not isinstance(spec, dict):
            problems.append(f"{where}#{name} must be an object")
            continue
        problems += _field_problems(spec, TENSOR_FIELDS, f"{where}#{name}#")
        channels, channel_def = spec.get("num_channels"), spec.get("channel_def")
        if _is_a(channels, int) and isinstance(channel_def, dict) and channel_def and len(channel_def) != channels:
            problems.append(f"{where}#{name}#channel_def names {len(channel_def)} channels, num_channels says {channels}")
    return problems


def metadata_problems(metadata: Any) -> list[str]:
    """Everything the model zoo would reject in ``metadata``, one phrase each; empty when it passes."""
    if not isinstance(metadata, dict):
        return ["the metadata must be a JSON object"]
    problems = _field_problems(metadata, REQUIRED_FIELDS, "")
    version, changelog = metadata.get("version"), metadata.get("changelog")
    if isinstance(version, str):
        if not VERSION_PATTERN.fullmatch(version):
            problems.append(f"version {version!r} is not MAJOR.MINOR.PATCH")
        if isinstance(changelog, dict) and version not in changelog:
            problems.append(f"changelog has no entry for the current version {version}")
    if isinstance(metadata.get("required_packages_version"), dict):
        problems += [
            f"required_packages_version#{package} must be a version string"
            for package, pinned in metadata["required_packages_version"].items()
            if not isinstance(pinned, str)
        ]
    data_format = metadata.get("network_data_format")
    if isinstance(data_format, dict):
        for side in ("inputs", "outputs"):
            problems += _tensor_problems(data_format.get(side), f"network_data_format#{side}")
    return problems


def check_metadata(path: str | Path) -> dict[str, Any]:
    """Read ``path`` and return the metadata, or raise a one-line error listing every problem."""
    path = Path(path)
    try:
        metadata = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise SurgVLPError(f"cannot read {path}: {error.strerror or error}") from None
    except ValueError as error:
        raise SurgVLPError(f"{path} is not valid JSON: {error}") from None
    problems = metadata_problems(metadata)
    if problems:
        raise SurgVLPError(f"{path} does not meet the MONAI model zoo requirements: {'; '.join(problems)}")
    return metadata
