import copy

import pytest
import torch
from torch._inductor.compile_fx import compile_fx

from synface.models import BACKBONES, get_backbone
from synface.models.backbones import common
from synface.models.backbones.common import BatchNorm2d, DepthwiseConv2d, PReLU
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


def _train_step(module, x, dy):
    x = x.detach().requires_grad_()
    y = module(x)
    y.backward(dy)
    return y.detach(), x.grad


def _spy(monkeypatch, function) -> list:
    calls = []
    original = function.apply
    monkeypatch.setattr(function, "apply", lambda *a: calls.append(1) or original(*a))
    return calls


@pytest.fixture
def as_if_compiling(monkeypatch):
    """Run the compiled-CPU branch of the layers eagerly, so its arithmetic can be checked."""
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)


def test_two_level_batch_norm_matches_aten_in_training(monkeypatch, as_if_compiling):
    torch.manual_seed(0)
    calls = _spy(monkeypatch, common._BatchNormStatistics)
    ours, reference = BatchNorm2d(16), torch.nn.BatchNorm2d(16).double()
    with torch.no_grad():
        ours.weight.uniform_(0.5, 1.5), ours.bias.uniform_(-1, 1)
        ours.running_mean.fill_(1.5)  # the shift used for the sums; must not change the result
    reference.load_state_dict(ours.state_dict())
    x = (torch.randn(8, 16, 6, 5) * 3 + 2).contiguous(memory_format=torch.channels_last)
    dy = torch.randn(8, 16, 6, 5).contiguous(memory_format=torch.channels_last)
    for _ in range(2):  # the running statistics are folded in twice
        y, dx = _train_step(ours, x, dy)
        y_ref, dx_ref = _train_step(reference, x.double(), dy.double())
    assert len(calls) == 2
    assert torch.allclose(y.double(), y_ref, atol=1e-5)
    assert torch.allclose(dx.double(), dx_ref, atol=1e-5)
    for name in ("weight", "bias"):
        assert torch.allclose(getattr(ours, name).grad.double(), getattr(reference, name).grad, atol=1e-4), name
    for name in ("running_mean", "running_var"):
        assert torch.allclose(getattr(ours, name).double(), getattr(reference, name), atol=1e-5), name
    assert int(ours.num_batches_tracked) == 2


def test_two_level_prelu_matches_aten_in_training(monkeypatch, as_if_compiling):
    torch.manual_seed(0)
    calls = _spy(monkeypatch, common._ChannelPReLU)
    ours, reference = PReLU(16), torch.nn.PReLU(16).double()
    with torch.no_grad():
        ours.weight.uniform_(0.1, 0.5)
    reference.load_state_dict(ours.state_dict())
    x = torch.randn(8, 16, 6, 5)
    x = (x.sign() * (x.abs() + 0.1)).contiguous(memory_format=torch.channels_last)  # off the kink
    dy = torch.randn(8, 16, 6, 5).contiguous(memory_format=torch.channels_last)
    y, dx = _train_step(ours, x, dy)
    y_ref, dx_ref = _train_step(reference, x.double(), dy.double())
    assert calls == [1]
    assert torch.allclose(y.double(), y_ref, atol=1e-6) and torch.allclose(dx.double(), dx_ref, atol=1e-6)
    assert torch.allclose(ours.weight.grad.double(), reference.weight.grad, atol=1e-4)


def test_eager_eval_and_other_dtypes_keep_atens_layers(monkeypatch):
    bn_calls = _spy(monkeypatch, common._BatchNormStatistics)
    prelu_calls = _spy(monkeypatch, common._ChannelPReLU)
    block = torch.nn.Sequential(BatchNorm2d(4), PReLU(4))
    block(torch.randn(2, 4, 3, 3))  # eager training
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    block.eval()(torch.randn(2, 4, 3, 3))
    block.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        block(torch.randn(2, 4, 3, 3))
    block.double()(torch.randn(2, 4, 3, 3, dtype=torch.float64))
    assert bn_calls == [] and prelu_calls == []


def test_compiled_training_step_with_our_layers_matches_eager():
    """The whole compiled graph (no graph break: fullgraph) trains like the eager ATen step."""
    torch.manual_seed(0)
    eager = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, bias=False), BatchNorm2d(8), PReLU(8))
    compiled_module = copy.deepcopy(eager)
    graphs = []

    def inductor_recording_the_graph(graph, example_inputs):
        graphs.append(graph.code)
        return compile_fx(graph, example_inputs)

    compiled = torch.compile(compiled_module, backend=inductor_recording_the_graph, fullgraph=True)
    x = torch.randn(4, 3, 10, 9).contiguous(memory_format=torch.channels_last)
    dy = torch.randn(4, 8, 8, 7)
    y, dx = _train_step(eager, x, dy)
    y_c, dx_c = _train_step(compiled, x, dy)
    assert torch.allclose(y, y_c, atol=1e-5) and torch.allclose(dx, dx_c, atol=1e-5)
    for (name, p), p_c in zip(eager.named_parameters(), compiled_module.parameters()):
        assert torch.allclose(p.grad, p_c.grad, atol=1e-4), name
    assert torch.allclose(eager[1].running_var, compiled_module[1].running_var, atol=1e-6)
    # ours, not ATen's, went into the graph
    assert "batch_norm" not in graphs[0] and "prelu" not in graphs[0]
    assert graphs[0].count("autograd_function_apply(") == 2
