"""From what a user names (a variant, a checkpoint file, a weights folder) to a ready model and its provenance."""

from __future__ import annotations

import contextlib
import importlib
import threading
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

IMAGE_ENCODER_MODULES = ("torch",)
TEXT_ENCODER_MODULES = (  # what AutoTokenizer and BertConfig need; BERT itself is plain torch (network/bert.py)
    "transformers.models.auto.tokenization_auto",
    "transformers.models.bert.tokenization_bert",
    "transformers.models.bert.configuration_bert",
)
_IMPORTING = threading.Lock()

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


def _import_in_background(modules: tuple[str, ...]) -> threading.Thread:
    """Import third-party ``modules`` in a daemon thread, which the caller joins before it uses them.

    They are most of a model's load (torch alone takes over a second); imported beside the checkpoint's hash,
    which releases the interpreter lock, they cost less wall time. Joining first, and one such thread at a
    time (models loaded from several threads at once), means no two threads import one package at once, which
    transformers' lazy modules do not survive. A failing import is left for the loading thread to report.
    """

    def load() -> None:
        with _IMPORTING, contextlib.suppress(Exception):
            for module in modules:
                importlib.import_module(module)

    thread = threading.Thread(target=load, name="surgvlp-import", daemon=True)
    thread.start()
    return thread


def load_model(
    checkpoint: str | Path = "peskavlp",
    *,
    text_model: str | Path | None = None,
    device: str | None = None,
    precision: Precision = "auto",
    preprocess: PreprocessMode = "pil",
    allow_untrained: bool = False,
    store: WeightStore | None = None,
    text_encoder: bool = True,
) -> LoadedModel:
    """Load a SurgVLP-family model once, verifying every recorded hash on the way.

    ``checkpoint`` is a variant fetched into the weights folder (``surgvlp``, ``hecvl``, ``peskavlp``), a checkpoint
    file or a weights folder. ``preprocess`` is ``"pil"`` (upstream's pixels exactly) or ``"tensor"`` (faster,
    not identical; see :mod:`surgvlp.network.preprocess`). An untrained checkpoint is recognised wherever the
    file was copied, and is refused unless the caller allowed untrained models. ``text_encoder=False`` loads
    the image encoder alone, for a caller that embeds frames and no prompts: it starts seconds sooner.
    """
    store, name = _store_and_name(checkpoint, store)
    importing = _import_in_background(IMAGE_ENCODER_MODULES + (TEXT_ENCODER_MODULES if text_encoder else ()))
    entry = store.resolve(name)
    if entry.untrained:
        require_untrained_allowed(f"checkpoint {entry.path}", allow_untrained)
    text_dir = Path(text_model).expanduser() if text_model else store.text_model_dir_for(entry)
    importing.join()
    from surgvlp.network.encoder import SurgVLPEncoder

    encoder = SurgVLPEncoder.from_files(
        entry.path, text_dir, device=device, precision=precision, preprocess=preprocess, text_encoder=text_encoder
    )
    return LoadedModel(encoder, entry.name, entry.path, entry.sha256, entry.untrained, text_dir, folder_id(text_dir))
