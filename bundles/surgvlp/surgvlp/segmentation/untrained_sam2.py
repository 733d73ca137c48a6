"""Random-weight SAM2 folders in the transformers layout, for tests, demos and speed figures.

``hiera-tiny`` is transformers' default ``Sam2VideoConfig``, the SAM2.1 Hiera-Tiny architecture (31 M
parameters, 1024 px input), and ``hiera-small`` differs from it only in its Hiera blocks, as SAM2.1 Hiera-Small
does, so that benchmarks time the real networks (at another input size too, for speed figures). ``tiny`` is as small as the network
allows on the CPU: the memory encoder must keep 64 output channels, the other hidden sizes stay above 64 so
that object pointers split into memory tokens, and a global-attention block may not open a Hiera stage.
The weights file carries the untrained mark in its safetensors metadata (see ``surgvlp.weights.sam2_files``),
so a copy of the folder is refused unless untrained models are allowed, and outputs say ``"untrained": true``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
from safetensors.torch import load_file, save_file
from transformers import Sam2VideoConfig, Sam2VideoModel

from surgvlp.weights.sam2_files import UNTRAINED_METADATA_KEY

Sam2Size = Literal["tiny", "hiera-tiny", "hiera-small"]

TINY_IMAGE_SIZE = 256
TINY_HIDDEN = 128
HIERA_BLOCKS = {"hiera-tiny": ([1, 2, 7, 2], [5, 7, 9]), "hiera-small": ([1, 2, 11, 2], [7, 10, 13])}
"""Blocks per stage and global-attention blocks of the SAM2.1 Hiera backbones."""
DEFAULT_IMAGE_SIZE = 1024


def _tiny_config() -> Sam2VideoConfig:
    size, hidden = TINY_IMAGE_SIZE, TINY_HIDDEN
    stride16 = size // 16
    backbone = dict(
        model_type="sam2_hiera_det_model",
        image_size=[size, size],
        hidden_size=32,
        blocks_per_stage=[1, 1, 2, 1],
        embed_dim_per_stage=[32, 64, 128, 256],
        num_attention_heads_per_stage=[1, 1, 2, 2],
        window_size_per_stage=[8, 4, 4, 4],
        global_attention_blocks=[3],
        window_positional_embedding_background_size=[4, 4],
    )
    vision = dict(
        model_type="sam2_vision_model",
        backbone_config=backbone,
        backbone_channel_list=[256, 128, 64, 32],
        backbone_feature_sizes=[[size // 4] * 2, [size // 8] * 2, [stride16] * 2],
        fpn_hidden_size=hidden,
    )
    return Sam2VideoConfig(
        image_size=size,
        vision_config=vision,
        prompt_encoder_config=dict(hidden_size=hidden, image_size=size, patch_size=16),
        mask_decoder_config=dict(hidden_size=hidden, mlp_dim=256, num_attention_heads=2, iou_head_hidden_dim=hidden),
        memory_attention_hidden_size=hidden,
        memory_attention_num_layers=1,
        memory_attention_feed_forward_hidden_size=256,
        memory_attention_rope_feat_sizes=[stride16, stride16],
        memory_encoder_hidden_size=hidden,
        memory_encoder_output_channels=64,
        mask_downsampler_embed_dim=hidden,
        memory_fuser_embed_dim=hidden,
        memory_fuser_intermediate_dim=256,
        memory_fuser_num_layers=1,
    )


def _hiera_config(size: Sam2Size, image_size: int) -> Sam2VideoConfig:
    blocks, global_blocks = HIERA_BLOCKS[size]
    backbone = dict(model_type="sam2_hiera_det_model", image_size=[image_size] * 2, blocks_per_stage=blocks, global_attention_blocks=global_blocks)
    features = [[image_size // stride] * 2 for stride in (4, 8, 16)]
    return Sam2VideoConfig(
        image_size=image_size,
        vision_config=dict(model_type="sam2_vision_model", backbone_config=backbone, backbone_feature_sizes=features),
        prompt_encoder_config=dict(image_size=image_size),
        memory_attention_rope_feat_sizes=features[-1],
    )


def write_untrained_sam2(folder: Path, size: Sam2Size = "tiny", seed: int = 0, image_size: int = DEFAULT_IMAGE_SIZE) -> Path:
    """Write ``config.json`` and ``model.safetensors`` (marked untrained) into ``folder``; same seed, same weights.

    ``image_size`` (a multiple of 16) is the input size of the Hiera sizes; ``tiny`` always takes 256.
    """
    folder = Path(folder)
    config = _tiny_config() if size == "tiny" else _hiera_config(size, image_size)
    torch.manual_seed(seed)
    Sam2VideoModel(config).eval().save_pretrained(folder)
    weights = folder / "model.safetensors"
    save_file(load_file(weights), weights, metadata={"format": "pt", UNTRAINED_METADATA_KEY: "true"})
    return folder
