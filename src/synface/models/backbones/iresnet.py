"""Improved ResNets of ArcFace (Deng et al. 2019), sized for any crop.

LResNet50E-IR is the ArcFace paper's name for this family at 50 layers: "L" a stride-1 3x3
input convolution (keeps 112 px resolution), "E" the BN-Dropout-FC-BN embedding output, "IR"
the BN-Conv-BN-PReLU-Conv-BN residual unit. The final feature map is 7x7 at 112x112 and 7x6
at 112x96; unlike insightface's code, the FC layer is sized from the actual input.
"""

from __future__ import annotations

import torch
from torch import nn

from synface.models.backbones.common import downsampled

DEPTHS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 14, 3), 100: (3, 13, 30, 3)}
WIDTHS = (64, 128, 256, 512)


class IBasicBlock(nn.Module):
    """BN-Conv-BN-PReLU-Conv-BN with the stride on the second convolution."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes, eps=1e-5)
        self.conv1 = nn.Conv2d(inplanes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes, eps=1e-5)
        self.prelu = nn.PReLU(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes, eps=1e-5)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes, eps=1e-5)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        identity = x if self.downsample is None else self.downsample(x)
        return out + identity


class IResNet(nn.Module):
    def __init__(
        self,
        depth: int,
        input_size: tuple[int, int] = (112, 112),
        embedding_size: int = 512,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if depth not in DEPTHS:
            raise ValueError(f"iresnet depth must be one of {sorted(DEPTHS)}, got {depth}")
        self.input_size = tuple(input_size)
        self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64, eps=1e-5)
        self.prelu = nn.PReLU(64)
        stages, inplanes = [], 64
        for planes, blocks in zip(WIDTHS, DEPTHS[depth]):
            layers = [IBasicBlock(inplanes, planes, stride=2)]
            layers += [IBasicBlock(planes, planes) for _ in range(blocks - 1)]
            stages.append(nn.Sequential(*layers))
            inplanes = planes
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        fh, fw = downsampled(self.input_size, 4)
        self.bn2 = nn.BatchNorm2d(512, eps=1e-5)
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(512 * fh * fw, embedding_size)
        self.features = nn.BatchNorm1d(embedding_size, eps=1e-5)
        # ArcFace fixes the scale of the embedding BN: only its shift is learnt.
        nn.init.constant_(self.features.weight, 1.0)
        self.features.weight.requires_grad = False
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
        # Each residual branch starts as zero (Goyal et al. 2017): deep nets train from step one
        # as if shallow, and an untrained net in eval mode does not overflow through 48 blocks.
        for m in self.modules():
            if isinstance(m, IBasicBlock):
                nn.init.constant_(m.bn3.weight, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.prelu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.dropout(self.bn2(x).flatten(1))
        return self.features(self.fc(x))
