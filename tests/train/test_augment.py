"""Batch augmentation: every family does what it says, is off unless asked for, and is a
function of (batch, seed) alone."""

import pytest
import torch

from synface.config import ConfigError, from_dict
from synface.train.augment import RandomConvolution, RandomDownscale, augment, build_augmentation
from synface.train.config import AugmentConfig

FAMILIES = ("affine", "gamma", "white_balance", "downscale", "gaussian_blur", "jpeg", "noise", "erasing", "random_conv",
            "inner_face_only", "detail_boost", "desaturate")


def faces(n: int = 8) -> torch.Tensor:
    """Smooth images with edges (not white noise: blur and JPEG must have something to lose)."""
    g = torch.Generator().manual_seed(0)
    y, x = torch.meshgrid(torch.linspace(0, 1, 56), torch.linspace(0, 1, 48), indexing="ij")
    base = torch.stack([(x > 0.5).float(), y, 0.5 + 0.4 * torch.sin(12 * x)], 0)
    return (0.8 * base[None] + 0.2 * torch.rand(n, 3, 56, 48, generator=g)).clamp(0, 1)


def only(family: str, **extra) -> AugmentConfig:
    return AugmentConfig(flip=0.0, **{family: 1.0}, **extra)


@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_changes_images_and_is_seeded(family):
    module = build_augmentation(only(family))
    x = faces()
    a, b, c = augment(module, x.clone(), 7), augment(module, x.clone(), 7), augment(module, x.clone(), 8)
    assert a.shape == x.shape and a.min() >= 0 and a.max() <= 1
    assert torch.equal(a, b), "same seed, same bytes"
    assert not torch.equal(a, x), f"{family} at p=1 left the batch unchanged"
    assert not torch.equal(a, c), "another seed draws other parameters"


def test_resolution_loss_removes_detail():
    x = faces()

    def detail(t):  # energy of horizontal pixel differences
        return float((t[..., 1:] - t[..., :-1]).pow(2).mean())

    for family in ("downscale", "gaussian_blur"):
        assert detail(augment(build_augmentation(only(family)), x.clone(), 0)) < 0.7 * detail(x)


def test_downscale_at_full_scale_is_the_identity_and_respects_p():
    x = faces(4)
    torch.testing.assert_close(RandomDownscale((1.0, 1.0), p=1.0)(x), x)
    assert torch.equal(RandomDownscale((0.3, 0.5), p=0.0)(x), x)


def test_random_convolution_keeps_each_images_level_and_respects_p():
    x = faces(6)
    torch.manual_seed(0)
    out = RandomConvolution((3, 5), p=1.0)(x)
    # Filtered and rescaled to the image's own mean and spread, then blended with it.
    torch.testing.assert_close(out.mean((1, 2, 3)), x.mean((1, 2, 3)), atol=1e-5, rtol=0)
    assert (out - x).abs().amax((1, 2, 3)).min() > 0.01, "every image was filtered"
    assert torch.equal(RandomConvolution((3,), p=0.0)(x), x)


def test_random_convolution_of_size_one_only_remixes_colours():
    """k = 1 mixes each pixel's channels and no neighbours: a flat image stays flat."""
    flat = torch.full((2, 3, 56, 48), 0.2) + torch.tensor([0.0, 0.3, 0.5]).view(1, 3, 1, 1)
    flat[:, :, :, 24:] += 0.2  # and two flat halves stay two flat halves
    torch.manual_seed(3)
    out = RandomConvolution((1,), p=1.0)(flat)
    for half in (out[..., :24], out[..., 24:]):
        assert float(half.std((2, 3)).max()) < 1e-5


def test_new_families_are_off_by_default():
    default = AugmentConfig()
    assert all(getattr(default, f) == 0.0 for f in FAMILIES)
    assert len(build_augmentation(default)) == 1  # the flip alone
    assert build_augmentation(AugmentConfig(flip=0.0)) is None


def test_bad_augmentation_values_name_their_key():
    with pytest.raises(ConfigError, match=r"augment\.jpeg is a probability"):
        from_dict(AugmentConfig, {"jpeg": 1.5}, "augment")
    with pytest.raises(ConfigError, match="downscale_range"):
        from_dict(AugmentConfig, {"downscale_range": [0.9, 0.3]}, "augment")
    with pytest.raises(ConfigError, match="random_conv_kernels"):
        from_dict(AugmentConfig, {"random_conv_kernels": [3, 4]}, "augment")


def test_inner_face_only_keeps_the_inner_face_and_paints_the_rest_one_colour_per_image():
    from synface.faces.templates import inner_face_mask
    from synface.train.augment import InnerFaceOnly

    x = faces(6)
    out = augment(InnerFaceOnly(1.0), x.clone(), 3)
    inside = torch.from_numpy(inner_face_mask((56, 48)))
    assert torch.equal(out[:, :, inside], x[:, :, inside]), "the inner face is left as it was"
    outside = out[:, :, ~inside]
    assert torch.equal(outside, outside[:, :, :1].expand_as(outside)), "one flat colour outside"
    assert not torch.equal(outside[0, :, 0], outside[1, :, 0]), "a colour of its own per image"
    assert torch.equal(augment(InnerFaceOnly(0.0), x.clone(), 3), x)


def test_the_inner_face_holds_the_five_template_points_and_not_the_crop_corners():
    from synface.faces.templates import inner_face_mask, template

    for size in ((112, 96), (56, 48), (112, 112)):
        mask = inner_face_mask(size)
        for x, y in template(size):
            assert mask[round(y), round(x)]
        assert not (mask[0, 0] or mask[0, -1] or mask[-1, 0] or mask[-1, -1])
        assert 0.3 < mask.mean() < 0.5


def test_detail_boost_raises_local_contrast_and_keeps_each_images_level():
    from synface.train.augment import RandomDetailBoost

    x = faces(6) * 0.6 + 0.2  # room above and below, so nothing clips
    out = RandomDetailBoost((1.0, 1.5), (0.5, 0.5), p=1.0)(x)

    def detail(t):
        return float((t[..., 1:] - t[..., :-1]).pow(2).mean())

    assert detail(out) > 1.3 * detail(x)
    torch.testing.assert_close(out.mean((1, 2, 3)), x.mean((1, 2, 3)), atol=0.01, rtol=0)
    assert torch.equal(RandomDetailBoost((1.0, 1.5), (0.5, 0.5), p=0.0)(x), x)


def test_desaturate_scales_each_images_saturation_by_its_factor_and_keeps_its_luma():
    from synface.train.augment import RandomDesaturate

    x = faces(6)
    out = RandomDesaturate((0.7, 0.95), p=1.0)(x)
    ratio = (out.amax(1) - out.amin(1)).sum((1, 2)) / (x.amax(1) - x.amin(1)).sum((1, 2))
    assert ((ratio > 0.7 - 1e-4) & (ratio < 0.95 + 1e-4)).all(), ratio
    assert ratio.std() > 0.01, "one factor per image, not one per batch"
    # each pixel's ratio is its image's factor: the colour moves along its own line to grey
    per_pixel = (out.amax(1) - out.amin(1)) / (x.amax(1) - x.amin(1)).clamp_min(1e-3)
    strong = (x.amax(1) - x.amin(1)) > 0.1
    torch.testing.assert_close(per_pixel[strong], ratio[:, None, None].expand_as(per_pixel)[strong], atol=1e-3, rtol=0)
    from synface.imageio import LUMA_WEIGHTS

    luma = torch.tensor(LUMA_WEIGHTS)[None, :, None, None]
    torch.testing.assert_close((out * luma).sum(1), (x * luma).sum(1), atol=1e-5, rtol=0)
    assert torch.equal(RandomDesaturate((0.7, 0.95), p=0.0)(x), x)


def test_desaturate_factor_above_one_is_refused():
    with pytest.raises(ValueError, match="desaturate_factor"):
        AugmentConfig(desaturate_factor=(0.8, 1.2))
