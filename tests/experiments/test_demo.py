import json

import pytest

from synface.experiments.demo import run_demo


def test_demo_pipeline_end_to_end_on_a_tiny_set(tmp_path, small_lfw):
    import torch

    from synface.datasets.storage import ShardedDataset
    from synface.models.backbones import get_backbone
    from synface.train.validation import validate

    spec = tmp_path / "tiny.yaml"
    spec.write_text("name: tiny-demo\nidentities: 40\nsamples: 5\nmixup: syn3\n")
    overrides = {"compile": False, "amp": False, "batch_size": 32, "workers": 0, "optim.epochs": 20,
                 "optim.milestones": [15, 18], "validation.identities": 20, "validation.samples": 4}
    # A budget the tiny run never reaches, even on a slow or busy host: the deadline path runs,
    # but cuts nothing, so the steps are exactly the planned ones.
    metrics = run_demo(tmp_path / "run", tmp_path / "data", workers=1, spec_name=spec, overrides=overrides,
                       budget_min=60.0)
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["lfw_accuracy"] == metrics["lfw_accuracy"] and saved["lfw_accuracy_random_init"] is not None
    assert saved["training"]["steps"] == 120 and saved["dataset"]["images"] == 200
    # LFW cannot tell 120 steps from none (a random MobileFaceNet scores ~67 % there), but
    # held-out synthetic people can: the trained network must beat the untrained one on them.
    torch.manual_seed(0)
    untrained = validate(get_backbone("mobilefacenet", (56, 48)), ShardedDataset(tmp_path / "data" / "validation"),
                         (56, 48), torch.device("cpu"))["val_accuracy"]
    assert saved["synthetic_validation_accuracy"] > untrained + 0.05, (saved["synthetic_validation_accuracy"], untrained)
    report = (tmp_path / "run" / "report.md").read_text()
    assert f"{100 * saved['lfw_accuracy']:.2f} %" in report
    for name in ("checkpoint.pt", "loss.png", "preview.png", "metrics.csv"):
        assert (tmp_path / "run" / name).is_file()


def test_a_demo_folder_from_an_older_generator_is_regenerated_and_retrained(tmp_path, data_root):
    from synface.datasets.build import prepare_output, stale_generator
    from synface.datasets.spec import load_spec, resolve_spec
    from synface.experiments.demo import replace_stale_run

    spec = resolve_spec(load_spec("demo"))
    data, out = tmp_path / "data", tmp_path / "run"
    prepare_output(data, spec)
    out.mkdir()
    (out / "checkpoint.pt").write_bytes(b"trained on the old images")
    replace_stale_run(spec, data, out)  # current generator: kept, to resume
    assert stale_generator(data, spec) is None and (out / "checkpoint.pt").is_file()
    (data / "generator.txt").write_text("hair-shell-1 appearance=learned\n")
    assert stale_generator(data, spec) == "hair-shell-1 appearance=learned"
    replace_stale_run(spec, data, out)
    assert not data.exists() and not out.exists()


def test_a_demo_folder_of_an_older_demo_spec_is_regenerated_and_another_spec_is_refused(tmp_path, data_root):
    from dataclasses import replace

    from synface.datasets.build import prepare_output
    from synface.datasets.spec import load_spec, resolve_spec
    from synface.errors import SynfaceError
    from synface.experiments.demo import replace_stale_run

    spec = resolve_spec(load_spec("demo"))
    data, out = tmp_path / "data", tmp_path / "run"
    prepare_output(data, replace(spec, hairline="low"))  # the demo before a default changed
    out.mkdir()
    (out / "checkpoint.pt").write_bytes(b"trained on the old spec's images")
    replace_stale_run(spec, data, out)
    assert not data.exists() and not out.exists()
    prepare_output(data, spec)  # the current spec starts afresh
    other = resolve_spec(load_spec("syn1"))
    theirs = tmp_path / "theirs"
    prepare_output(theirs, other)
    replace_stale_run(spec, theirs, out)  # another spec altogether: not ours to delete
    assert (theirs / "spec.yaml").is_file()
    with pytest.raises(SynfaceError, match="holds a different dataset"):
        prepare_output(theirs, spec)


def test_the_report_says_first_when_a_time_budget_cut_training_short():
    from synface.experiments.demo import render_report

    training = {"steps": 40, "planned_steps": 276, "preset_steps": 276, "epochs": 1.7, "train_img_per_s": 50.0,
                "final_loss": 20.0, "stopped_by_time_budget": True, "fitted_to_budget": None, "device": "cpu"}
    metrics = {"training": training, "dataset": {"spec": "demo", "identities": 300, "images": 6000, "mixup": "syn3"},
               "seconds": {"generate_s": 1.0, "train_s": 2.0, "evaluate_s": 3.0}, "runtime": None,
               "synthetic_validation_accuracy": 0.6, "lfw_accuracy": 0.6, "lfw_accuracy_std": 0.01,
               "lfw_accuracy_random_init": 0.6, "lfw_auc": 0.6, "lfw_tar_at_far_1e-3": 0.01}
    first_line = render_report(metrics).splitlines()[0]
    assert "stopped by its time budget after 40 of 276 planned steps" in first_line
    training.update(stopped_by_time_budget=False, steps=150, planned_steps=150,
                    fitted_to_budget={"steps": 150, "planned_steps": 276, "budget_min": 6.0, "img_per_s": 90.0})
    report = render_report(metrics)
    assert report.startswith("# synface demo") and "150 of the preset's 276 steps fit the 6.0-minute" in report
    assert "re-sized" not in report
    training["fitted_to_budget"].update(refits=2, img_per_s=80.0)
    assert "at 80 img/s, re-sized 2x at epoch ends to the rate it ran at;" in render_report(metrics)
