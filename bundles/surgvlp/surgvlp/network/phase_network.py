"""The MONAI bundle's network: the whole SurgVLP model, with the class embeddings of one phase prompt set as its head.

MONAI expects ``network_def`` to be the network that inference runs and ``models/model.pt`` to be exactly its
``state_dict``, so that ``verify_net_in_out``, ``ckpt_export`` and a ``CheckpointLoader`` all see one network.
The bundle's inference needs both encoders: the image encoder for every frame, the text encoder for a prompt
set named at run time (tools, another procedure). So the network is :class:`~surgvlp.network.model.SurgVLP`
itself, with the official key names (``backbone_img.*``, ``backbone_text.*``), plus one buffer,
``class_embeddings``: the unit-length class embeddings of the phase prompt set chosen at conversion, which its
own text encoder made. ``forward(image)`` is then an ordinary classifier, ``(N, 3, 224, 224) -> (N, C)``
logits ``100 * cos``, whose softmax is the zero-shot rule; it touches only the image side, so TorchScript
and ONNX exports hold the image encoder and the head alone.

Beside ``model.pt``, ``models/prompt_set.json`` records which prompt set made the head (class names, prompts,
order, durations), and the bundle's ``configs/metadata.json`` names the same classes as the output channels.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from surgvlp.atomic import atomic_write
from surgvlp.errors import SurgVLPError
from surgvlp.network.checkpoint import BUNDLE_HEAD_KEY as HEAD_KEY
from surgvlp.network.model import SurgVLP
from surgvlp.network.text import PromptTokenizer, load_text_config
from surgvlp.untrained_policy import require_untrained_allowed
from surgvlp.recognition.scoring import PHASE_LOGIT_SCALE
from surgvlp.recognition.prompts import PromptSet
from surgvlp.weights import WeightEntry, WeightStore

if TYPE_CHECKING:
    from transformers import BertConfig

BUNDLE_CHECKPOINT = "model"
"""Manifest name of ``models/model.pt``: the state_dict of :class:`ZeroShotNetwork`."""

CHECKPOINT_FILE = "model.pt"

PROMPT_SET = "prompt_set"
"""Manifest name of ``models/prompt_set.json``, the prompt set whose embeddings are the head."""

PROMPT_SET_FILE = "prompt_set.json"
PROMPT_SET_FORMAT = "surgvlp.bundle.prompt-set/1"
CONVERT_HINT = "`surgvlp weights convert SOURCE --bundle DIR --prompt-set NAME`"


class ZeroShotNetwork(SurgVLP):
    """SurgVLP with a fixed head: ``forward(image) = logit_scale * cos(image embedding, class embeddings)``.

    The head is a buffer, not a parameter: it is the text encoder's output for the converted prompt set, kept
    so that the network classifies frames on its own, and it is saved in ``model.pt`` with the weights.
    """

    # TorchScript compiles every submodule it can reach; forward never calls the text encoder, so it is left out.
    __jit_ignored_attributes__ = ["backbone_text"]

    def __init__(self, text_config: BertConfig, sep_token_id: int, num_classes: int, logit_scale: float = PHASE_LOGIT_SCALE) -> None:
        super().__init__(text_config, sep_token_id)
        if num_classes < 1:
            raise ValueError(f"the head needs at least one class, got {num_classes}")
        self.register_buffer(HEAD_KEY, torch.zeros(num_classes, text_config.hidden_size))
        self.logit_scale = logit_scale

    def forward(self, image: Tensor) -> Tensor:
        embeddings = nn.functional.normalize(self.backbone_img(image), dim=1)
        return self.logit_scale * embeddings @ nn.functional.normalize(self.class_embeddings, dim=1).T


def text_model_dir(weights_dir: str | Path) -> Path:
    """The text-model folder of a bundle's ``models/`` (a test model's own, else its Bio_ClinicalBERT)."""
    store = WeightStore(Path(weights_dir))
    require_converted(store)
    return store.text_model_dir_in(store.root)


def build_network(text_model: str | Path, num_classes: int) -> ZeroShotNetwork:
    """The architecture, with random weights, for ``num_classes`` outputs: MONAI's ``network_def``.

    The text model's ``config.json`` fixes BERT's size and its vocabulary the [SEP] id; the weights (and the
    head) come from ``model.pt`` afterwards.
    """
    text_model = Path(text_model)
    return ZeroShotNetwork(load_text_config(text_model), PromptTokenizer(text_model).sep_token_id, int(num_classes))


def require_converted(store: WeightStore) -> None:
    """Say how to make ``models/model.pt`` when the bundle is asked for it before any conversion."""
    if BUNDLE_CHECKPOINT not in {entry.name for entry in store.entries()}:
        raise SurgVLPError(
            f"no converted checkpoint (model.pt) in {store.root}: run `surgvlp weights fetch peskavlp` and "
            f"`surgvlp weights convert peskavlp --bundle DIR --prompt-set cholec80` (see the bundle's docs/README.md)"
        )


def save_prompt_set(prompt_set: PromptSet, source_sha256: str, path: Path) -> None:
    """Record which prompt set, embedded by the checkpoint with ``source_sha256``, is the network's head."""
    record = {"format": PROMPT_SET_FORMAT, "source_checkpoint_sha256": source_sha256, "prompt_set": prompt_set.to_dict()}
    with atomic_write(path, "w", encoding="utf-8") as stream:
        json.dump(record, stream, indent=2)
        stream.write("\n")


def load_prompt_set_record(path: Path) -> PromptSet:
    rewrite = f"write it again with {CONVERT_HINT}"
    try:
        record: Any = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise SurgVLPError(f"{path} is not a readable prompt-set record ({error}); {rewrite}") from None
    if not isinstance(record, dict) or record.get("format") != PROMPT_SET_FORMAT:
        raise SurgVLPError(f"{path} is not a prompt-set record of format {PROMPT_SET_FORMAT}; {rewrite}")
    return PromptSet.from_dict(record.get("prompt_set"), str(path))


@dataclass(frozen=True)
class LoadedBundleNetwork:
    """The network with what every artefact made from it must record: its classes and its weights."""

    network: ZeroShotNetwork
    prompt_set: PromptSet
    checkpoint: WeightEntry


def verified_checkpoint(weights_dir: str | Path, allow_untrained: bool = False) -> WeightEntry:
    """``model.pt`` from a bundle's ``models/``, its SHA-256 checked against the manifest, refused if untrained
    unless allowed."""
    store = WeightStore(Path(weights_dir))
    require_converted(store)
    entry = store.resolve(BUNDLE_CHECKPOINT)
    if entry.untrained:
        require_untrained_allowed(f"checkpoint {entry.path}", allow_untrained)
    return entry


def stored_prompt_set(weights_dir: str | Path) -> PromptSet:
    """The prompt set whose class embeddings ``model.pt`` holds (its record checked against the manifest)."""
    store = WeightStore(Path(weights_dir))
    if PROMPT_SET not in {entry.name for entry in store.entries()}:
        raise SurgVLPError(f"no {PROMPT_SET_FILE} recorded in {store.root}: convert again with {CONVERT_HINT}")
    return load_prompt_set_record(store.resolve(PROMPT_SET).path)


def load_state(network: nn.Module, checkpoint: Path) -> None:
    """Load ``checkpoint`` into ``network`` strictly, on the CPU; a mismatch is one line naming the first keys."""
    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        network.load_state_dict(state, strict=True)
    except Exception as error:  # torch raises RuntimeError, UnpicklingError, EOFError, ... for bad files
        first = str(error).strip().splitlines()
        raise SurgVLPError(f"{checkpoint} does not load into the bundle network: {' '.join(first[:2])}; convert again with {CONVERT_HINT}") from None


def open_bundle_network(weights_dir: str | Path, allow_untrained: bool = False) -> LoadedBundleNetwork:
    """The bundle's network with its weights, from a bundle's ``models/``, every file's hash verified."""
    entry = verified_checkpoint(weights_dir, allow_untrained)
    prompt_set = stored_prompt_set(weights_dir)
    network = build_network(text_model_dir(weights_dir), len(prompt_set.classes))
    load_state(network, entry.path)
    return LoadedBundleNetwork(network.eval(), prompt_set, entry)
