"""CIFAR-style residual networks: a 3x3 stem, no max-pool, global average pooling.

ImageNet ResNets start with a 7x7 stride-2 convolution and a max-pool, which
would shrink a 32x32 image to 8x8 before the first block.  On small images the
stem is a single 3x3 convolution at full resolution instead, and the four
stages downsample by strided convolutions (32 -> 32 -> 16 -> 8 -> 4).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from . import validate


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """A 3x3 convolution that keeps the spatial size (or divides it by ``stride``); no bias (BN follows)."""
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions and a shortcut: ``relu(F(x) + shortcut(x))``.

    The shortcut is the identity when shapes agree.  When the block downsamples
    (``stride`` 2) or widens, a 1x1 strided convolution with batch norm
    projects ``x`` to the new shape so that the sum is defined.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = conv3x3(in_channels, out_channels, stride)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = conv3x3(out_channels, out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """A CIFAR-style ResNet of :class:`BasicBlock` stages.

    ``blocks`` gives the number of blocks in each of the four stages (2, 2, 2, 2
    for ResNet-18; 3, 4, 6, 3 for ResNet-34).  Stage ``i`` has ``width * 2**i``
    channels; stages 2-4 halve the resolution in their first block.  Global
    average pooling then makes the classifier independent of the input size.
    """

    def __init__(
        self,
        blocks: tuple[int, int, int, int],
        num_classes: int = 10,
        in_channels: int = 3,
        width: int = 64,
    ):
        super().__init__()
        self.conv1 = conv3x3(in_channels, width)
        self.bn1 = nn.BatchNorm2d(width)
        stages = []
        channels = width
        for i, count in enumerate(blocks):
            out_channels = width * 2**i
            stride = 1 if i == 0 else 2
            layers = [BasicBlock(channels, out_channels, stride)]
            layers += [BasicBlock(out_channels, out_channels) for _ in range(count - 1)]
            stages.append(nn.Sequential(*layers))
            channels = out_channels
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled feature vector the classifier sees."""
        x = torch.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.pool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))

    def blocks(self) -> list[tuple[str, nn.Module]]:
        """The network as consecutive blocks, input to output: the stem, each residual block, the classifier."""
        parts: list[tuple[str, nn.Module]] = [("stem", nn.ModuleList([self.conv1, self.bn1]))]
        for stage in ("layer1", "layer2", "layer3", "layer4"):
            parts += [(f"{stage}.{i}", block) for i, block in enumerate(getattr(self, stage))]
        return parts + [("fc", self.fc)]


class ResNet9(nn.Module):
    """The fast 9-layer residual network of the DAWNBench CIFAR-10 entries, with strided convolutions.

    Stem (width), then three stages of one downsampling 3x3 convolution each
    (2w, 4w, 8w channels); the first and last stage add a residual block of two
    convolutions.  With the linear classifier that makes 9 weight layers.  The
    original downsamples by max-pooling; here a stride-2 convolution does it.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 3, width: int = 64):
        super().__init__()

        def conv_bn(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
            return nn.Sequential(conv3x3(c_in, c_out, stride), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))

        self.conv1 = conv_bn(in_channels, width)
        self.layer1 = nn.Sequential(conv_bn(width, 2 * width, 2), BasicBlock(2 * width, 2 * width))
        self.layer2 = conv_bn(2 * width, 4 * width, 2)
        self.layer3 = nn.Sequential(conv_bn(4 * width, 8 * width, 2), BasicBlock(8 * width, 8 * width))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8 * width, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled feature vector the classifier sees."""
        x = self.layer3(self.layer2(self.layer1(self.conv1(x))))
        return torch.flatten(self.pool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))

    def blocks(self) -> list[tuple[str, nn.Module]]:
        """The network as consecutive blocks, input to output: the stem, each convolution or residual block, fc."""
        return [
            ("stem", self.conv1),
            ("layer1.0", self.layer1[0]),
            ("layer1.1", self.layer1[1]),
            ("layer2", self.layer2),
            ("layer3.0", self.layer3[0]),
            ("layer3.1", self.layer3[1]),
            ("fc", self.fc),
        ]


ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    "resnet9": ResNet9,
    "resnet18": lambda **kw: ResNet((2, 2, 2, 2), **kw),
    "resnet34": lambda **kw: ResNet((3, 4, 6, 3), **kw),
}


def build_model(
    arch: str,
    *,
    num_classes: int,
    in_channels: int,
    width: int = 64,
    seed: int | None = None,
) -> nn.Module:
    """A freshly initialised network ``arch``; with ``seed``, its initial weights are fixed by it."""
    if not isinstance(arch, str) or arch not in ARCHITECTURES:
        raise ValueError(f"unknown model {arch!r}; choose one of {', '.join(ARCHITECTURES)}")
    validate.check_counts(num_classes=num_classes, in_channels=in_channels, width=width)
    if seed is not None:
        validate.seed("seed", seed)
    if seed is None:
        return ARCHITECTURES[arch](num_classes=num_classes, in_channels=in_channels, width=width)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return ARCHITECTURES[arch](num_classes=num_classes, in_channels=in_channels, width=width)


def blocks(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``model`` as named consecutive blocks, input to output: the unit in which "the last k layers" are counted.

    The course's ResNets list their stem, residual blocks and classifier; any
    other network, its top-level children that hold parameters.
    """
    if hasattr(model, "blocks"):
        return model.blocks()
    return [(name, child) for name, child in model.named_children() if any(True for _ in child.parameters())]


def count_parameters(model: nn.Module) -> int:
    """The number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
