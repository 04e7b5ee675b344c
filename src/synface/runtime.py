"""Device choice and CPU threading, shared by every command."""

from __future__ import annotations

import torch


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA when present, else CPU; anything else is passed to torch."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} requested but CUDA is not available")
    return device


def tune_cpu_allocator() -> bool:
    """Keep freed activation buffers in the process instead of returning them to the OS.

    glibc hands blocks over its mmap threshold back to the kernel on every free, so each
    CPU forward pass page-faults its activations in again: a third of LFW embedding time
    went to the kernel. Raising the thresholds (as MALLOC_MMAP_THRESHOLD_ would) removes
    that. Returns False where the C library is not glibc.
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3
    ok = mallopt(m_mmap_threshold, 32 * 1024 * 1024)  # glibc's maximum on 64-bit
    ok &= mallopt(m_trim_threshold, 1024 * 1024 * 1024)
    ok &= mallopt(m_top_pad, 64 * 1024 * 1024)
    return bool(ok)


def one_core_per_process() -> None:
    """Limit this process to one core's worth of threads (llvmpipe's and torch's), for
    worker processes that share the machine: their threads would otherwise fight."""
    import os

    os.environ.setdefault("LP_NUM_THREADS", "1")  # read when the first GL context starts
    torch.set_num_threads(1)
