"""MixStyle (Zhou et al., ICLR 2021): feature-statistics mixing, a training-time regulariser.

In training, each image's per-channel feature mean and standard deviation (its "style") are
replaced by a mix of its own and those of another image of the batch, λ ~ Beta(α, α); the
normalised content is kept. A network trained on one rendering style then meets many, which
is what a recogniser of photos trained on renders needs (issue 18). Attached with forward
hooks, so backbones, their parameters and their checkpoints are unchanged, and inference
(eval mode) never mixes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class MixStyleConfig:
    p: float = 0.0  # probability per batch and layer; 0 = off
    alpha: float = 0.1  # Beta(alpha, alpha): small alpha mixes mostly a little or mostly a lot
    # Dotted module names whose outputs are mixed; the defaults are MobileFaceNet's stem and
    # its first two bottleneck groups (early layers carry style, later ones identity).
    layers: tuple[str, ...] = ("body.1", "body.6", "body.7")

    def __post_init__(self) -> None:
        if not 0.0 <= self.p <= 1.0:
            raise ValueError(f"mixstyle.p is a probability in [0, 1], got {self.p}")
        if self.alpha <= 0:
            raise ValueError(f"mixstyle.alpha must be > 0, got {self.alpha}")


def mix_styles(x: torch.Tensor, p: float, alpha: float, eps: float = 1e-6) -> torch.Tensor:
    """``x`` (N, C, H, W) with, at probability ``p``, every image's channel statistics mixed
    with those of a random other image of the batch."""
    n = x.shape[0]
    apply = (torch.rand((), device=x.device) < p).to(x.dtype)
    lam = torch.distributions.Beta(alpha, alpha).sample((n, 1, 1, 1)).to(x)
    # A random pairing as the argsort of uniform draws, gathered with index_select: inductor
    # (torch 2.13) fails to compile the backward of randperm-indexed statistics.
    perm = torch.rand(n, device=x.device).argsort()
    mean = x.mean((2, 3), keepdim=True)
    std = (x.var((2, 3), keepdim=True) + eps).sqrt()
    # The statistics are detached (as in the paper): the mix is a perturbation, not a path
    # for gradients to rewrite the other image's features.
    mean, std = mean.detach(), std.detach()
    content = (x - mean) / std
    other_std, other_mean = std.index_select(0, perm), mean.index_select(0, perm)
    mixed = content * (lam * std + (1 - lam) * other_std) + lam * mean + (1 - lam) * other_mean
    return apply * mixed + (1 - apply) * x


def attach_mixstyle(model: nn.Module, config: MixStyleConfig) -> list:
    """Mix the outputs of ``config.layers`` of ``model`` while it trains; returns the hook
    handles (``handle.remove()`` detaches). Unknown layer names are refused with the known ones."""
    if config.p == 0:
        return []
    modules = dict(model.named_modules())
    unknown = [name for name in config.layers if name not in modules]
    if unknown:
        known = ", ".join(name for name in modules if name.count(".") <= 1 and name)
        raise ValueError(f"mixstyle.layers: no module {', '.join(unknown)} in {type(model).__name__}; "
                         f"top-level modules: {known}")

    def hook(module: nn.Module, inputs, output: torch.Tensor) -> torch.Tensor:
        if not module.training or output.dim() != 4 or output.shape[0] < 2:
            return output
        return mix_styles(output, config.p, config.alpha)

    return [modules[name].register_forward_hook(hook) for name in config.layers]
