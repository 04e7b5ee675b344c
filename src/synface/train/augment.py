"""Batch augmentation on the training device (kornia), switchable per transform.

Runs on float batches in [0, 1] before the [-1, 1] normalisation. Random draws come from a
generator seeded per (run seed, step, chunk), so a batch is augmented the same way whatever
the number of processes, and a resumed run repeats the draws of an uninterrupted one.
"""

from __future__ import annotations

import torch
from torch import nn

from synface.train.config import AugmentConfig


def build_augmentation(config: AugmentConfig) -> nn.Module | None:
    import kornia.augmentation as K

    parts: list[nn.Module] = []
    if config.flip > 0:
        parts.append(K.RandomHorizontalFlip(p=config.flip))
    if config.color_jitter > 0:
        s = config.jitter_strength
        parts.append(K.ColorJitter(brightness=s, contrast=s, saturation=s, hue=0.0, p=config.color_jitter))
    if config.motion_blur > 0:
        parts.append(K.RandomMotionBlur(kernel_size=config.blur_kernel, angle=180.0, direction=(-1.0, 1.0),
                                        p=config.motion_blur))
    if config.grayscale > 0:
        parts.append(K.RandomGrayscale(p=config.grayscale))
    return K.AugmentationSequential(*parts) if parts else None


def augment(module: nn.Module | None, images: torch.Tensor, seed: int) -> torch.Tensor:
    """Apply ``module`` to float images in [0, 1] with the global RNG forked and seeded."""
    if module is None:
        return images
    devices = [images.device] if images.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        out = module(images)
    return out.clamp_(0.0, 1.0)
