"""synface.runtime: precision, compile, layout and threads chosen for the machine, and every
consumer (training, validation, evaluation) running what was chosen."""

import numpy as np
import pytest
import torch

from synface import runtime
from synface.runtime import parse_precision, plan_runtime


def fake_cpu(monkeypatch, capability: str, onednn_bf16: bool, bf16_instructions: bool) -> None:
    monkeypatch.setattr(runtime, "cpu_capability", lambda: capability)
    monkeypatch.setattr(runtime, "onednn_bf16_supported", lambda: onednn_bf16)
    monkeypatch.setattr(runtime, "cpu_has_bf16_instructions", lambda: bf16_instructions)


@pytest.fixture
def avx2_cpu(monkeypatch):
    """The issue's AMD EPYC: AVX2 only, oneDNN without bf16."""
    fake_cpu(monkeypatch, "AVX2", onednn_bf16=False, bf16_instructions=False)


@pytest.fixture
def bf16_cpu(monkeypatch):
    """A Sapphire Rapids Xeon: AVX-512 with BF16 and AMX."""
    fake_cpu(monkeypatch, "AVX512", onednn_bf16=True, bf16_instructions=True)


def test_auto_is_fp32_eager_without_native_bf16(avx2_cpu):
    plan = plan_runtime("cpu")
    assert plan.precision == "fp32" and not plan.amp and plan.autocast_dtype == torch.float32
    assert plan.channels_last and plan.compile == runtime.compiler_available()
    assert not plan_runtime("cpu", long_run=False).compile
    assert "no native bf16" in plan.reasons["precision"]
    assert plan.host["cpu_capability"] == "AVX2" and plan.host["torch"] == torch.__version__


def test_auto_is_bf16_compiled_with_native_bf16(bf16_cpu, monkeypatch):
    monkeypatch.setattr(runtime, "compiler_available", lambda: True)
    plan = plan_runtime("cpu")
    assert plan.precision == "bf16" and plan.compile and plan.compile_mode == runtime.CPU_COMPILE_MODE
    assert not plan_runtime("cpu", long_run=False).compile  # one evaluation pass does not repay compiling


def test_explicit_values_win_over_auto(avx2_cpu):
    plan = plan_runtime("cpu", precision="bf16", compile=True, channels_last=False, threads=1)
    assert (plan.precision, plan.compile, plan.channels_last, plan.threads) == ("bf16", True, False, 1)
    assert plan.reasons["precision"].startswith("set explicitly") and "slow" in plan.reasons["precision"]
    assert torch.get_num_threads() == 1
    assert plan_runtime("cpu", precision=False).precision == "fp32"
    assert plan_runtime("cpu").threads == 1  # auto keeps torch's setting (never raises it)
    torch.set_num_threads(runtime.usable_cores())
    assert plan_runtime("cpu").threads == runtime.usable_cores()


def test_ambiguous_cpus_are_timed(monkeypatch):
    """bf16 kernels but no bf16 instructions (AVX-512 without BF16): the probe decides."""
    fake_cpu(monkeypatch, "AVX512", onednn_bf16=True, bf16_instructions=False)
    assert plan_runtime("cpu", probe={"fp32": 1.0, "bf16": 0.5}.get).precision == "bf16"
    slow = plan_runtime("cpu", probe={"fp32": 1.0, "bf16": 0.95}.get)
    assert slow.precision == "fp32" and "timed" in slow.reasons["precision"]


def test_bad_values_are_named():
    with pytest.raises(ValueError, match="unknown precision 'fp8'"):
        parse_precision("fp8")
    with pytest.raises(ValueError, match="compile must be"):
        runtime.check_setting("compile", "sometimes")


# ---- consumers --------------------------------------------------------------------------------


def _autocast_dtypes(module: torch.nn.Module) -> list[torch.dtype]:
    """Records the dtype of every convolution output while the hook is installed."""
    seen: list[torch.dtype] = []
    for m in module.modules():
        if isinstance(m, torch.nn.Conv2d):
            m.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
    return seen


def _trainer(tiny_synthetic, tmp_path, **extra):
    from synface.train.config import load_train_config
    from synface.train.loop import Trainer

    overrides = {"backbone": "mobilefacenet", "input_size": "56x48", "batch_size": 8, "workers": 0,
                 "validation.identities": 0, "optim.epochs": 1, "log_every": 1, **extra}
    return Trainer(load_train_config("cpu", overrides), tiny_synthetic, tmp_path / "run", progress=False)


def test_training_runs_fp32_without_native_bf16(avx2_cpu, tiny_synthetic, tmp_path):
    trainer = _trainer(tiny_synthetic, tmp_path)  # 4 steps: too short to compile
    assert trainer.runtime.precision == "fp32" and not trainer.runtime.compile
    seen = _autocast_dtypes(trainer.module.backbone)
    summary = trainer.run(stop_at_step=1)
    assert seen and set(seen) == {torch.float32}
    assert summary["runtime"]["precision"] == "fp32"
    config_yaml = (tmp_path / "run" / "config.yaml").read_text()
    assert "amp: auto" in config_yaml and "# runtime on this machine: fp32" in config_yaml and "AVX2" in config_yaml


def test_training_runs_bf16_with_native_bf16(bf16_cpu, tiny_synthetic, tmp_path):
    trainer = _trainer(tiny_synthetic, tmp_path, compile=False)  # one tiny step: bf16 speed does not matter
    assert trainer.runtime.precision == "bf16"
    seen = _autocast_dtypes(trainer.module.backbone)
    trainer.run(stop_at_step=1)
    assert torch.bfloat16 in seen  # strided depthwise layers stay fp32 by design


def test_evaluation_follows_the_machine(monkeypatch, lfw_root, tmp_path):
    from synface.evaluate.pairs import PairList
    from synface.evaluate.benchmark import evaluate_model
    from synface.models import get_backbone

    people = [p for p in sorted((lfw_root / "images").iterdir()) if len(list(p.iterdir())) >= 2][:3]
    images = [f"{p.name}/{f.name}" for p in people for f in sorted(p.iterdir())[:2]]
    pairs = np.array([[0, 1], [2, 3], [4, 5], [0, 2], [1, 4], [3, 5]])
    bench = PairList("tiny", lfw_root / "images", images, pairs, np.array([True] * 3 + [False] * 3),
                     np.array([0, 1, 0, 1, 0, 1]), lfw_root / "lfw_landmark.txt")
    torch.manual_seed(0)
    model = get_backbone("mobilefacenet", (56, 48))
    for capability, onednn, instructions, expected in (("AVX2", False, False, {torch.float32}),
                                                       ("AVX512", True, True, {torch.bfloat16})):
        fake_cpu(monkeypatch, capability, onednn, instructions)
        seen = []
        # A global hook: evaluation embeds with a BN-fused copy of the model.
        handle = torch.nn.modules.module.register_module_forward_hook(
            lambda m, _i, out: seen.append(out.dtype) if isinstance(m, torch.nn.Conv2d) else None)
        try:
            result = evaluate_model(model, bench, (56, 48))
        finally:
            handle.remove()
        assert result["precision"] == ("fp32" if expected == {torch.float32} else "bf16")
        assert result["runtime"]["host"]["cpu_capability"] == capability
        assert expected <= set(seen)
        if expected == {torch.float32}:
            assert set(seen) == {torch.float32}


def test_trainer_times_both_precisions_where_capability_cannot_tell(monkeypatch, tiny_synthetic, tmp_path):
    fake_cpu(monkeypatch, "AVX512", onednn_bf16=True, bf16_instructions=False)
    timed = []
    real = runtime.time_steps

    def recording(step, steps=2):
        timed.append(steps)
        return real(step, steps)

    monkeypatch.setattr("synface.train.loop.time_steps", recording)
    trainer = _trainer(tiny_synthetic, tmp_path)
    assert len(timed) == 2  # fp32 and bf16, a few steps each, on a copy of the model
    assert trainer.runtime.precision in ("fp32", "bf16") and "timed warm-up steps" in trainer.runtime.reasons["precision"]
