"""MixStyle: mixes feature statistics only while training, keeps each image's content, and
leaves backbones, their state dicts and inference alone."""

import pytest
import torch

from synface.config import ConfigError, from_dict
from synface.models.backbones import get_backbone
from synface.models.mixstyle import MixStyleConfig, attach_mixstyle, mix_styles


def styled_batch(n: int = 6) -> torch.Tensor:
    """Features whose images differ by channel offsets and gains (their "style")."""
    g = torch.Generator().manual_seed(0)
    content = torch.randn(n, 8, 5, 4, generator=g)
    return content * torch.rand(n, 8, 1, 1, generator=g).add(0.5) + 3 * torch.randn(n, 8, 1, 1, generator=g)


def test_mixing_moves_statistics_towards_other_images_and_keeps_content():
    x = styled_batch()
    torch.manual_seed(1)
    y = mix_styles(x, p=1.0, alpha=0.1)
    assert not torch.allclose(y.mean((2, 3)), x.mean((2, 3)), atol=1e-3), "the styles were mixed"

    def normalised(t):
        return (t - t.mean((2, 3), keepdim=True)) / t.std((2, 3), keepdim=True)

    torch.testing.assert_close(normalised(y), normalised(x), atol=1e-4, rtol=1e-4)
    # Every mixed mean lies between the image's own and some other image's mean, channel by
    # channel: a convex mix of the batch's styles, not new ones.
    lo, hi = x.mean((2, 3)).min(0).values, x.mean((2, 3)).max(0).values
    assert bool(((y.mean((2, 3)) >= lo - 1e-4) & (y.mean((2, 3)) <= hi + 1e-4)).all())


def test_probability_zero_leaves_features_alone():
    x = styled_batch()
    assert torch.equal(mix_styles(x, p=0.0, alpha=0.1), x)


def test_hooks_mix_in_training_only_and_keep_the_state_dict():
    torch.manual_seed(0)
    plain = get_backbone("mobilefacenet", (56, 48), 128)
    mixed = get_backbone("mobilefacenet", (56, 48), 128)
    mixed.load_state_dict(plain.state_dict())
    handles = attach_mixstyle(mixed, MixStyleConfig(p=1.0))
    assert len(handles) == 3 and mixed.state_dict().keys() == plain.state_dict().keys()
    x = torch.randn(4, 3, 56, 48)
    plain.eval(), mixed.eval()
    torch.testing.assert_close(mixed(x), plain(x))  # inference never mixes
    plain.train(), mixed.train()
    torch.manual_seed(2)
    assert not torch.allclose(mixed(x), plain(x), atol=1e-3)
    for h in handles:
        h.remove()
    torch.testing.assert_close(mixed(x), plain(x))


def test_mixstyle_compiles_into_one_graph():
    model = get_backbone("mobilefacenet", (56, 48), 128)
    attach_mixstyle(model, MixStyleConfig(p=0.5))
    model.train()
    explained = torch._dynamo.explain(model)(torch.randn(4, 3, 56, 48))
    assert explained.graph_break_count == 0


def test_a_mixing_layer_trains_under_inductor():
    """Forward and backward compiled by inductor, as the Trainer compiles them (a randperm-
    indexed version of the mixing failed inductor's joint-graph passes)."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
                                torch.nn.Conv2d(8, 8, 3, padding=1), torch.nn.Flatten(), torch.nn.Linear(8 * 12 * 10, 4))
    attach_mixstyle(model, MixStyleConfig(p=1.0, layers=("2",)))
    model.train()
    x = torch.randn(6, 3, 12, 10)
    compiled = torch.compile(model)
    compiled(x).square().sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_bad_settings_are_refused_by_name():
    with pytest.raises(ValueError, match=r"mixstyle.layers: no module body\.99"):
        attach_mixstyle(get_backbone("mobilefacenet", (56, 48), 128), MixStyleConfig(p=0.5, layers=("body.99",)))
    with pytest.raises(ConfigError, match=r"mixstyle.p"):
        from_dict(MixStyleConfig, {"p": 2.0}, "mixstyle")
    assert attach_mixstyle(get_backbone("mobilefacenet", (56, 48), 128), MixStyleConfig()) == []  # off
