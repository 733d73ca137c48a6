"""The SurgVLP-family network: one architecture for SurgVLP, HecVL and PeskaVLP, which differ only in weights.

Module and parameter names follow the official checkpoints (``backbone_img.model.*``,
``backbone_img.global_embedder.*``, ``backbone_text.model.*``) so that an official ``state_dict`` loads
strictly, without renaming.

Both halves are plain torch (:mod:`surgvlp.network.resnet`, :mod:`surgvlp.network.bert`): importing torchvision's
and transformers' modeling code would cost seconds at every start. Built without a text configuration, the
network is its image half alone: all that embedding frames needs, without the tokenizer or BERT's weights.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from surgvlp.network.bert import Bert
from surgvlp.network.resnet import ResNet50

if TYPE_CHECKING:
    from transformers import BertConfig

EMBED_DIM = 768
"""Width of the shared image-text embedding space (BERT-base's hidden size)."""

CONTEXT_LENGTH = 77
"""Token length every prompt is padded or truncated to; also the divisor of the text pooling."""

TEXT_LAYERS_POOLED = 4
"""The sentence vector sums this many last hidden layers of BERT."""


class ImageEncoder(nn.Module):
    """ResNet-50 trunk, global average pool after layer4, then a linear projection to the embedding space."""

    def __init__(self, embed_dim: int = EMBED_DIM) -> None:
        super().__init__()
        self.model = ResNet50()
        self.global_embedder = nn.Linear(self.model.out_channels, embed_dim)

    def feature_map(self, images: Tensor) -> Tensor:
        """The layer4 activations, (N, 2048, H/32, W/32)."""
        return self.model(images)

    def forward(self, images: Tensor) -> Tensor:
        return self.global_embedder(self.feature_map(images).mean(dim=(2, 3)))

    def dense_embeddings(self, images: Tensor) -> Tensor:
        """The projection applied to every layer4 cell, (N, embed_dim, H/32, W/32).

        The projection is linear, so it commutes with average pooling: the spatial mean of this map is exactly
        ``forward(images)``. That makes it a faithful per-region similarity map for text-referring segmentation.
        """
        features = self.feature_map(images)
        weight = self.global_embedder.weight[:, :, None, None]
        return nn.functional.conv2d(features, weight, self.global_embedder.bias)


class TextEncoder(nn.Module):
    """Bio_ClinicalBERT with the upstream sentence pooling and no projection head."""

    def __init__(self, config: BertConfig, sep_token_id: int) -> None:
        super().__init__()
        if config.num_hidden_layers < TEXT_LAYERS_POOLED:
            raise ValueError(f"the text model needs at least {TEXT_LAYERS_POOLED} layers, got {config.num_hidden_layers}")
        self.model = Bert(config)
        self.sep_token_id = sep_token_id

    def forward(self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor) -> Tensor:
        """Sum of the last four hidden layers, summed over the tokens [CLS]..first [SEP], divided by 77.

        Upstream merges word pieces into words and averages over the 77 padded positions with zeros after
        [SEP]; merging by summation keeps the total, so this masked sum is the same number, vectorised.
        """
        hidden = self.model(input_ids, attention_mask, token_type_ids)
        layers = torch.stack(hidden[-TEXT_LAYERS_POOLED:]).sum(dim=0)
        is_sep = input_ids == self.sep_token_id
        up_to_first_sep = (is_sep.cumsum(dim=1) - is_sep.long()) == 0
        return (layers * up_to_first_sep.unsqueeze(-1).to(layers.dtype)).sum(dim=1) / CONTEXT_LENGTH


class SurgVLP(nn.Module):
    """Image and text encoders into one 768-d space; zero-shot scores are ``softmax(100 * cos)``.

    With ``text_config`` None there is no ``backbone_text``: the network embeds images only.
    """

    def __init__(self, text_config: BertConfig | None, sep_token_id: int | None = None) -> None:
        super().__init__()
        # There is no text projection: the image side projects straight into BERT's hidden size.
        self.backbone_img = ImageEncoder(EMBED_DIM if text_config is None else text_config.hidden_size)
        self.backbone_text = None if text_config is None else TextEncoder(text_config, sep_token_id)

    def encode_image(self, images: Tensor) -> Tensor:
        return self.backbone_img(images)

    def encode_text(self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor) -> Tensor:
        return self.backbone_text(input_ids, attention_mask, token_type_ids)

