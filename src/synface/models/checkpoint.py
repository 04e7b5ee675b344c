"""Backbone checkpoints: weights plus what it takes to rebuild the network."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from synface.errors import DataNotFoundError, SynfaceError
from synface.models.backbones import get_backbone


def backbone_spec(name: str, input_size: tuple[int, int], embedding_size: int = 512) -> dict:
    return {"name": name, "input_size": list(input_size), "embedding_size": embedding_size}


def save_backbone(path: str | Path, model: nn.Module, spec: dict, **extra) -> None:
    """Save ``{"backbone": spec, "model": state_dict, **extra}`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save({"backbone": spec, "model": model.state_dict(), **extra}, tmp)
    tmp.replace(path)


def load_backbone(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild the backbone a checkpoint describes and load its weights."""
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file
        raise SynfaceError(f"cannot read checkpoint {path}: {exc}") from exc
    if not isinstance(state, dict) or "backbone" not in state or "model" not in state:
        raise SynfaceError(f"{path} is not a synface checkpoint (needs 'backbone' and 'model' entries)")
    spec = state["backbone"]
    model = get_backbone(spec["name"], tuple(spec["input_size"]), spec.get("embedding_size", 512))
    model.load_state_dict(state["model"])
    return model.to(device).eval(), spec
