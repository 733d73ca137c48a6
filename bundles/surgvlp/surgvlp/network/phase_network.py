"""The frame-to-phase-logits network of the bundle: the image encoder with the phase prompts frozen into a head.

Zero-shot phase recognition needs the text encoder only to embed the prompts, and those embeddings are fixed
once the prompt set is chosen. Storing them (``models/phase_prompts.pt``, written by ``surgvlp weights convert
--prompt-set``) turns the model into an ordinary classifier, ``image`` (N, 3, 224, 224) -> ``pred`` (N, C),
that runs without a tokenizer or BERT: what MONAI's ``verify_net_in_out``, ONNX export and other runtimes
expect of a bundle network.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from surgvlp.atomic import atomic_write
from surgvlp.network.checkpoint import read_state_dict
from surgvlp.recognition.scoring import PHASE_LOGIT_SCALE
from surgvlp.errors import SurgVLPError
from surgvlp.network.model import EMBED_DIM, ImageEncoder
from surgvlp.recognition.prompts import PromptSet
from surgvlp.network.untrained import require_untrained_allowed
from surgvlp.weights import WeightEntry, WeightStore

BUNDLE_CHECKPOINT = "model"
"""Manifest name of ``models/model.pt``, the bundle's converted checkpoint."""

PHASE_PROMPTS = "phase_prompts"
"""Manifest name of ``models/phase_prompts.pt``."""

PHASE_PROMPTS_FORMAT = 1
IMAGE_PREFIX = "backbone_img."


class PhaseNetwork(nn.Module):
    """``pred = logit_scale * cos(image embedding, class embedding)``: softmax over ``pred`` is the zero-shot rule.

    The class embeddings are a buffer, not parameters: they come from the text encoder and stay fixed.
    """

    def __init__(self, class_embeddings: Tensor, logit_scale: float = PHASE_LOGIT_SCALE, embed_dim: int = EMBED_DIM) -> None:
        super().__init__()
        if class_embeddings.ndim != 2 or class_embeddings.shape[1] != embed_dim:
            raise ValueError(f"class embeddings must be (classes, {embed_dim}), got {tuple(class_embeddings.shape)}")
        self.backbone_img = ImageEncoder(embed_dim)
        self.register_buffer("class_embeddings", nn.functional.normalize(class_embeddings.float(), dim=1))
        self.logit_scale = logit_scale

    def forward(self, image: Tensor) -> Tensor:
        embeddings = nn.functional.normalize(self.backbone_img(image), dim=1)
        return self.logit_scale * embeddings @ self.class_embeddings.T


@dataclass(frozen=True)
class PhasePrompts:
    """The class embeddings of a phase prompt set, tied to the checkpoint whose text encoder made them."""

    prompt_set: PromptSet
    class_embeddings: Tensor
    checkpoint_sha256: str

    def save(self, path: Path) -> None:
        # Only tensors, strings, numbers and containers of them, so that it loads with ``weights_only=True``.
        record = {
            "format": PHASE_PROMPTS_FORMAT,
            "prompt_set": self.prompt_set.to_dict(),
            "class_embeddings": self.class_embeddings.float().contiguous(),
            "checkpoint_sha256": self.checkpoint_sha256,
        }
        with atomic_write(path) as stream:
            torch.save(record, stream)

    @classmethod
    def load(cls, path: Path) -> PhasePrompts:
        rewrite = "write it again with `surgvlp weights convert SOURCE --prompt-set NAME`"
        try:
            record = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # torch raises RuntimeError, UnpicklingError, EOFError, ... for bad files
            raise SurgVLPError(f"{path} is not a readable phase prompts file ({error}); {rewrite}") from None
        if not isinstance(record, dict) or record.get("format") != PHASE_PROMPTS_FORMAT:
            found = record.get("format") if isinstance(record, dict) else type(record).__name__
            raise SurgVLPError(f"{path} is not a phase prompts file of format {PHASE_PROMPTS_FORMAT} (found {found}); {rewrite}")
        prompt_set = PromptSet.from_dict(record.get("prompt_set"), str(path))
        embeddings = record.get("class_embeddings")
        expected = (len(prompt_set.classes), EMBED_DIM)
        if not isinstance(embeddings, Tensor) or tuple(embeddings.shape) != expected:
            raise SurgVLPError(f"{path} does not hold {expected[0]}x{expected[1]} class embeddings; {rewrite}")
        return cls(prompt_set, embeddings, str(record.get("checkpoint_sha256")))


def image_state_dict(checkpoint: Path) -> dict[str, Tensor]:
    """The image-encoder half of an official-layout checkpoint, with the ``backbone_img.`` prefix removed."""
    return {
        key.removeprefix(IMAGE_PREFIX): value
        for key, value in read_state_dict(checkpoint).items()
        if key.startswith(IMAGE_PREFIX)
    }


@dataclass(frozen=True)
class LoadedPhaseNetwork:
    """The network with what every artefact made from it must record: its classes and its weights."""

    network: PhaseNetwork
    prompts: PhasePrompts
    checkpoint: WeightEntry


def require_converted(store: WeightStore, checkpoint: str) -> None:
    """Say how to make ``models/model.pt`` when the bundle is asked for it before any conversion."""
    if checkpoint == BUNDLE_CHECKPOINT and BUNDLE_CHECKPOINT not in {entry.name for entry in store.entries()}:
        raise SurgVLPError(
            f"no converted checkpoint (model.pt) in {store.root}: run `surgvlp weights fetch peskavlp` and "
            "`surgvlp weights convert peskavlp --prompt-set cholec80` (see the bundle's docs/README.md)"
        )


def open_phase_network(
    weights_dir: str | Path | None = None,
    checkpoint: str = BUNDLE_CHECKPOINT,
    allow_untrained: bool = False,
) -> LoadedPhaseNetwork:
    """Build the phase network from a weights folder (the bundle's ``models/``), verifying every file's hash.

    The stored prompt embeddings must come from the very checkpoint they are combined with: embeddings made
    by one model's text encoder mean nothing in another model's image space.
    """
    store = WeightStore(weights_dir)
    require_converted(store, checkpoint)
    entry = store.resolve(checkpoint)
    if entry.untrained:
        require_untrained_allowed(f"checkpoint {entry.path}", allow_untrained)
    if PHASE_PROMPTS not in {recorded.name for recorded in store.entries()}:
        raise SurgVLPError(
            f"no phase prompt embeddings in {store.root}: run `surgvlp weights convert SOURCE --prompt-set cholec80` "
            "to store them beside the checkpoint"
        )
    prompts = PhasePrompts.load(store.resolve(PHASE_PROMPTS).path)
    if prompts.checkpoint_sha256 != entry.sha256:
        raise SurgVLPError(
            f"the phase prompts in {store.root} were embedded by another checkpoint (SHA-256 "
            f"{prompts.checkpoint_sha256[:12]}, not {entry.sha256[:12]}); run `surgvlp weights convert` again with --prompt-set"
        )
    network = PhaseNetwork(prompts.class_embeddings)
    network.backbone_img.load_state_dict(image_state_dict(entry.path), strict=True)
    return LoadedPhaseNetwork(network.eval(), prompts, entry)

