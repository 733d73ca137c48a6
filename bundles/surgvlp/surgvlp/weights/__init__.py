"""Model weights: fetching the licensed checkpoints, importing hand-copied ones, and checking them on every use.

The weights (CC BY-NC-SA 4.0) are never shipped with the code; each site fetches or imports them into a
weights folder whose manifest records the SHA-256 of every file. The public SAM2.1 trackers that referring
segmentation uses (Apache-2.0) are fetched and recorded the same way. Importing this package stays cheap: torch
is imported only when a checkpoint is validated.
"""

from surgvlp.weights.download import DownloadError, download
from surgvlp.weights.fetch import fetch, fetch_sam2, fetch_text_model
from surgvlp.weights.store import (
    MANIFEST_NAME,
    WEIGHTS_DIR_ENV,
    Sam2Folder,
    WeightEntry,
    WeightStore,
    default_weights_dir,
    sha256_file,
)
from surgvlp.weights.variants import (
    SAM2_MODELS,
    TEXT_MODEL_DIRNAME,
    TEXT_MODEL_REPO,
    TEXT_MODEL_URL_ENV,
    VARIANTS,
    Variant,
    get_variant,
)

__all__ = [
    "MANIFEST_NAME",
    "SAM2_MODELS",
    "TEXT_MODEL_DIRNAME",
    "TEXT_MODEL_REPO",
    "TEXT_MODEL_URL_ENV",
    "VARIANTS",
    "WEIGHTS_DIR_ENV",
    "DownloadError",
    "Sam2Folder",
    "Variant",
    "WeightEntry",
    "WeightStore",
    "default_weights_dir",
    "download",
    "fetch",
    "fetch_sam2",
    "fetch_text_model",
    "get_variant",
    "sha256_file",
]
