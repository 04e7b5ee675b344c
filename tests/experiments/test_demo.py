import json

from synface.experiments.demo import run_demo


def test_demo_pipeline_end_to_end_on_a_tiny_set(tmp_path, lfw_root):
    spec = tmp_path / "tiny.yaml"
    spec.write_text("name: tiny-demo\nidentities: 8\nsamples: 4\nmixup: syn3\n")
    overrides = {"compile": False, "batch_size": 16, "workers": 0, "optim.epochs": 2, "optim.milestones": [1],
                 "validation.identities": 4, "validation.samples": 2}
    metrics = run_demo(tmp_path / "run", tmp_path / "data", workers=1, spec_name=spec, overrides=overrides)
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["lfw_accuracy"] == metrics["lfw_accuracy"] and 0.4 < saved["lfw_accuracy"] < 1.0
    assert saved["training"]["steps"] == 4 and saved["dataset"]["images"] == 32
    report = (tmp_path / "run" / "report.md").read_text()
    assert f"{100 * saved['lfw_accuracy']:.2f} %" in report
    for name in ("checkpoint.pt", "loss.png", "preview.png", "metrics.csv"):
        assert (tmp_path / "run" / name).is_file()
