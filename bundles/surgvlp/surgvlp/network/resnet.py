"""The ResNet-50 trunk of the image encoder, in plain torch, with torchvision's parameter names.

Official checkpoints hold upstream's ``torchvision.models.resnet50`` under ``backbone_img.model.*``. Only its
layers are needed, and importing torchvision costs a second at every start (it imports ``torch._dynamo``), so
this module builds the same layers, under the same names, applied in the same order: the ``state_dict``
keys, shapes and outputs are torchvision's, bit for bit (``tests/test_resnet.py`` compares them).
This is torchvision's ResNet-50 "v1.5" (the stride of a downsampling block is on its 3 x 3 convolution),
without the average pool and the classifier that upstream replaces by an identity.
"""

from __future__ import annotations

from torch import Tensor, nn

STAGES = ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2))
"""Width of each stage's 3 x 3 convolutions, its number of blocks, and the stride of its first block."""

EXPANSION = 4
"""A bottleneck block's output has this many times the channels of its 3 x 3 convolution."""


class Bottleneck(nn.Module):
    """1 x 1 reduce, 3 x 3, 1 x 1 expand, each followed by BatchNorm; the input added back before the last ReLU."""

    def __init__(self, in_channels: int, width: int, stride: int) -> None:
        super().__init__()
        out_channels = width * EXPANSION
        self.conv1 = nn.Conv2d(in_channels, width, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_channels, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        out += x if self.downsample is None else self.downsample(x)
        return self.relu(out)


class ResNet50(nn.Module):
    """The stem (7 x 7 convolution, BatchNorm, ReLU, max pool) and four stages: (N, 3, H, W) -> (N, 2048, H/32, W/32)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        channels = 64
        for number, (width, blocks, stride) in enumerate(STAGES, start=1):
            stage = []
            for block in range(blocks):
                stage.append(Bottleneck(channels, width, stride if block == 0 else 1))
                channels = width * EXPANSION
            self.add_module(f"layer{number}", nn.Sequential(*stage))
        self.out_channels = channels

    def forward(self, images: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(images))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


def initialise_like_torchvision(resnet: ResNet50) -> None:
    """Draw the convolutions' random weights as torchvision does (He-normal, fan out), for random-weight models.

    Not in the constructor: a network about to receive a checkpoint's weights needs no initial values, and
    drawing normal values on the meta device, where such a network is built, imports ``torch._dynamo`` (a second).
    """
    for module in resnet.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
