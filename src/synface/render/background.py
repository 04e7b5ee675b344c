"""Procedural backgrounds: varied textures, not flat colours, from 8 numbers per image.

params in [0, 1): two colours (0-5), a pattern mix (6) and a spatial frequency (7). The
pattern blends a tilted gradient, soft blobs and stripes, so a recogniser cannot use the
background as a shortcut and the face edge meets varied surroundings, as in real photos.
"""

from __future__ import annotations

import math

import torch


def procedural_backgrounds(params: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, 8) -> (B, H, W, 3) float in [0, 1]."""
    h, w = size
    p = params.float()
    ys = torch.linspace(-1.0, 1.0, h)[None, :, None]
    xs = torch.linspace(-1.0, 1.0, w)[None, None, :]
    c1 = 0.1 + 0.8 * p[:, 0:3]
    c2 = 0.1 + 0.8 * p[:, 3:6]
    angle = (p[:, 6] * 2 * math.pi)[:, None, None]
    freq = (1.0 + 6.0 * p[:, 7])[:, None, None]
    u = xs * torch.cos(angle) + ys * torch.sin(angle)
    v = -xs * torch.sin(angle) + ys * torch.cos(angle)
    gradient = 0.5 + 0.5 * u
    blobs = 0.5 + 0.25 * (torch.sin(freq * 2.1 * u + 3 * p[:, 0, None, None]) + torch.sin(freq * 1.7 * v + 5 * p[:, 1, None, None]))
    stripes = 0.5 + 0.5 * torch.sin(freq * 4.0 * u)
    kind = p[:, 7, None, None]
    mix = torch.where(kind < 0.4, gradient, torch.where(kind < 0.75, blobs, 0.6 * gradient + 0.4 * stripes))
    return (c1[:, None, None, :] * mix[..., None] + c2[:, None, None, :] * (1 - mix[..., None])).clamp(0, 1)
