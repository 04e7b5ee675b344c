"""How a run uses the machine it runs on: device, precision, compilation, memory layout,
threads and the CPU allocator. One module decides, for training, evaluation, the demo, the
A/B experiments and every benchmark.

Machines of one kind differ: some CPUs have native bf16 (AVX-512 BF16 or AMX), where bf16
autocast is ~1.4x faster than fp32 for our networks; others have AVX2 only, where oneDNN
emulates bf16 and autocast runs 8-20x *slower* than fp32. A preset therefore says ``auto``
and :func:`plan_runtime` resolves it from capability checks when the run starts; an
explicit value always wins. Where the checks cannot tell (bf16 kernels present but no bf16
instructions, e.g. AVX-512 without BF16), a few timed warm-up steps decide. What was chosen,
and why, is recorded with every result (:meth:`RuntimePlan.record`).

Measured on 2 cores (``benchmarks/train_throughput.py``, MobileFaceNet 56x48, batch 256):
native-bf16 Xeon: bf16 compiled 312 img/s, bf16 eager 200, fp32 compiled 205, fp32 eager 175,
a plain fp32 loop 145; the same host limited to AVX2 (``ATEN_CPU_CAPABILITY=avx2
ONEDNN_MAX_CPU_ISA=AVX2``): fp32 compiled 172 (after ~50 s of compiling), fp32 eager 153,
plain 136, bf16 13 (emulated); a real AVX2-only AMD EPYC (Zen 2): fp32 compiled 112-155,
eager 113-140, plain 84-107, bf16 10-14, and 183 compiled (1.60x plain) once the backbones'
batch norm and PReLU sum per image first (``synface.models.backbones.common``). So AVX2 hosts
train fp32, compiled when the run is long.
"""

from __future__ import annotations

import os
import platform
import shutil
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch

AUTO = "auto"
PRECISIONS = ("fp32", "bf16", "fp16")
# torch.compile's mode on CPU: inductor picks its own GEMM kernels (+7 % over default).
CPU_COMPILE_MODE = "max-autotune-no-cudagraphs"


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA when present, else CPU; anything else is passed to torch."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} requested but CUDA is not available")
    return device


# ---- what the machine can do -------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask, not the machine's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def cpu_has_bf16_instructions() -> bool:
    """AVX-512 BF16 or AMX-BF16: the instructions that make bf16 faster than fp32."""
    cpu = getattr(torch, "cpu", None)
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)


def onednn_bf16_supported() -> bool:
    """oneDNN will run bf16 at all (it honours ``ONEDNN_MAX_CPU_ISA``; False on AVX2)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def cpu_capability() -> str:
    """ATen's vector ISA for this process: DEFAULT, AVX2, AVX512 (``ATEN_CPU_CAPABILITY`` caps it)."""
    try:
        return torch.backends.cpu.get_cpu_capability()
    except AttributeError:
        return "unknown"


def native_cpu_bf16() -> bool | None:
    """True: bf16 runs natively; False: it is emulated (slow); None: kernels exist but
    the CPU lacks bf16 instructions, so only a measurement can tell."""
    if not onednn_bf16_supported() or cpu_capability() in ("DEFAULT", "AVX2", "unknown"):
        return False
    return True if cpu_has_bf16_instructions() else None


def compiler_available() -> bool:
    """torch.compile's CPU backend (inductor) builds C++ kernels: it needs a C++ compiler."""
    return any(shutil.which(cc) for cc in (os.environ.get("CXX") or "g++", "g++", "clang++", "c++"))


def host_info(device: torch.device | None = None) -> dict:
    """What a result should say about the machine that produced it."""
    device = device or resolve_device()
    info = {
        "cpu": _cpu_model(),
        "cpu_capability": cpu_capability(),
        "onednn_bf16": onednn_bf16_supported(),
        "cpu_bf16_instructions": cpu_has_bf16_instructions(),
        "usable_cores": usable_cores(),
        "torch_threads": torch.get_num_threads(),
        "torch": str(torch.__version__),
        "python": platform.python_version(),
        "device": str(device),
    }
    # Variables that cap the ISA (how a bf16 host is made to behave like an AVX2 one).
    caps = {k: os.environ[k] for k in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA") if k in os.environ}
    if caps:
        info["isa_caps"] = caps
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = str(torch.version.cuda)
        info["gpu_bf16"] = bool(torch.cuda.is_bf16_supported())
    return info


def describe_host(info: dict | None = None) -> str:
    """One line for logs and reports, e.g. ``Intel Xeon (AVX512, native bf16), 2 cores, torch 2.13.0``."""
    info = info or host_info()
    if info.get("gpu"):
        return f"{info['gpu']} (CUDA {info['cuda']}), torch {info['torch']}"
    bf16 = "native bf16" if info["onednn_bf16"] and info["cpu_bf16_instructions"] else "no native bf16"
    caps = f", capped by {' '.join(f'{k}={v}' for k, v in info['isa_caps'].items())}" if info.get("isa_caps") else ""
    return f"{info['cpu']} ({info['cpu_capability']}, {bf16}{caps}), {info['usable_cores']} cores, torch {info['torch']}"


# ---- the plan ----------------------------------------------------------------------------------


@dataclass
class RuntimePlan:
    """Resolved settings of one run. ``precision`` is the autocast dtype's name (fp32: no
    autocast); ``reasons`` says, per setting, why it was chosen."""

    device: str
    precision: str
    compile: bool
    compile_mode: str
    channels_last: bool
    threads: int
    reasons: dict[str, str] = field(default_factory=dict)
    host: dict = field(default_factory=dict)

    @property
    def amp(self) -> bool:
        return self.precision != "fp32"

    @property
    def autocast_dtype(self) -> torch.dtype:
        return precision_dtype(self.precision)

    def autocast(self):
        device_type = torch.device(self.device).type
        return torch.autocast(device_type, dtype=self.autocast_dtype, enabled=self.amp)

    def record(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        mode = f"compiled ({self.compile_mode})" if self.compile else "eager"
        layout = "channels-last" if self.channels_last else "NCHW"
        return f"{self.precision}, {mode}, {layout}, {self.threads} threads on {describe_host(self.host)}"


def precision_dtype(precision: str) -> torch.dtype:
    """The torch dtype of a precision name ("fp32", "bf16", "fp16"): the one mapping."""
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
    if precision not in dtypes:
        raise ValueError(f"unknown precision {precision!r}; use fp32, bf16 or fp16")
    return dtypes[precision]


def parse_precision(value: bool | str | None) -> str:
    """A config or CLI value -> ``auto`` or one of PRECISIONS. ``true`` means reduced
    precision of the device's usual kind (bf16 on CPU; chosen per device), ``false`` fp32."""
    if value is None or value == AUTO:
        return AUTO
    if value is True:
        return "reduced"
    if value is False:
        return "fp32"
    text = str(value).lower()
    aliases = {"float32": "fp32", "fp32": "fp32", "bfloat16": "bf16", "bf16": "bf16", "float16": "fp16", "fp16": "fp16"}
    if text not in aliases:
        raise ValueError(f"unknown precision {value!r}; use auto, true, false, {', '.join(PRECISIONS)}")
    return aliases[text]


def check_setting(name: str, value: bool | str, allowed: tuple[str, ...] = (AUTO,)) -> None:
    if isinstance(value, str) and value not in allowed:
        raise ValueError(f"{name} must be true, false or {' / '.join(allowed)}, got {value!r}")


def _choose_precision(requested: str, device: torch.device, probe: Callable[[str], float] | None) -> tuple[str, str]:
    if device.type == "cuda":
        best = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        if requested in ("fp32", "bf16", "fp16"):
            return requested, "set explicitly"
        return best, f"CUDA: {best} autocast ({'bf16 supported' if best == 'bf16' else 'no bf16 on this GPU'})"
    if requested == "fp32":
        return "fp32", "set explicitly"
    if requested in ("bf16", "reduced"):
        return "bf16", "set explicitly" + ("" if native_cpu_bf16() else " (this CPU emulates bf16: expect it slow)")
    if requested == "fp16":
        return "fp16", "set explicitly"
    native = native_cpu_bf16()
    if native:
        return "bf16", f"CPU has native bf16 ({cpu_capability()}, AVX-512 BF16 / AMX)"
    if native is False:
        return "fp32", f"CPU has no native bf16 ({cpu_capability()}): bf16 autocast would be emulated, ~10x slower"
    if probe is None:
        return "fp32", "bf16 kernels present but no bf16 instructions; no probe given: fp32 is the safe choice"
    fp32_s, bf16_s = probe("fp32"), probe("bf16")
    choice = "bf16" if bf16_s < 0.9 * fp32_s else "fp32"
    return choice, f"timed warm-up steps: fp32 {fp32_s:.3f} s, bf16 {bf16_s:.3f} s per step"


def _choose_compile(requested: bool | str, device: torch.device, precision: str, long_run: bool) -> tuple[bool, str]:
    if requested is True or requested is False:
        return bool(requested), "set explicitly"
    if device.type == "cuda":
        try:
            import triton  # noqa: F401
        except ImportError:
            return False, "CUDA without triton: inductor cannot generate GPU kernels"
        return (long_run, "CUDA with triton" if long_run else "run too short to repay compilation")
    if not compiler_available():
        return False, "no C++ compiler for inductor's CPU kernels"
    if not long_run:
        return False, "too little work to repay compilation"
    # Measured on 2 cores (benchmarks/train_throughput.py, evaluate_lfw.py): training bf16
    # +55 %, fp32 +13-21 % (30-95 s to compile); LFW embedding fp32 +28-33 %, bf16 +35 %.
    return True, (f"long CPU run ({precision}, {cpu_capability()}): inductor's fused kernels are faster "
                  "(training +13-55 %, inference +28-35 %) and repay the compile time")


def plan_runtime(
    device: str | torch.device = "auto",
    precision: bool | str | None = AUTO,
    compile: bool | str = AUTO,
    channels_last: bool | str = AUTO,
    threads: int | str = AUTO,
    compile_mode: str = AUTO,
    long_run: bool = True,
    probe: Callable[[str], float] | None = None,
) -> RuntimePlan:
    """Resolve every ``auto`` for this machine and apply the thread count.

    ``long_run``: the work is long enough to repay torch.compile (a training run of >= 100
    steps, an evaluation of thousands of images). ``probe(precision) -> seconds per step``
    times a few warm-up steps; it is called only where capability checks cannot decide.
    """
    device = resolve_device(device) if isinstance(device, str) else device
    reasons: dict[str, str] = {}
    if threads == AUTO:
        # torch's default (physical cores, or OMP_NUM_THREADS as torchrun sets it), never
        # more than the cores this process may run on (taskset, cgroups).
        count = max(1, min(torch.get_num_threads(), usable_cores()))
        source = f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}" if "OMP_NUM_THREADS" in os.environ else "torch default"
        reasons["threads"] = f"{source}, {usable_cores()} usable cores"
    else:
        count = int(threads)
        if count < 1:
            raise ValueError(f"threads must be >= 1 or auto, got {threads!r}")
        reasons["threads"] = "set explicitly"
    if count != torch.get_num_threads():
        torch.set_num_threads(count)
    chosen, reasons["precision"] = _choose_precision(parse_precision(precision), device, probe)
    compiled, reasons["compile"] = _choose_compile(compile, device, chosen, long_run)
    if channels_last == AUTO:
        layout = True
        reasons["channels_last"] = ("CPU: oneDNN's channels-last kernels (fp32 eager 192 vs 149 img/s NCHW)"
                                    if device.type == "cpu" else "CUDA: tensor cores prefer NHWC")
    else:
        layout = bool(channels_last)
        reasons["channels_last"] = "set explicitly"
    mode = compile_mode
    if mode == AUTO:
        mode = CPU_COMPILE_MODE if device.type == "cpu" else "default"
    return RuntimePlan(str(device), chosen, compiled, mode, layout, count, reasons, host_info(device))


def time_steps(step: Callable[[], None], steps: int = 2) -> float:
    """Seconds per call of ``step`` after one untimed call (the probe's measurement)."""
    step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps


# ---- process set-up ----------------------------------------------------------------------------


def tune_cpu_allocator() -> bool:
    """Keep freed activation buffers in the process instead of returning them to the OS.

    glibc serves blocks over its mmap threshold with fresh mmaps and hands them back on every
    free, so each CPU training or inference step page-faults its activations in again
    (a third of LFW embedding time went to the kernel). Raising the trim threshold and
    serving every block from the heap (no mmap: a 256 x 128 x 28 x 24 activation is 88 MB,
    over glibc's 32 MB mmap-threshold maximum) removes that: +7-12 % training img/s.
    Returns False where the C library is not glibc.
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_top_pad, m_mmap_threshold, m_mmap_max = -1, -2, -3, -4
    ok = mallopt(m_mmap_threshold, 32 * 1024 * 1024)  # glibc's maximum on 64-bit
    ok &= mallopt(m_mmap_max, 0)
    ok &= mallopt(m_trim_threshold, 1024 * 1024 * 1024)
    ok &= mallopt(m_top_pad, 64 * 1024 * 1024)
    return bool(ok)


def one_core_per_process() -> None:
    """Limit this process to one core's worth of threads (llvmpipe's and torch's), for
    worker processes that share the machine: their threads would otherwise fight."""
    os.environ.setdefault("LP_NUM_THREADS", "1")  # read when the first GL context starts
    torch.set_num_threads(1)
