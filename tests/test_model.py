"""Properties of the network itself; its agreement with the official code is tests/test_parity.py's subject."""

from __future__ import annotations

import torch

from surgvlp.network.checkpoint import load_network


def test_dense_map_averages_to_the_image_embedding(tiny_model):
    model, _ = load_network(tiny_model.checkpoint, tiny_model.text_model_dir)
    images = torch.randn(2, 3, 360, 640)
    with torch.inference_mode():
        dense = model.backbone_img.dense_embeddings(images)
        pooled = model.encode_image(images)
    assert dense.shape == (2, 768, 12, 20)
    torch.testing.assert_close(dense.mean(dim=(2, 3)), pooled, rtol=1e-4, atol=1e-4)
