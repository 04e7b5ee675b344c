"""Backbone factory: ``get_backbone("iresnet50", (112, 96))``."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from torch import nn

from synface.faces.templates import parse_size
from synface.models.backbones.iresnet import IResNet
from synface.models.backbones.mobilefacenet import MobileFaceNet

BACKBONES: dict[str, Callable[..., nn.Module]] = {
    # The ArcFace paper's LResNet50E-IR: iresnet50 with the E block's dropout (0.4 in ArcFace).
    "lresnet50e_ir": partial(IResNet, 50, dropout=0.4),
    "iresnet18": partial(IResNet, 18),
    "iresnet34": partial(IResNet, 34),
    "iresnet50": partial(IResNet, 50),
    "iresnet100": partial(IResNet, 100),
    "mobilefacenet": MobileFaceNet,
}


def get_backbone(
    name: str, input_size: str | tuple[int, int] = (112, 96), embedding_size: int = 512
) -> nn.Module:
    """Build a backbone by name for crops of ``input_size`` = (height, width)."""
    try:
        factory = BACKBONES[name]
    except KeyError:
        raise ValueError(f"unknown backbone {name!r}; choose one of {', '.join(sorted(BACKBONES))}") from None
    return factory(input_size=parse_size(input_size), embedding_size=embedding_size)
