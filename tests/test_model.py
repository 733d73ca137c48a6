"""The network against an independent re-statement of the upstream implementation, on the same weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.transforms as T
from PIL import Image
from transformers import AutoTokenizer

from surgvlp.network.checkpoint import load_network
from surgvlp.network.encoder import SurgVLPEncoder
from surgvlp.recognition.scoring import phase_probabilities

PROMPTS = [
    "In preparation phase I insert trocars to patient abdomen cavity",
    "In clip and cut phase I use clipper to clip the cystic duct and artery then use scissor to cut them",
    "In dissection phase I use the hook to dissect the connective tissue between gallbladder and liver ",
    "Washing",
]


def upstream_image_embeddings(model, paths: list[Path]) -> torch.Tensor:
    """Upstream: PIL Resize((360, 640)), CenterCrop(224), ToTensor, Normalize; ResNet then AdaptiveAvgPool2d."""
    transform = T.Compose([
        T.Resize((360, 640)),
        T.CenterCrop(224),
        T.ToTensor(),
        T.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
    ])
    images = torch.stack([transform(Image.open(path).convert("RGB")) for path in paths])
    trunk = model.backbone_img.model
    x = trunk.maxpool(trunk.relu(trunk.bn1(trunk.conv1(images))))
    x = trunk.layer4(trunk.layer3(trunk.layer2(trunk.layer1(x))))
    pooled = torch.nn.AdaptiveAvgPool2d((1, 1))(x).flatten(1)
    return model.backbone_img.global_embedder(pooled)


def upstream_text_embeddings(model, text_model_dir: Path, prompts: list[str]) -> torch.Tensor:
    """Upstream: one prompt at a time, word pieces merged into words up to [SEP], mean over 77, sum of 4 layers."""
    tokenizer = AutoTokenizer.from_pretrained(str(text_model_dir))
    id_to_word = {index: word for word, index in tokenizer.get_vocab().items()}
    sentences = []
    for prompt in prompts:
        tokens = tokenizer(prompt, return_tensors="pt", truncation=True, padding="max_length", max_length=77)
        hidden = model.backbone_text.model(**tokens, output_hidden_states=True).hidden_states
        layers = torch.stack(hidden[-4:])[:, 0]  # (4, 77, D)
        words: list[torch.Tensor] = []
        for position, token_id in enumerate(tokens["input_ids"][0].tolist()):
            word = id_to_word[token_id]
            if word.startswith("##"):
                words[-1] = words[-1] + layers[:, position]
            else:
                words.append(layers[:, position])
            if word == "[SEP]":
                break
        padded = torch.zeros_like(layers)
        padded[:, : len(words)] = torch.stack(words, dim=1)
        sentences.append(padded.mean(dim=1).sum(dim=0))
    return torch.stack(sentences)


@pytest.fixture(scope="module")
def png_frames(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Smooth, varied RGB frames of an endoscope-like size, written as PNG."""
    folder = tmp_path_factory.mktemp("png_frames")
    rng = np.random.default_rng(7)
    y, x = np.mgrid[0:480, 0:854] / 480.0
    paths = []
    for index in range(5):
        phase = rng.uniform(0, 6, size=3)
        image = np.stack([np.sin(4 * x + 3 * y * c + p) for c, p in zip((1, 2, 3), phase)], axis=-1)
        image = ((image + 1) * 127.5 + rng.normal(0, 8, image.shape)).clip(0, 255).astype(np.uint8)
        paths.append(folder / f"frame_{index}.png")
        Image.fromarray(image).save(paths[-1])
    return paths


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


def test_embeddings_match_upstream(tiny_model, png_frames):
    model, _ = load_network(tiny_model.checkpoint, tiny_model.text_model_dir)
    encoder = SurgVLPEncoder.from_files(tiny_model.checkpoint, tiny_model.text_model_dir, device="cpu")
    ours_image = encoder.encode_frames([np.asarray(Image.open(path).convert("RGB")) for path in png_frames], batch_size=2)
    ours_text = encoder.encode_prompts(PROMPTS)
    with torch.inference_mode():
        reference_image = upstream_image_embeddings(model, png_frames).numpy()
        reference_text = upstream_text_embeddings(model, tiny_model.text_model_dir, PROMPTS).numpy()

    assert ours_image.shape == (len(png_frames), 768) and ours_text.shape == (len(PROMPTS), 768)
    assert cosine(ours_image, reference_image).min() >= 0.9999
    assert cosine(ours_text, reference_text).min() >= 0.9999
    ours = phase_probabilities(ours_image, ours_text)
    reference = phase_probabilities(reference_image, reference_text)
    np.testing.assert_array_equal(ours.argmax(axis=1), reference.argmax(axis=1))


def test_prompts_are_lower_cased_like_upstream(tiny_model):
    encoder = SurgVLPEncoder.from_files(tiny_model.checkpoint, tiny_model.text_model_dir, device="cpu")
    upper, lower = encoder.encode_prompts(["Washing the Field", "washing the field"])
    np.testing.assert_allclose(upper, lower, rtol=1e-6, atol=1e-6)


def test_dense_map_averages_to_the_image_embedding(tiny_model):
    model, _ = load_network(tiny_model.checkpoint, tiny_model.text_model_dir)
    images = torch.randn(2, 3, 360, 640)
    with torch.inference_mode():
        dense = model.backbone_img.dense_embeddings(images)
        pooled = model.encode_image(images)
    assert dense.shape == (2, 768, 12, 20)
    torch.testing.assert_close(dense.mean(dim=(2, 3)), pooled, rtol=1e-4, atol=1e-4)

