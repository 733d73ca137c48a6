"""Model weights: fetching the licensed checkpoints, importing hand-copied ones, and checking them on every use.

The weights (CC BY-NC-SA 4.0) are never shipped with the code; each site fetches or imports them into a
weights folder whose manifest records the SHA-256 of every file. Importing this package stays cheap: torch
is imported only when a checkpoint is validated.
"""

from surgvlp.weights.download import DownloadError, download
from surgvlp.weights.fetch import fetch, fetch_text_model
from surgvlp.weights.store import (
    MANIFEST_NAME,
    WEIGHTS_DIR_ENV,
    WeightEntry,
    WeightStore,
    default_weights_dir,
    sha256_file,
)
from surgvlp.weights.variants import (
    TEXT_MODEL_DIRNAME,
    TEXT_MODEL_REPO,
    TEXT_MODEL_URL_ENV,
    VARIANTS,
    Variant,
    get_variant,
)

__all__ = [
    "MANIFEST_NAME",
    "TEXT_MODEL_DIRNAME",
    "TEXT_MODEL_REPO",
    "TEXT_MODEL_URL_ENV",
    "VARIANTS",
    "WEIGHTS_DIR_ENV",
    "DownloadError",
    "Variant",
    "WeightEntry",
    "WeightStore",
    "default_weights_dir",
    "download",
    "fetch",
    "fetch_text_model",
    "get_variant",
    "sha256_file",
]
