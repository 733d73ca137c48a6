"""``surgvlp bundle verify``: the MONAI model zoo's own checks of the bundle, run offline.

The zoo's CI verifies a bundle with MONAI's functions: ``verify_metadata`` against the JSON schema that
``metadata.json`` names, ``verify_net_in_out`` on ``network_def``, and ``ckpt_export`` of ``models/model.pt``
into ``network_def``. Each is called here as it is there. ``verify_metadata`` downloads the schema unless the
file is already where it is told to look, so the schema ships in the bundle (``configs/schema/``, under the
file name of its URL) and no network is needed. Two checks are the bundle's own: every weights file matches
its recorded SHA-256, and the output channels in the metadata name the classes whose embeddings ``model.pt``
holds.
"""

from __future__ import annotations

import json
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from surgvlp.errors import SurgVLPError
from surgvlp.folders import BUNDLE_MARKER
from surgvlp.network.phase_network import CHECKPOINT_FILE, stored_prompt_set, verified_checkpoint
from surgvlp.weights import WeightStore

SCHEMA_DIR = Path("configs") / "schema"
SCHEMA_SHA256 = {"meta_schema_20240725.json": "cd64aa8a5904426f6fc6855dabe46af8c742d5bad644b4e9cfb78ebad09ad678"}
"""SHA-256 of the schemas shipped in ``SCHEMA_DIR``, copied unchanged from their URLs: MONAI checks the local copy
against it, so an edited schema is refused rather than trusted."""
NET_ID = "network_def"


def read_metadata(bundle: Path) -> dict[str, Any]:
    path = bundle / BUNDLE_MARKER
    try:
        metadata = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise SurgVLPError(f"cannot read {path}: {error.strerror or error}") from None
    except ValueError as error:
        raise SurgVLPError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(metadata, dict):
        raise SurgVLPError(f"{path} must hold a JSON object")
    return metadata


def shipped_schema(bundle: Path, metadata: dict[str, Any]) -> Path:
    """The local copy of the schema that the metadata names: ``configs/schema/<file name of its URL>``."""
    url = metadata.get("schema")
    if not isinstance(url, str) or not url.strip():
        raise SurgVLPError(f"{bundle / BUNDLE_MARKER} names no schema; the model zoo requires its URL in 'schema'")
    path = bundle / SCHEMA_DIR / url.rstrip("/").rsplit("/", 1)[-1]
    if not path.is_file():
        raise SurgVLPError(f"the schema {url} named in the metadata is not shipped as {path}; put a copy there to verify offline")
    return path


def _monai_check(what: str, check: Callable[[], Any]) -> None:
    """Run one of MONAI's checks; what it rejects becomes one line naming the check."""
    try:
        check()
    except SurgVLPError:
        raise
    except (RuntimeError, ValueError, KeyError, FileNotFoundError) as error:
        cause = error.__cause__
        if isinstance(cause, SurgVLPError):  # the config parser wraps what a config item raised
            raise cause from None
        message = " ".join(str(cause or error).split())
        raise SurgVLPError(f"{what}: {message}") from None


def verify_metadata_offline(bundle: Path) -> dict[str, Any]:
    """MONAI's ``verify_metadata`` against the shipped schema; returns the metadata."""
    from monai.bundle import verify_metadata

    metadata = read_metadata(bundle)
    schema = shipped_schema(bundle, metadata)
    meta_file = bundle / BUNDLE_MARKER
    digest = SCHEMA_SHA256.get(schema.name)
    _monai_check(
        f"{meta_file} does not meet the schema {schema.name}",
        lambda: verify_metadata(meta_file=str(meta_file), filepath=str(schema), hash_val=digest, hash_type="sha256"),
    )
    return metadata


def output_classes(metadata: dict[str, Any]) -> list[str]:
    """The class names of the ``pred`` output, in channel order, checked against ``num_channels``."""
    try:
        pred = metadata["network_data_format"]["outputs"]["pred"]
        count, channel_def = pred["num_channels"], pred["channel_def"]
        names = [channel_def[str(channel)] for channel in range(count)]
    except (KeyError, TypeError):
        raise SurgVLPError("the metadata's network_data_format.outputs.pred needs num_channels and a channel_def naming channels 0 .. num_channels - 1") from None
    if len(channel_def) != count:
        raise SurgVLPError(f"the metadata's pred channel_def names {len(channel_def)} channels, num_channels says {count}")
    return names


def verify_classes(bundle: Path, metadata: dict[str, Any]) -> list[str]:
    """The metadata's output channels are the classes of the prompt set converted into ``model.pt``."""
    stored = stored_prompt_set(bundle / "models")
    described = output_classes(metadata)
    if described != stored.class_names:
        raise SurgVLPError(
            f"the metadata describes {len(described)} output channels ({', '.join(described)}), but model.pt holds the "
            f"{len(stored.classes)} classes of prompt set {stored.name!r} ({', '.join(stored.class_names)}); "
            "convert again with `surgvlp weights convert`, which rewrites both"
        )
    return described


def verify_weights(bundle: Path, allow_untrained: bool) -> None:
    """Every recorded file in ``models/`` is intact, and ``model.pt`` may be used."""
    models = bundle / "models"
    failures = [message for _, ok, message in WeightStore(models).verify() if not ok]
    if failures:
        raise SurgVLPError(f"weights in {models}: {failures[0]}")
    verified_checkpoint(models, allow_untrained)


def verify_network(bundle: Path, config: Path) -> None:
    """MONAI's ``verify_net_in_out`` on ``network_def``: a metadata-shaped input gives the described output."""
    from monai.bundle import verify_net_in_out

    _monai_check(
        f"{NET_ID} does not match the metadata",
        lambda: verify_net_in_out(
            net_id=NET_ID, meta_file=str(bundle / BUNDLE_MARKER), config_file=str(config), device="cpu", bundle_root=str(bundle)
        ),
    )


def verify_export(bundle: Path, config: Path) -> None:
    """MONAI's ``ckpt_export``: ``model.pt`` loads strictly into ``network_def``, which TorchScript compiles."""
    from monai.bundle import ckpt_export

    with tempfile.TemporaryDirectory(prefix="surgvlp-verify-") as scratch, warnings.catch_warnings():
        # ckpt_export is TorchScript's, which announces its deprecation on every call; the check is the zoo's as it is.
        warnings.filterwarnings("ignore", message="`torch.jit", category=FutureWarning)
        _monai_check(
            f"models/{CHECKPOINT_FILE} does not export through {NET_ID}",
            lambda: ckpt_export(
                net_id=NET_ID,
                filepath=str(Path(scratch) / "model.ts"),
                ckpt_file=str(bundle / "models" / CHECKPOINT_FILE),
                meta_file=str(bundle / BUNDLE_MARKER),
                config_file=str(config),
                bundle_root=str(bundle),
            ),
        )
