"""Batch augmentation on the training device (kornia), switchable per transform.

Runs on float batches in [0, 1] before the [-1, 1] normalisation. Random draws come from a
generator seeded per (run seed, step, chunk), so a batch is augmented the same way whatever
the number of processes, and a resumed run repeats the draws of an uninterrupted one.
"""

from __future__ import annotations

import torch
from torch import nn

from synface.imageio import LUMA_WEIGHTS
from synface.train.config import AugmentConfig


class RandomDownscale(nn.Module):
    """With probability ``p`` per image: area-downsample by a factor drawn from ``scale``,
    then bilinear back to the input size (a low-resolution photo brought up to the crop)."""

    def __init__(self, scale: tuple[float, float], p: float) -> None:
        super().__init__()
        self.scale, self.p = scale, p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        chosen = torch.rand(n) < self.p
        factors = torch.empty(n).uniform_(*self.scale)
        out = x.clone()
        for i in torch.nonzero(chosen).flatten().tolist():
            size = (max(2, round(h * float(factors[i]))), max(2, round(w * float(factors[i]))))
            small = nn.functional.interpolate(x[i : i + 1], size=size, mode="area")
            out[i : i + 1] = nn.functional.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)
        return out


class RandomConvolution(nn.Module):
    """With probability ``p`` per image: filter it with a random ``k`` x ``k`` convolution
    that mixes the three channels (``k`` drawn per batch from ``kernel_sizes``, weights
    N(0, 1 / (3 k^2)) per image), bring the result to the image's own mean and standard
    deviation, and blend it with the image by a weight drawn from U(0, 1).

    RandConv (Xu et al., ICLR 2021): random local texture and colour filters that keep the
    shapes, so a network cannot lean on a rendering's surface statistics; the rescaling keeps
    the output inside the [0, 1] range instead of clipping most of it away."""

    def __init__(self, kernel_sizes: tuple[int, ...], p: float) -> None:
        super().__init__()
        self.kernel_sizes, self.p = tuple(kernel_sizes), p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        chosen = torch.nonzero(torch.rand(n) < self.p).flatten()
        k = self.kernel_sizes[int(torch.randint(len(self.kernel_sizes), ()))]
        # Drawn on the CPU whatever the device, so a seed gives the same filters everywhere.
        weight = torch.randn(len(chosen) * c, c, k, k) / (c * k * k) ** 0.5
        alpha = torch.rand(len(chosen), 1, 1, 1)
        if len(chosen) == 0:
            return x
        index, alpha = chosen.to(x.device), alpha.to(x)
        images = x[index]
        padded = nn.functional.pad(images.reshape(1, -1, h, w), (k // 2,) * 4, mode="reflect")
        filtered = nn.functional.conv2d(padded, weight.to(x), groups=len(chosen)).reshape(images.shape)
        dims = (1, 2, 3)
        filtered = (filtered - filtered.mean(dims, keepdim=True)) / (filtered.std(dims, keepdim=True) + 1e-6)
        filtered = filtered * images.std(dims, keepdim=True) + images.mean(dims, keepdim=True)
        out = x.clone()
        out[index] = alpha * images + (1 - alpha) * filtered
        return out


class RandomDetailBoost(nn.Module):
    """With probability ``p`` per image: unsharp masking, x + a (x - blur_sigma(x)), with a
    from ``amount`` and sigma (pixels of the network input) from ``sigma``, drawn per image.

    Renders are flatter than photos inside the face: eyes, brows, nostrils and lips have
    less local contrast (luminance band energy at 1-4 px of a 112x96 crop about a quarter
    below celeba-299 photos'; benchmarks/crop_statistics.py). At the config's default ranges
    (sigma 0.7-2 px of a 56x48 input, a 0.3-0.8) it brings the renders' four bands to within
    about 7 % of the photos'."""

    def __init__(self, sigma: tuple[float, float], amount: tuple[float, float], p: float) -> None:
        super().__init__()
        self.sigma, self.amount, self.p = sigma, amount, p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from kornia.filters import gaussian_blur2d

        n = len(x)
        chosen = torch.nonzero(torch.rand(n) < self.p).flatten()
        sigmas = torch.empty(n).uniform_(*self.sigma)
        amounts = torch.empty(n).uniform_(*self.amount)
        out = x.clone()
        for i in chosen.tolist():
            s = float(sigmas[i])
            k = 2 * int(3 * s + 0.5) + 1
            image = x[i : i + 1]
            blurred = gaussian_blur2d(image, (k, k), (s, s), border_type="reflect")
            out[i : i + 1] = image + float(amounts[i]) * (image - blurred)
        return out


class RandomDesaturate(nn.Module):
    """With probability ``p`` per image: move every pixel towards its own grey by a factor
    drawn from ``factor`` per image, c' = Y + f (c - Y) with Y the Rec. 601 luma, so the
    saturation (max - min channel) scales by f exactly and the luma is kept.

    Renders are more saturated inside the face than photos (0.32 against celeba-299's 0.26,
    benchmarks/crop_statistics.py): the config's default range (0.7-0.95) centres on that
    ratio, 0.81, set from celeba-299."""

    def __init__(self, factor: tuple[float, float], p: float) -> None:
        super().__init__()
        self.factor, self.p = factor, p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = len(x)
        chosen = torch.rand(n) < self.p
        factors = torch.empty(n).uniform_(*self.factor).to(x)[:, None, None, None]
        grey = (x * torch.tensor(LUMA_WEIGHTS).to(x)[None, :, None, None]).sum(1, keepdim=True)
        return torch.where(chosen.to(x.device)[:, None, None, None], grey + factors * (x - grey), x)


class InnerFaceOnly(nn.Module):
    """With probability ``p`` per image: everything outside the inner face of the alignment
    template (faces/templates.py: inner_face_mask; hair, ears, neck, background) becomes one
    random flat colour, so a network cannot lean on what surrounds the face, and an A/B can
    measure how much of what a training set teaches lies there."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from synface.faces.templates import inner_face_mask

        n, c, h, w = x.shape
        chosen = (torch.rand(n) < self.p).to(x.device)
        fill = torch.rand(n, c, 1, 1).to(x)
        outside = torch.from_numpy(~inner_face_mask((h, w))).to(x.device)
        return torch.where(chosen[:, None, None, None] & outside, fill, x)


def build_augmentation(config: AugmentConfig) -> nn.Module | None:
    """The enabled transforms in a fixed order: geometry, colour, resolution and blur,
    compression, noise, occlusion, grayscale, random convolution, detail boost, desaturation, inner face only
    (the order of the original four is kept, so their draws do not change when the new families are off)."""
    import kornia.augmentation as K

    parts: list[nn.Module] = []
    if config.affine > 0:
        shift = config.affine_shift
        parts.append(K.RandomAffine(degrees=config.affine_degrees, translate=(shift, shift), scale=config.affine_scale,
                                    padding_mode="border", p=config.affine))
    if config.flip > 0:
        parts.append(K.RandomHorizontalFlip(p=config.flip))
    if config.color_jitter > 0:
        s = config.jitter_strength
        parts.append(K.ColorJitter(brightness=s, contrast=s, saturation=s, hue=0.0, p=config.color_jitter))
    if config.gamma > 0:
        parts.append(K.RandomGamma(gamma=config.gamma_range, p=config.gamma))
    if config.white_balance > 0:
        parts.append(K.RandomPlanckianJitter(mode="blackbody", p=config.white_balance))
    if config.downscale > 0:
        parts.append(RandomDownscale(config.downscale_range, config.downscale))
    if config.gaussian_blur > 0:
        parts.append(K.RandomGaussianBlur(kernel_size=(5, 5), sigma=config.blur_sigma, p=config.gaussian_blur))
    if config.motion_blur > 0:
        parts.append(K.RandomMotionBlur(kernel_size=config.blur_kernel, angle=180.0, direction=(-1.0, 1.0),
                                        p=config.motion_blur))
    if config.jpeg > 0:
        parts.append(K.RandomJPEG(jpeg_quality=config.jpeg_quality, p=config.jpeg))
    if config.noise > 0:
        parts.append(K.RandomGaussianNoise(std=config.noise_std, p=config.noise))
    if config.erasing > 0:
        parts.append(K.RandomErasing(scale=config.erasing_scale, p=config.erasing))
    if config.grayscale > 0:
        parts.append(K.RandomGrayscale(p=config.grayscale))
    if config.random_conv > 0:
        parts.append(RandomConvolution(config.random_conv_kernels, config.random_conv))
    if config.detail_boost > 0:
        parts.append(RandomDetailBoost(config.detail_sigma, config.detail_amount, config.detail_boost))
    if config.desaturate > 0:
        parts.append(RandomDesaturate(config.desaturate_factor, config.desaturate))
    if config.inner_face_only > 0:
        parts.append(InnerFaceOnly(config.inner_face_only))
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
