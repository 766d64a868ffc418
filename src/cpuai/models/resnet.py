"""ResNet family for CPU training: ``resnet8`` for small images and ``resnet18`` (the ImageNet layout).

Both end in a linear classifier named ``head`` so transfer learning (``--from``) can replace it.
``resnet18`` keeps the standard 7x7-stride-2 stem and max-pool by default, which works at 224x224
and, thanks to global pooling, at 32x32 too; ``stem="small"`` swaps in a 3x3 stem that keeps
small images' detail.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

Stem = Literal["imagenet", "small"]


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity (or 1x1 projection) shortcut."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample: nn.Module | None = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """A ResNet of ``BasicBlock`` stages; ``blocks[i]`` blocks at width ``widths[i]``."""

    def __init__(
        self,
        blocks: tuple[int, ...],
        widths: tuple[int, ...],
        *,
        num_classes: int = 10,
        in_channels: int = 3,
        stem: Stem = "imagenet",
    ) -> None:
        super().__init__()
        w0 = widths[0]
        if stem == "imagenet":
            self.stem = nn.Sequential(
                nn.Conv2d(in_channels, w0, 7, stride=2, padding=3, bias=False),
                nn.BatchNorm2d(w0),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(3, stride=2, padding=1),
            )
        else:
            self.stem = nn.Sequential(
                nn.Conv2d(in_channels, w0, 3, padding=1, bias=False),
                nn.BatchNorm2d(w0),
                nn.ReLU(inplace=True),
            )
        stages: list[nn.Module] = []
        cin = w0
        for i, (n, w) in enumerate(zip(blocks, widths, strict=True)):
            layers = [BasicBlock(cin, w, stride=1 if i == 0 else 2)]
            layers += [BasicBlock(w, w) for _ in range(n - 1)]
            stages.append(nn.Sequential(*layers))
            cin = w
        self.stages = nn.Sequential(*stages)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(cin, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.stages(self.stem(x))))


def resnet8(num_classes: int = 10, in_channels: int = 3, width: int = 16) -> ResNet:
    """A three-stage ResNet-8 (CIFAR style, 3x3 stem) for small images such as digits at 32x32."""
    return ResNet(
        (1, 1, 1),
        (width, 2 * width, 4 * width),
        num_classes=num_classes,
        in_channels=in_channels,
        stem="small",
    )


def resnet18(
    num_classes: int = 1000, in_channels: int = 3, width: int = 64, stem: Stem = "imagenet"
) -> ResNet:
    """ResNet-18 (2-2-2-2 basic blocks, widths 64-512); runs at 224x224 and at 32x32."""
    widths = (width, 2 * width, 4 * width, 8 * width)
    return ResNet((2, 2, 2, 2), widths, num_classes=num_classes, in_channels=in_channels, stem=stem)
