"""Face embeddings from aligned uint8 crops."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from synface.models.inference import autocast_dtype, fit_input, fuse_for_inference, to_input


@torch.inference_mode()
def embed_crops(
    model: nn.Module,
    crops: np.ndarray,
    batch_size: int | None = None,
    flip: bool = True,
    device: torch.device | str = "cpu",
    channels_last: bool = True,
    amp: bool | str = False,
    desc: str = "embed",
    input_size: tuple[int, int] | None = None,
    compile: bool = False,
) -> np.ndarray:
    """L2-normalised embeddings (N, D) float32; with ``flip`` the embedding of the mirrored
    crop is added before normalising (the usual LFW test-time augmentation).

    ``input_size`` area-resizes crops stored at another size (e.g. 112x96 data for a 56x48
    network). ``amp`` runs the network in reduced precision: True for the device's usual one
    (bf16 on CPU, fp16 on CUDA) or a precision name ("fp32", "bf16", "fp16"; see
    ``synface.runtime`` for choosing it per machine). bf16 is about twice as fast on CPUs with
    bf16 instructions and ~10x slower on CPUs without, at a small cost in embedding precision.
    ``compile``: torch.compile the (BN-fused) network first; the last batch is padded to the
    full batch size so one compiled shape serves every batch (rows are independent in eval
    mode, so the padding changes no embedding).
    """
    device = torch.device(device)
    if batch_size is None:
        # Small batches stay in a CPU's caches; a GPU wants big ones.
        batch_size = 256 if device.type == "cuda" else 32
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = fuse_for_inference(model.to(device)).to(memory_format=memory_format)
    if compile:
        model = torch.compile(model, dynamic=False)
    out = []
    dtype = autocast_dtype(device, amp)
    with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
        for start in tqdm(range(0, len(crops), batch_size), desc=desc, unit="batch", leave=False):
            x = fit_input(to_input(crops[start : start + batch_size], device), input_size)
            rows = len(x)
            if compile and rows < batch_size and len(crops) > batch_size:
                x = torch.cat([x, x.new_zeros((batch_size - rows, *x.shape[1:]))])
            x = x.contiguous(memory_format=memory_format)
            feats = model(x)
            if flip:
                feats = feats + model(x.flip(3))
            out.append(nn.functional.normalize(feats[:rows].float(), dim=1).cpu())
    return torch.cat(out).numpy()
