"""Calibrating a random-weight network so that what it says about a frame depends on the frame.

Freshly initialised, the ResNet-50 maps every frame to nearly the same embedding (frame-to-frame cosine
above 0.997): its BatchNorm layers hold the statistics of no input at all, and the pooled features of all
images share one large positive component that the random projection passes on. Every zero-shot label is
then the same, and a test that compares labels cannot fail. Calibration gives the network the statistics of
its input, never a task:

1. BatchNorm. Laparoscopy-like frames drawn by the sample-data renderer, from a case of their own seed
   (never one that a test or a demo runs on), go through the network once in training mode, so every
   BatchNorm layer normalises its input with that input's statistics, layer after layer, and keeps them.
2. Projection. The pooled features of those frames are centred and whitened along their leading principal
   axes, leaving out the direction that only tells the two rendered resolutions apart (a sharp and a blurred
   copy of a scene are the same scene), and these axes are mapped onto the leading axes along which the text
   embeddings of the built-in prompts differ. Frames that look different then point in directions that the
   prompts tell apart.
3. Rotation. Of a few random rotations within those axes, the one that spreads the rendered frames over the
   most classes of the built-in phase prompt sets (the largest label entropy) is kept.

No annotation is used anywhere: the result is still an untrained model whose outputs mean nothing; they are
only no longer constant.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn

from surgvlp.network.model import ImageEncoder, SurgVLP
from surgvlp.network.preprocess import to_model_input
from surgvlp.network.text import PromptTokenizer
from surgvlp.recognition.prompts import builtin_prompt_sets, load_prompt_set
from surgvlp.recognition.scoring import unit_rows

CALIBRATION_SECONDS = 21
"""Frames rendered, one a second: three of each of the seven phases the renderer draws."""

RENDER_SIZES = ((160, 96), (640, 360))
"""Every other frame is drawn small (blurred once resized for the network), the rest at full size."""

SCENE_SEED_OFFSET = 1_000_003
"""The rendered case's seed is the model's seed plus this, far from the seeds sample cases are made with."""

AXES = 16
"""Principal axes of the image features mapped onto text axes (at most the frames less the sizes and one)."""

ROTATIONS_TRIED = 64


def calibrate(model: SurgVLP, tokenizer: PromptTokenizer, seed: int) -> None:
    """Set the BatchNorm statistics and the image projection of a freshly initialised ``model`` in place.

    It runs on one thread: sums split over several threads round differently, and the same seed must give
    the same file (and so the same SHA-256) however many cores the machine has.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _calibrate(model, tokenizer, seed)
    finally:
        torch.set_num_threads(threads)


def _calibrate(model: SurgVLP, tokenizer: PromptTokenizer, seed: int) -> None:
    images, sizes = rendered_frames(SCENE_SEED_OFFSET + seed)
    features = calibrate_batch_norm(model.backbone_img, images)
    mean, image_axes = whitened_axes(features, sizes, AXES)
    prompt_sets = [load_prompt_set(name) for name in builtin_prompt_sets()]
    with torch.no_grad():
        prompts = [model.encode_text(**tokenizer(prompt_set.all_prompts())).numpy() for prompt_set in prompt_sets]
    text_axes = leading_axes(torch.from_numpy(unit_rows(np.concatenate(prompts))), AXES)
    classes = [torch.from_numpy(prompt_set.class_embeddings(embeddings))
               for prompt_set, embeddings in zip(prompt_sets, prompts) if prompt_set.task == "phase"]
    generator = torch.Generator().manual_seed(seed)
    rotation = most_spreading_rotation((features - mean) @ image_axes.T, text_axes, classes, generator)
    weight = text_axes @ rotation @ image_axes
    projection = model.backbone_img.global_embedder
    with torch.no_grad():
        projection.weight.copy_(weight)
        projection.bias.copy_(-(weight @ mean))


def rendered_frames(scene_seed: int) -> tuple[Tensor, Tensor]:
    """Model input of one rendered frame a second, alternating between ``RENDER_SIZES``; and each one's size index."""
    from surgvlp.sample_data.render import CaseRenderer
    from surgvlp.sample_data.scenario import plan_scenario

    renderers = [CaseRenderer(plan_scenario(scene_seed, CALIBRATION_SECONDS, 1, *size)) for size in RENDER_SIZES]
    sizes = torch.arange(CALIBRATION_SECONDS) % len(RENDER_SIZES)
    images = [to_model_input([renderers[size].render(second)[0]]) for second, size in enumerate(sizes.tolist())]
    return torch.cat(images), sizes


def calibrate_batch_norm(encoder: ImageEncoder, images: Tensor) -> Tensor:
    """Give every BatchNorm layer the statistics of its input for ``images``; return their pooled features.

    In training mode each layer normalises with the batch's own statistics, so the next layer already sees
    calibrated input; a momentum of None makes the running statistics exactly that batch's.
    """
    norms = [module for module in encoder.modules() if isinstance(module, nn.BatchNorm2d)]
    momenta = [norm.momentum for norm in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None
    encoder.train()
    with torch.no_grad():
        features = encoder.feature_map(images).mean(dim=(2, 3))
    encoder.eval()
    for norm, momentum in zip(norms, momenta):
        norm.momentum = momentum
    return features.double()


def whitened_axes(features: Tensor, sizes: Tensor, count: int) -> tuple[Tensor, Tensor]:
    """The features' mean and ``count`` principal axes, each scaled by 1/its standard deviation, (count, F).

    ``sizes`` holds each frame's render-size index. Axes are taken within each render size, and the direction
    between the sizes' means is removed first.
    """
    group_means = torch.stack([features[sizes == size].mean(dim=0) for size in range(int(sizes.max()) + 1)])
    within = features - group_means[sizes]
    between, _ = torch.linalg.qr((group_means[1:] - group_means[:1]).T)
    within = within - (within @ between) @ between.T
    _, singular, axes = torch.linalg.svd(within, full_matrices=False)
    deviations = singular[:count] / math.sqrt(len(features) - 1)
    return features.mean(dim=0), axes[:count] / deviations[:, None]


def leading_axes(embeddings: Tensor, count: int) -> Tensor:
    """The ``count`` principal axes of centred ``embeddings``, as orthonormal columns, (D, count)."""
    _, _, axes = torch.linalg.svd(embeddings - embeddings.mean(dim=0), full_matrices=False)
    return axes[:count].T


def most_spreading_rotation(
    coordinates: Tensor, text_axes: Tensor, class_sets: list[Tensor], generator: torch.Generator
) -> Tensor:
    """Of ``ROTATIONS_TRIED`` random orthogonal (k, k) matrices, the one whose embeddings of the frames at
    ``coordinates`` (N, k) have the largest summed entropy of their argmax labels over ``class_sets``."""
    best, best_entropy = None, -math.inf
    for _ in range(ROTATIONS_TRIED):
        rotation, _ = torch.linalg.qr(torch.randn(coordinates.shape[1], coordinates.shape[1], generator=generator, dtype=torch.float64))
        embeddings = coordinates @ (text_axes @ rotation).T
        entropy = sum(_label_entropy((embeddings @ classes.T).argmax(dim=1), len(classes)) for classes in class_sets)
        if entropy > best_entropy:
            best, best_entropy = rotation, entropy
    return best


def _label_entropy(labels: Tensor, classes: int) -> float:
    shares = torch.bincount(labels, minlength=classes).double() / len(labels)
    shares = shares[shares > 0]
    return float(-(shares * shares.log()).sum())
