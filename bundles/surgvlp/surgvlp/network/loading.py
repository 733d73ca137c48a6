"""From what a user names (a variant, a checkpoint file, a weights folder) to a ready model and its provenance."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from surgvlp.errors import SurgVLPError
from surgvlp.untrained_policy import require_untrained_allowed
from surgvlp.sources.identity import folder_id
from surgvlp.weights import MANIFEST_NAME, WeightStore

if TYPE_CHECKING:
    from surgvlp.network.encoder import Precision, SurgVLPEncoder
    from surgvlp.network.preprocess import PreprocessMode

FOLDER_CHECKPOINT = "model"
"""The checkpoint a weights folder stands for when it holds several: the bundle's converted ``model.pt``."""


@dataclass(frozen=True)
class LoadedModel:
    """A model on its device, with what every embedding, cache entry and output made by it must record."""

    encoder: SurgVLPEncoder
    name: str
    checkpoint: Path
    sha256: str
    untrained: bool
    text_model: Path
    text_model_id: str  # content id of the text-model folder (tokenizer and BERT shape)

    def describe(self) -> dict[str, object]:
        """What every output records about the model that produced it."""
        return {
            "variant": self.name,
            "checkpoint": str(self.checkpoint),
            "checkpoint_sha256": self.sha256,
            "text_model_id": self.text_model_id,
            "precision": self.encoder.compute_precision,
            "preprocessing": self.encoder.preprocessing,
            "untrained": self.untrained,
        }


def _store_and_name(checkpoint: str | Path, store: WeightStore | None) -> tuple[WeightStore, str | Path]:
    """A folder stands for the checkpoint it holds: its manifest's ``model`` or only checkpoint, else ``model.pth``."""
    folder = Path(checkpoint).expanduser()
    if not folder.is_dir():
        return store or WeightStore(), checkpoint
    if (folder / MANIFEST_NAME).is_file():
        folder_store = WeightStore(folder)
        names = [entry.name for entry in folder_store.entries() if entry.path.suffix in (".pth", ".pt")]
        if FOLDER_CHECKPOINT in names:
            return folder_store, FOLDER_CHECKPOINT
        if len(names) == 1:
            return folder_store, names[0]
        raise SurgVLPError(f"weights folder {folder} holds {len(names)} checkpoints ({', '.join(names) or 'none'}); name one")
    if (folder / "model.pth").is_file():
        return store or WeightStore(), folder / "model.pth"
    raise SurgVLPError(f"{folder} is a folder without a weights manifest or a model.pth; give a variant, a checkpoint file or a weights folder")


def load_model(
    checkpoint: str | Path = "peskavlp",
    *,
    text_model: str | Path | None = None,
    device: str | None = None,
    precision: Precision = "auto",
    preprocess: PreprocessMode = "pil",
    allow_untrained: bool = False,
    store: WeightStore | None = None,
) -> LoadedModel:
    """Load a SurgVLP-family model once, verifying every recorded hash on the way.

    ``checkpoint`` is a variant fetched into the weights folder (``surgvlp``, ``hecvl``, ``peskavlp``), a checkpoint
    file or a weights folder. ``preprocess`` is ``"pil"`` (upstream's pixels exactly) or ``"tensor"`` (faster,
    not identical; see :mod:`surgvlp.network.preprocess`). An untrained checkpoint is recognised wherever the
    file was copied, and is refused unless the caller allowed untrained models.
    """
    store, name = _store_and_name(checkpoint, store)
    entry = store.resolve(name)
    if entry.untrained:
        require_untrained_allowed(f"checkpoint {entry.path}", allow_untrained)
    text_dir = Path(text_model).expanduser() if text_model else store.text_model_dir_for(entry)
    from surgvlp.network.encoder import SurgVLPEncoder  # torch: after the cheap checks and the hashing above

    encoder = SurgVLPEncoder.from_files(entry.path, text_dir, device=device, precision=precision, preprocess=preprocess)
    return LoadedModel(encoder, entry.name, entry.path, entry.sha256, entry.untrained, text_dir, folder_id(text_dir))
