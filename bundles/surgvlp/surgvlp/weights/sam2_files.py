"""The two files of a SAM2 folder (``config.json``, ``model.safetensors``), checked without importing torch.

A proxy's error page or a half-copied file must be caught before it is recorded, and a random-weight test
model must be known for what it is wherever it is copied. The safetensors format makes both cheap: the file
starts with an 8-byte little-endian length and a JSON header, whose ``__metadata__`` holds free-form strings;
the untrained mark is one of them, so it travels inside the weights file itself.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

from surgvlp.errors import SurgVLPError
from surgvlp.weights.variants import SAM2_FILES, SAM2_MODEL_TYPES

UNTRAINED_METADATA_KEY = "surgvlp:untrained"
"""Set to ``"true"`` in the safetensors metadata of a random-weight SAM2 model (see ``surgvlp.segmentation.untrained_sam2``)."""
MAX_HEADER_BYTES = 100 << 20  # the format's own limit on the JSON header


def safetensors_metadata(path: Path) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors file; a one-line error when the file is not one."""
    path = Path(path)
    try:
        with open(path, "rb") as stream:
            head = stream.read(8)
            length = struct.unpack("<Q", head)[0] if len(head) == 8 else -1
            header = json.loads(stream.read(length)) if 0 < length <= MAX_HEADER_BYTES else None
    except OSError as error:
        raise SurgVLPError(f"cannot read {path}: {error.strerror or error}") from None
    except (ValueError, UnicodeDecodeError):
        header = None
    if not isinstance(header, dict):
        raise SurgVLPError(f"{path} is not a safetensors file (a web page or a damaged download?); fetch or copy it again")
    metadata = header.get("__metadata__") or {}
    return metadata if isinstance(metadata, dict) else {}


def is_untrained_sam2(weights: Path) -> bool:
    return safetensors_metadata(weights).get(UNTRAINED_METADATA_KEY) == "true"


def check_sam2_file(filename: str, path: Path, origin: str) -> None:
    """Refuse a file that cannot be the SAM2 ``filename`` it stands for, naming where it came from."""
    if filename == "model.safetensors":
        try:
            safetensors_metadata(path)
        except SurgVLPError:
            raise SurgVLPError(f"{filename} from {origin} is not a safetensors file; is it the SAM2 weights file?") from None
        return
    try:
        config = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        config = None
    if not isinstance(config, dict) or config.get("model_type") not in SAM2_MODEL_TYPES:
        raise SurgVLPError(
            f"{filename} from {origin} is not a SAM2 configuration (model_type {', '.join(sorted(SAM2_MODEL_TYPES))})"
        )


def require_sam2_folder(folder: Path) -> None:
    """The folder exists and holds both files, or a one-line error that says how to get them."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SurgVLPError(
            f"SAM2 folder {folder} does not exist; run `surgvlp weights fetch sam2-tiny` or give a folder holding "
            f"{' and '.join(SAM2_FILES)}"
        )
    missing = [name for name in SAM2_FILES if not (folder / name).is_file()]
    if missing:
        raise SurgVLPError(f"SAM2 folder {folder} lacks {', '.join(missing)}; it needs {' and '.join(SAM2_FILES)}")
