"""Models as ONNX: export a checkpoint's backbone (dynamic batch) and run it with onnxruntime.

The exported graph takes what our backbones take, ``input`` (N, 3, H, W) float32 RGB scaled to
[-1, 1] (``synface.models.inference.to_input``), and returns ``embedding`` (N, D), not
normalised. The crop size, embedding size and backbone name travel as metadata properties,
so ``synface evaluate --onnx`` needs nothing else. Optional: ``pip install synface[onnx]``.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from synface.errors import DataNotFoundError, SynfaceError, cannot_write

OPSET = 17


def _onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        raise SynfaceError("ONNX models need `pip install onnx onnxruntime` (synface[onnx])") from None
    return onnxruntime


def export_onnx(checkpoint: str | Path, out: str | Path, check_batch: int = 8, seed: int = 0) -> dict:
    """Write ``checkpoint``'s backbone to ``out`` and check it with onnxruntime on a random
    batch of ``check_batch``: returns {"max_abs_diff", "min_cosine", "input_size", ...}."""
    from synface.models.checkpoint import load_backbone

    try:
        import onnx
    except ImportError:
        raise SynfaceError("ONNX export needs `pip install onnx onnxruntime` (synface[onnx])") from None
    model, spec = load_backbone(checkpoint)
    h, w = spec["input_size"]
    out = Path(out)
    example = torch.zeros(2, 3, h, w)
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():  # the TorchScript exporter is the one without extra packages
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(model, (example,), str(tmp), input_names=["input"], output_names=["embedding"],
                              dynamic_axes={"input": {0: "batch"}, "embedding": {0: "batch"}},
                              opset_version=OPSET, dynamo=False)
        graph = onnx.load(str(tmp))
        meta = {"synface_backbone": spec["name"], "synface_input_size": json.dumps([h, w]),
                "synface_embedding_size": str(spec.get("embedding_size", 512)),
                "synface_input": "RGB float32 (N, 3, H, W) scaled to [-1, 1]"}
        for key, value in meta.items():
            graph.metadata_props.add(key=key, value=value)
        onnx.checker.check_model(graph)
        onnx.save(graph, str(tmp))
        tmp.replace(out)
    except OSError as exc:
        raise cannot_write(out, exc, tmp) from None
    generator = torch.Generator().manual_seed(seed)
    batch = torch.rand(check_batch, 3, h, w, generator=generator) * 2 - 1
    with torch.inference_mode():
        expected = model(batch).numpy()
    got = OnnxBackbone(out)(batch).numpy()
    cosine = (expected * got).sum(1) / (np.linalg.norm(expected, axis=1) * np.linalg.norm(got, axis=1))
    return {"out": str(out), "backbone": spec["name"], "input_size": [h, w], "opset": OPSET,
            "max_abs_diff": float(np.abs(expected - got).max()), "min_cosine": float(cosine.min()),
            "checked_batch": check_batch}


class OnnxBackbone(nn.Module):
    """An ONNX embedding model behind the nn.Module interface our evaluation calls (CPU, fp32)."""

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        path = Path(path)
        if not path.is_file():
            raise DataNotFoundError(f"ONNX model not found: {path}")
        ort = _onnxruntime()
        try:
            self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own types for a bad file
            raise SynfaceError(f"cannot load ONNX model {path}: {str(exc).splitlines()[0]}") from None
        props = self.session.get_modelmeta().custom_metadata_map
        self.input_name = self.session.get_inputs()[0].name
        size = props.get("synface_input_size")
        shape = self.session.get_inputs()[0].shape
        if size is not None:
            self.input_size = tuple(json.loads(size))
        elif all(isinstance(v, int) for v in shape[2:]):
            self.input_size = tuple(shape[2:])
        else:
            raise SynfaceError(f"{path}: no input size in its metadata or input shape {shape}")
        self.name = props.get("synface_backbone", path.stem)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        array = np.ascontiguousarray(x.detach().float().cpu().numpy())
        return torch.from_numpy(self.session.run(None, {self.input_name: array})[0])
