"""MobileFaceNet (Chen et al. 2018): a 1M-parameter face embedder for CPUs and phones.

Layout of the paper's Table 1 with a 512-d output; the global depthwise convolution (GDC)
takes the whole final feature map, whose size follows from the input (7x7 at 112x112, 7x6 at
112x96, 4x3 at 56x48).
"""

from __future__ import annotations

import torch
from torch import nn

from synface.models.backbones.common import BatchNorm2d, DepthwiseConv2d, PReLU, downsampled

# (expansion t, output channels c, repeats n, first stride s), the paper's Table 1.
BOTTLENECKS = ((2, 64, 5, 2), (4, 128, 1, 2), (2, 128, 6, 1), (4, 128, 1, 2), (2, 128, 2, 1))


def conv_bn(cin: int, cout: int, kernel: int | tuple[int, int], stride: int = 1, groups: int = 1, act: bool = True):
    padding = (kernel // 2) if isinstance(kernel, int) else 0
    conv = DepthwiseConv2d if groups > 1 else nn.Conv2d
    layers: list[nn.Module] = [
        conv(cin, cout, kernel, stride, padding, groups=groups, bias=False),
        BatchNorm2d(cout),
    ]
    if act:
        layers.append(PReLU(cout))
    return nn.Sequential(*layers)


class Bottleneck(nn.Module):
    """Inverted residual: 1x1 expand, 3x3 depthwise, linear 1x1 project."""

    def __init__(self, cin: int, cout: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = cin * expansion
        self.block = nn.Sequential(
            conv_bn(cin, hidden, 1),
            conv_bn(hidden, hidden, 3, stride, groups=hidden),
            conv_bn(hidden, cout, 1, act=False),
        )
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        return x + out if self.residual else out


class MobileFaceNet(nn.Module):
    def __init__(self, input_size: tuple[int, int] = (112, 112), embedding_size: int = 512) -> None:
        super().__init__()
        self.input_size = tuple(input_size)
        layers: list[nn.Module] = [conv_bn(3, 64, 3, 2), conv_bn(64, 64, 3, 1, groups=64)]
        cin = 64
        for t, c, n, s in BOTTLENECKS:
            for i in range(n):
                layers.append(Bottleneck(cin, c, s if i == 0 else 1, t))
                cin = c
        layers.append(conv_bn(cin, 512, 1))
        self.body = nn.Sequential(*layers)
        fh, fw = downsampled(self.input_size, 4)
        self.gdc = conv_bn(512, 512, (fh, fw), groups=512, act=False)
        self.linear = nn.Conv2d(512, embedding_size, 1, bias=False)
        self.features = nn.BatchNorm1d(embedding_size)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.linear(self.gdc(self.body(x)))
        return self.features(x.flatten(1))
