"""From what a user names (a variant, a checkpoint path) to a ready encoder and the facts outputs must record."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from surgvlp.network.encoder import Precision, SurgVLPEncoder
from surgvlp.network.untrained import require_untrained_allowed
from surgvlp.sources.identity import folder_id
from surgvlp.weights import WeightStore


@dataclass(frozen=True)
class LoadedModel:
    encoder: SurgVLPEncoder
    name: str
    checkpoint: Path
    sha256: str
    untrained: bool
    text_model_id: str
    """Content id of the text-model folder (see :func:`surgvlp.sources.identity.folder_id`), for cache keys."""

    def describe(self) -> dict[str, object]:
        """What every output records about the model that produced it."""
        return {"variant": self.name, "checkpoint": str(self.checkpoint), "checkpoint_sha256": self.sha256, "untrained": self.untrained}


def load_encoder(
    checkpoint: str | Path,
    text_model_dir: str | Path | None = None,
    *,
    allow_untrained: bool = False,
    device: str | None = None,
    precision: Precision = "auto",
    store: WeightStore | None = None,
) -> LoadedModel:
    """Resolve ``checkpoint`` through the weights store (verifying recorded hashes) and load it.

    An untrained checkpoint is recognised by its recorded SHA-256, wherever the file was copied, and is
    refused unless the user allowed untrained models.
    """
    store = store or WeightStore()
    entry = store.resolve(checkpoint)
    if entry.untrained:
        require_untrained_allowed(f"checkpoint {entry.path}", allow_untrained)
    text_dir = Path(text_model_dir) if text_model_dir else store.text_model_dir_for(entry)
    encoder = SurgVLPEncoder.from_files(entry.path, text_dir, device=device, precision=precision)
    return LoadedModel(encoder, entry.name, entry.path, entry.sha256, entry.untrained, folder_id(text_dir))
