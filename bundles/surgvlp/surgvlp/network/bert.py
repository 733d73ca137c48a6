"""BERT's encoder in plain torch, with transformers' parameter names: the text half of the network.

Official checkpoints hold upstream's ``transformers.BertModel`` (Bio_ClinicalBERT, with its pooler) under
``backbone_text.model.*``. Importing transformers' modeling code costs about three seconds of CPU at every start
(it brings ``transformers.modeling_utils``, ``torch._dynamo``, ``torch.distributed.tensor`` and more), while the
network needs only BERT's encoder, run forward. This module builds the same layers under the same names, in the
same order, so the ``state_dict`` is transformers' own and an official file loads strictly; and it computes with
the same operations in the same order. Attention is the "eager" formula that upstream's older transformers ran,
``softmax(Q K^T / sqrt(d) + mask) V`` with padded keys masked by the dtype's lowest value: on the CPU in float32
every hidden state equals transformers' eager attention bit for bit, and its default (SDPA) kernel within a few
1e-6 (3.5e-6 for the built-in prompts on BERT-base; ``tests/test_bert.py`` compares them).

Only the architecture that Bio_ClinicalBERT's ``config.json`` describes is built (exact GELU, absolute position
embeddings, an encoder); any other configuration is refused rather than computed differently. There are no
dropout modules: the network only ever infers, and ``train()`` then changes nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from surgvlp.errors import SurgVLPError

if TYPE_CHECKING:
    from transformers import BertConfig


def unsupported_settings(config: BertConfig) -> list[str]:
    """What in ``config`` this module does not build, as ``setting value`` phrases; empty when all is supported."""
    problems = []
    if config.hidden_act != "gelu":
        problems.append(f"hidden_act {config.hidden_act!r} (only 'gelu')")
    position = getattr(config, "position_embedding_type", "absolute")  # no longer a BertConfig field; old files have it
    if position != "absolute":
        problems.append(f"position_embedding_type {position!r} (only 'absolute')")
    if config.is_decoder or config.add_cross_attention:
        problems.append("is_decoder/add_cross_attention (only an encoder)")
    if config.num_attention_heads < 1 or config.hidden_size % config.num_attention_heads:
        heads = config.num_attention_heads
        problems.append(f"hidden_size {config.hidden_size} not a multiple of num_attention_heads {heads}")
    return problems


def _embedding(rows: int, width: int, padding_idx: int | None = None) -> nn.Embedding:
    """``nn.Embedding`` with torch's initial values, except on the meta device, where it draws none.

    Drawing normal values on the meta device imports ``torch._dynamo`` (a second), and a network built there is
    about to receive a checkpoint's weights.
    """
    embedding = nn.Embedding(rows, width, padding_idx, _weight=torch.empty(rows, width))
    if not embedding.weight.is_meta:
        embedding.reset_parameters()
    return embedding


class Embeddings(nn.Module):
    """Word, token-type and position embeddings, summed in transformers' order (float sums depend on it), then
    LayerNorm."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.word_embeddings = _embedding(config.vocab_size, config.hidden_size, config.pad_token_id)
        self.position_embeddings = _embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type_embeddings = _embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, input_ids: Tensor, token_type_ids: Tensor) -> Tensor:
        # The positions are made here rather than kept in a buffer: nothing to leave behind on the meta device.
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        embeddings = self.word_embeddings(input_ids) + self.token_type_embeddings(token_type_ids)
        return self.LayerNorm(embeddings + self.position_embeddings(positions))


class SelfAttention(nn.Module):
    """Multi-head scaled dot-product attention, in transformers' eager formulation, step by step."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.heads = config.num_attention_heads
        self.head_size = config.hidden_size // config.num_attention_heads
        self.scaling = self.head_size**-0.5  # a product, as transformers computes it (for d = 64 the same as / 8)
        self.query = nn.Linear(config.hidden_size, config.hidden_size)
        self.key = nn.Linear(config.hidden_size, config.hidden_size)
        self.value = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, hidden: Tensor, additive_mask: Tensor) -> Tensor:
        tokens = hidden.shape[:-1]
        per_head = (*tokens, self.heads, self.head_size)
        query = self.query(hidden).view(per_head).transpose(1, 2)
        key = self.key(hidden).view(per_head).transpose(1, 2)
        value = self.value(hidden).view(per_head).transpose(1, 2)
        scores = torch.matmul(query, key.transpose(2, 3)) * self.scaling
        weights = nn.functional.softmax(scores + additive_mask, dim=-1)
        return torch.matmul(weights, value).transpose(1, 2).reshape(*tokens, -1)


class ResidualNorm(nn.Module):
    """How each half of a BERT layer ends: a projection, the half's input added back, LayerNorm."""

    def __init__(self, in_features: int, config: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(in_features, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, hidden: Tensor, residual: Tensor) -> Tensor:
        return self.LayerNorm(self.dense(hidden) + residual)


class Attention(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.self = SelfAttention(config)
        self.output = ResidualNorm(config.hidden_size, config)

    def forward(self, hidden: Tensor, additive_mask: Tensor) -> Tensor:
        return self.output(self.self(hidden, additive_mask), hidden)


class Intermediate(nn.Module):
    """The feed-forward expansion with the exact (erf) GELU, which BERT's ``"gelu"`` names."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)

    def forward(self, hidden: Tensor) -> Tensor:
        return nn.functional.gelu(self.dense(hidden))


class Layer(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.attention = Attention(config)
        self.intermediate = Intermediate(config)
        self.output = ResidualNorm(config.intermediate_size, config)

    def forward(self, hidden: Tensor, additive_mask: Tensor) -> Tensor:
        attended = self.attention(hidden, additive_mask)
        return self.output(self.intermediate(attended), attended)


class Encoder(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.layer = nn.ModuleList(Layer(config) for _ in range(config.num_hidden_layers))


class Pooler(nn.Module):
    """tanh of a projection of the [CLS] token's last hidden state.

    SurgVLP pools hidden states its own way and never uses it; it is here because official checkpoints hold its
    weights and loading is strict.
    """

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, last_hidden: Tensor) -> Tensor:
        return torch.tanh(self.dense(last_hidden[:, 0]))


class Bert(nn.Module):
    """BERT's encoder with its pooler: ``state_dict`` as ``transformers.BertModel(config, add_pooling_layer=True)``."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        problems = unsupported_settings(config)
        if problems:
            raise SurgVLPError(f"this BERT configuration is not supported: {'; '.join(problems)}")
        self.embeddings = Embeddings(config)
        self.encoder = Encoder(config)
        self.pooler = Pooler(config)

    def forward(self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor) -> tuple[Tensor, ...]:
        """Every hidden state, (N, L, hidden) each: the embeddings' output, then each layer's, as transformers'
        ``hidden_states``. ``attention_mask`` is 1 for real tokens, 0 for padding."""
        hidden = self.embeddings(input_ids, token_type_ids)
        states = [hidden]
        additive_mask = padding_mask(attention_mask, hidden.dtype)
        for layer in self.encoder.layer:
            hidden = layer(hidden, additive_mask)
            states.append(hidden)
        return tuple(states)


def padding_mask(attention_mask: Tensor, dtype: torch.dtype) -> Tensor:
    """(N, 1, 1, L): 0 where a key is a real token, the dtype's lowest value where it is padding.

    The lowest finite value, not -inf, as upstream: a row of padding alone then still has a softmax, not NaN.
    """
    keep = attention_mask[:, None, None, :].bool()
    return torch.zeros(keep.shape, dtype=dtype, device=attention_mask.device).masked_fill(~keep, torch.finfo(dtype).min)


def initialise_like_transformers(bert: Bert, std: float) -> None:
    """Draw random weights as transformers' ``BertModel`` does (its ``initializer_range`` as ``std``), for
    random-weight models: normal linear and embedding weights, the padding token's row and every bias zero,
    LayerNorms the identity. Every module in ``modules()`` order, so the same seed gives transformers' values.

    Not in the constructor: a network about to receive a checkpoint's weights needs no initial values.
    """
    with torch.no_grad():
        for module in bert.modules():
            if isinstance(module, nn.Linear):
                module.weight.normal_(0.0, std)
                module.bias.zero_()
            elif isinstance(module, nn.Embedding):
                module.weight.normal_(0.0, std)
                if module.padding_idx is not None:
                    module.weight[module.padding_idx].zero_()
            elif isinstance(module, nn.LayerNorm):
                module.weight.fill_(1.0)
                module.bias.zero_()
