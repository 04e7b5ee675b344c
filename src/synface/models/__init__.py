"""Recognition networks: backbones (embedding extractors); margin heads come with training."""

from synface.models.backbones import BACKBONES, get_backbone

__all__ = ["BACKBONES", "get_backbone"]
