"""ONNX export (issue 20): onnxruntime's embeddings equal PyTorch's; evaluate --onnx scores."""

import json
import pytest
import torch
from typer.testing import CliRunner

from synface.cli import app
from synface.errors import SynfaceError
from synface.models import get_backbone
from synface.models.checkpoint import backbone_spec, save_backbone

pytest.importorskip("onnxruntime", reason="optional: pip install synface[onnx]")
runner = CliRunner()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("onnx") / "model.pt"
    save_backbone(path, get_backbone("mobilefacenet", (56, 48)), backbone_spec("mobilefacenet", (56, 48)))
    return path


def test_exported_model_gives_pytorchs_embeddings_at_any_batch_size(checkpoint, tmp_path):
    from synface.models.checkpoint import load_backbone
    from synface.models.onnx import OnnxBackbone, export_onnx

    report = export_onnx(checkpoint, tmp_path / "model.onnx")
    assert report["max_abs_diff"] < 1e-4 and report["min_cosine"] >= 0.9999
    onnx_model = OnnxBackbone(tmp_path / "model.onnx")
    assert onnx_model.input_size == (56, 48) and onnx_model.name == "mobilefacenet"
    torch_model, _ = load_backbone(checkpoint)
    for batch in (1, 5, 33):  # dynamic batch
        x = torch.rand(batch, 3, 56, 48) * 2 - 1
        with torch.inference_mode():
            expected = torch_model(x)
        got = onnx_model(x)
        assert got.shape == (batch, 512)
        cosine = torch.nn.functional.cosine_similarity(got, expected)
        assert cosine.min() >= 0.9999 and (got - expected).abs().max() < 1e-4
    (tmp_path / "bad.onnx").write_bytes(b"nonsense")
    with pytest.raises(SynfaceError, match="cannot load ONNX model"):
        OnnxBackbone(tmp_path / "bad.onnx")


def test_evaluate_scores_an_onnx_model_like_its_checkpoint(checkpoint, tmp_path, lfw_root, lfw_sample):
    csv = tmp_path / "pairs.csv"
    rows = ["fold,path1,path2,same"]
    for i in range(0, 40, 2):
        a, b = lfw_sample[i], lfw_sample[i + 1]
        rows += [f"{i % 4},{lfw_root / 'images' / a},{lfw_root / 'images' / a},1",
                 f"{i % 4},{lfw_root / 'images' / a},{lfw_root / 'images' / b},0"]
    csv.write_text("\n".join(rows) + "\n")
    exported = runner.invoke(app, ["export-model", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "m.onnx")])
    assert exported.exit_code == 0, exported.output
    results = {}
    for flag, path in (("--onnx", tmp_path / "m.onnx"), ("--checkpoint", checkpoint)):
        out = tmp_path / f"{flag[2:]}.json"
        result = runner.invoke(app, ["evaluate", "--benchmark", str(csv), flag, str(path), "--precision", "fp32",
                                     "--json", str(out)])
        assert result.exit_code == 0, result.output
        results[flag] = json.loads(out.read_text())
    assert results["--onnx"]["accuracy_mean"] == pytest.approx(results["--checkpoint"]["accuracy_mean"], abs=1e-9)
    assert results["--onnx"]["auc"] == pytest.approx(results["--checkpoint"]["auc"], abs=1e-4)
