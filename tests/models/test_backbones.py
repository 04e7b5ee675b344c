import pytest
import torch

from synface.models import BACKBONES, get_backbone
from synface.models.backbones.common import DepthwiseConv2d
from synface.models.checkpoint import backbone_spec, load_backbone, save_backbone
from synface.models.inference import fuse_for_inference

SIZES = [(112, 96), (112, 112), (56, 48)]


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_every_backbone_gives_512d_for_every_crop_size(name):
    torch.manual_seed(0)
    for size in SIZES:
        model = get_backbone(name, size).eval()
        with torch.no_grad():
            out = model(torch.randn(2, 3, *size))
        assert out.shape == (2, 512), (name, size)
        assert torch.isfinite(out).all()


def test_channels_last_and_bn_fusion_keep_the_output():
    torch.manual_seed(0)
    model = get_backbone("mobilefacenet", (56, 48)).eval()
    x = torch.randn(4, 3, 56, 48)
    with torch.no_grad():
        reference = model(x)
        fused = fuse_for_inference(model).to(memory_format=torch.channels_last)
        out = fused(x.contiguous(memory_format=torch.channels_last))
    assert torch.allclose(out, reference, atol=1e-4, rtol=1e-4)


def test_strided_depthwise_conv_runs_in_fp32_under_cpu_autocast():
    torch.manual_seed(0)
    strided = DepthwiseConv2d(8, 8, 3, 2, 1, groups=8, bias=False)
    plain = DepthwiseConv2d(8, 8, 3, 1, 1, groups=8, bias=False)
    x = torch.randn(2, 8, 14, 12, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y, z = strided(x), plain(x)
    assert y.dtype == torch.float32 and z.dtype == torch.bfloat16
    assert y.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(y, torch.nn.functional.conv2d(x, strided.weight, stride=2, padding=1, groups=8), atol=1e-6)
    y.sum().backward()
    assert x.grad is not None and strided.weight.grad is not None


def test_unknown_backbone_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown backbone 'resnet9000'"):
        get_backbone("resnet9000")


def test_checkpoint_round_trip(tmp_path):
    model = get_backbone("iresnet18", (56, 48)).eval()
    save_backbone(tmp_path / "ck.pt", model, backbone_spec("iresnet18", (56, 48)))
    loaded, spec = load_backbone(tmp_path / "ck.pt")
    assert spec["name"] == "iresnet18" and spec["input_size"] == [56, 48]
    x = torch.randn(2, 3, 56, 48)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
