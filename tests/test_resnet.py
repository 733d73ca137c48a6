"""The plain ResNet-50 trunk is torchvision's: the same state_dict layout and, on the same weights, the same bits.

torchvision itself is the reference here (the package no longer imports it to build the network).
"""

from __future__ import annotations

import pytest
import torch
from torchvision.models import resnet50

from surgvlp.network.model import ImageEncoder
from surgvlp.network.resnet import ResNet50, initialise_like_torchvision

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def reference() -> torch.nn.Module:
    """Upstream's trunk: torchvision's ResNet-50 with ``fc`` replaced by an identity, with random weights and
    BatchNorm statistics that are not the identity, so that every layer shows in the output."""
    torch.manual_seed(0)
    network = resnet50(weights=None)
    network.fc = torch.nn.Identity()
    with torch.no_grad():
        for module in network.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.1, 0.1)
    return network.eval()


def test_the_state_dict_layout_is_torchvision_s(reference):
    ours = ResNet50().state_dict()
    theirs = reference.state_dict()
    assert list(ours) == list(theirs)
    assert all(ours[key].shape == theirs[key].shape and ours[key].dtype == theirs[key].dtype for key in ours)


def test_on_the_same_weights_the_outputs_are_bit_identical(reference):
    ours = ResNet50()
    ours.load_state_dict(reference.state_dict(), strict=True)
    ours.eval()
    images = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    trunk = torch.nn.Sequential(*list(reference.children())[:-2])  # up to layer4, before the pool and fc
    with torch.inference_mode():
        assert torch.equal(ours(images), trunk(images))
        encoder = ImageEncoder()
        encoder.model.load_state_dict(reference.state_dict(), strict=True)
        encoder.eval()
        # upstream pools with torchvision's AdaptiveAvgPool2d and flattens, then projects
        assert torch.equal(encoder(images), encoder.global_embedder(reference(images)))


def test_random_weights_are_drawn_as_torchvision_draws_them(reference):
    """The untrained models keep torchvision's initial distribution (He-normal, fan out) for their convolutions."""
    torch.manual_seed(0)
    ours = ResNet50()
    initialise_like_torchvision(ours)
    fresh = resnet50(weights=None).state_dict()
    for key, value in ours.state_dict().items():
        if value.ndim == 4 and value.numel() > 10_000:
            torch.testing.assert_close(value.std(), fresh[key].std(), rtol=0.05, atol=0)
