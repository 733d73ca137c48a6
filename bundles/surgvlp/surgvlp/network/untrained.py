"""Randomly initialised models in the official checkpoint layout, and the rule for when they may run.

They exist so that the whole pipeline can be exercised (tests, demos, benchmarks) where the licensed weights
cannot be downloaded. Their outputs mean nothing, so they run only when asked for explicitly, and every
output they produce says ``"untrained": true``. The mark is in the file itself (see
:mod:`surgvlp.network.checkpoint`), so a copy or an import of it is just as untrained. The weights are
calibrated (:mod:`surgvlp.network.calibration`) so that different frames get different embeddings and
labels, and a test comparing them can fail.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from transformers import BertConfig

from surgvlp.atomic import atomic_write
from surgvlp.network.bert import initialise_like_transformers
from surgvlp.network.calibration import calibrate
from surgvlp.network.checkpoint import mark_untrained
from surgvlp.network.model import EMBED_DIM, SurgVLP
from surgvlp.network.resnet import initialise_like_torchvision
from surgvlp.network.text import PromptTokenizer
from surgvlp.recognition.prompts import builtin_prompt_sets, load_prompt_set
from surgvlp.weights.store import CHECKPOINT_TEXT_MODEL_DIRNAME

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
BIO_CLINICAL_BERT_VOCAB_SIZE = 28996

Size = Literal["tiny", "full"]

# "full" has Bio_ClinicalBERT's shape, for realistic speed and memory figures; "tiny" keeps the 768-d
# embedding space and the four pooled layers but little else, so tests load it in a blink.
TEXT_CONFIGS: dict[Size, dict[str, int]] = {
    "tiny": dict(num_hidden_layers=4, num_attention_heads=4, intermediate_size=256, max_position_embeddings=128),
    "full": dict(num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072, max_position_embeddings=512),
}


@dataclass(frozen=True)
class ModelFiles:
    checkpoint: Path
    text_model_dir: Path


def _vocabulary(size: Size) -> list[str]:
    """A WordPiece vocabulary that spells any lower-case ASCII text and holds the built-in prompts' words.

    The whole words give prompts the token counts they have with the real vocabulary, so text-encoder
    timings are representative; ``full`` is padded to Bio_ClinicalBERT's size.
    """
    pieces = list(string.ascii_lowercase + string.digits + string.punctuation)
    words = sorted({
        word
        for name in builtin_prompt_sets()
        for prompt in load_prompt_set(name).all_prompts()
        for word in re.findall(r"[a-z0-9]+", prompt.lower())
    } - set(pieces))
    vocab = [*SPECIAL_TOKENS, *pieces, *(f"##{piece}" for piece in pieces), *words]
    if size == "full":
        vocab += [f"[unused{index}]" for index in range(BIO_CLINICAL_BERT_VOCAB_SIZE - len(vocab))]
    return vocab


def write_untrained_model(out_dir: Path, size: Size = "tiny", seed: int = 0) -> ModelFiles:
    """Write ``model.pth`` (a bare state_dict with upstream key names, marked untrained) and a matching
    ``text_model/`` folder; the same ``seed`` gives the same weights."""
    out_dir = Path(out_dir)
    text_dir = out_dir / CHECKPOINT_TEXT_MODEL_DIRNAME
    text_dir.mkdir(parents=True, exist_ok=True)
    vocab = _vocabulary(size)
    (text_dir / "vocab.txt").write_text("\n".join(vocab) + "\n")
    config = BertConfig(vocab_size=len(vocab), hidden_size=EMBED_DIM, **TEXT_CONFIGS[size])
    config.architectures = ["BertModel"]
    config.to_json_file(text_dir / "config.json")

    torch.manual_seed(seed)
    model = SurgVLP(config, sep_token_id=vocab.index("[SEP]"))
    # BERT first: transformers' BertModel drew its values as it was built, before the ResNet's were redrawn,
    # so a seed still gives the BERT weights it gave when the network was transformers' own.
    initialise_like_transformers(model.backbone_text.model, config.initializer_range)
    initialise_like_torchvision(model.backbone_img.model)
    calibrate(model, PromptTokenizer(text_dir), seed)
    checkpoint = out_dir / "model.pth"
    with atomic_write(checkpoint) as stream:
        torch.save(mark_untrained(model.state_dict()), stream)
    return ModelFiles(checkpoint, text_dir)
