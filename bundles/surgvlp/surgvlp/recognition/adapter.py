"""Few-shot adaptation: a linear phase head on frozen frame embeddings, started from the zero-shot classifier.

The head's weights start as the prompt set's class embeddings with the zero-shot scale, so before training it
gives exactly the zero-shot probabilities; training on a few labelled videos (cached embeddings, CPU,
seconds to minutes) only moves it as far as the labels ask. Clinicians' corrected timelines are such labels.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from surgvlp.atomic import atomic_write
from surgvlp.errors import SurgVLPError
from surgvlp.recognition.prompts import PromptSet
from surgvlp.recognition.scoring import PHASE_LOGIT_SCALE, softmax, unit_rows

ADAPTER_FORMAT = "surgvlp.phase-adapter/1"


@dataclass
class PhaseAdapter:
    class_names: list[str]
    weight: np.ndarray  # (C, D), applied to unit-length frame embeddings
    bias: np.ndarray  # (C,)
    checkpoint_sha256: str
    untrained_encoder: bool
    history: dict[str, object] = field(default_factory=dict)

    @classmethod
    def from_prompts(cls, prompt_set: PromptSet, class_embeddings: np.ndarray, checkpoint_sha256: str, untrained_encoder: bool) -> PhaseAdapter:
        """The zero-shot classifier written as a linear layer: ``scale * cos`` logits, zero bias."""
        weight = PHASE_LOGIT_SCALE * unit_rows(class_embeddings, np.float32)
        return cls(prompt_set.class_names, weight, np.zeros(len(weight), np.float32), checkpoint_sha256, untrained_encoder)

    def logits(self, frame_embeddings: np.ndarray) -> np.ndarray:
        return unit_rows(frame_embeddings, np.float32) @ self.weight.T + self.bias

    def probabilities(self, frame_embeddings: np.ndarray) -> np.ndarray:
        return softmax(self.logits(frame_embeddings).astype(np.float64))

    def fit(self, frame_embeddings: list[np.ndarray], labels: list[np.ndarray], epochs: int = 300, learning_rate: float = 0.05, weight_decay: float = 1e-4) -> float:
        """Full-batch cross-entropy training on the labelled frames of several videos; returns the final loss.

        Videos are weighted equally and classes by inverse frequency, so a long phase in one video does
        not drown the short ones the clinician corrected.
        """
        import torch  # only training needs it: reading an adapter and scoring with it stay light

        features = torch.from_numpy(np.concatenate([unit_rows(embeddings, np.float32) for embeddings in frame_embeddings]))
        targets = torch.from_numpy(np.concatenate(labels).astype(np.int64))
        if len(features) == 0:
            raise SurgVLPError("no labelled frames to adapt on")
        counts = torch.bincount(targets, minlength=len(self.class_names)).float()
        class_weight = torch.where(counts > 0, counts.sum() / counts.clamp(min=1) / (counts > 0).sum(), torch.zeros(()))
        weight = torch.nn.Parameter(torch.from_numpy(self.weight.copy()))
        bias = torch.nn.Parameter(torch.from_numpy(self.bias.copy()))
        optimiser = torch.optim.Adam([weight, bias], lr=learning_rate, weight_decay=weight_decay)
        loss_fn = torch.nn.CrossEntropyLoss(weight=class_weight)
        for _ in range(epochs):
            optimiser.zero_grad()
            loss = loss_fn(features @ weight.T + bias, targets)
            loss.backward()
            optimiser.step()
        final_loss = float(loss.detach())
        self.weight = weight.detach().numpy()
        self.bias = bias.detach().numpy()
        self.history = {"videos": len(frame_embeddings), "frames": int(len(features)), "epochs": epochs, "final_loss": final_loss}
        return final_loss

    def check_classes(self, prompt_set: PromptSet) -> None:
        if prompt_set.class_names != self.class_names:
            raise SurgVLPError(
                f"the adapter was trained for classes {', '.join(self.class_names)}, not those of prompt set {prompt_set.name!r}"
            )

    def describe(self) -> dict[str, object]:
        return {"classes": self.class_names, "untrained_encoder": self.untrained_encoder, **self.history}

    def save(self, path: Path) -> None:
        metadata = {
            "format": ADAPTER_FORMAT,
            "class_names": self.class_names,
            "checkpoint_sha256": self.checkpoint_sha256,
            "untrained_encoder": self.untrained_encoder,
            "history": self.history,
        }
        with atomic_write(path) as stream:
            np.savez(stream, weight=self.weight, bias=self.bias, metadata=np.asarray(json.dumps(metadata)))

    @classmethod
    def load(cls, path: Path, checkpoint_sha256: str | None = None) -> PhaseAdapter:
        """Read an adapter; with ``checkpoint_sha256`` also check it was trained on that encoder's embeddings."""
        try:
            with np.load(path) as stored:
                metadata = json.loads(str(stored["metadata"]))
                weight, bias = stored["weight"], stored["bias"]
        except (OSError, ValueError, KeyError, EOFError) as error:
            raise SurgVLPError(f"{path} is not a phase adapter file ({error})") from None
        if metadata.get("format") != ADAPTER_FORMAT:
            raise SurgVLPError(f"{path} is not a phase adapter file (format {metadata.get('format')!r})")
        if checkpoint_sha256 is not None and metadata["checkpoint_sha256"] != checkpoint_sha256:
            raise SurgVLPError(f"{path} was trained on the embeddings of another checkpoint (SHA-256 {metadata['checkpoint_sha256'][:12]}…)")
        return cls(metadata["class_names"], weight, bias, metadata["checkpoint_sha256"], metadata["untrained_encoder"], metadata["history"])
