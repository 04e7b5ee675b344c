import json

import synface.experiments.appearance_ab as ab
from synface.generate.generator import GENERATOR_VERSION


def test_ab_reuses_only_results_of_the_current_generator_and_reports_the_recorded_one(tmp_path, monkeypatch, data_root):
    trained = []

    def fake_run(spec, data, config, out, workers):
        trained.append((spec.appearance, spec.seed))
        out.mkdir(parents=True, exist_ok=True)
        return {"lfw": {"accuracy_mean": 0.7, "accuracy_std": 0.01, "auc": 0.8},
                "summary": {"val_accuracy": 0.9, "steps": 10, "epochs": 1.0}, "seconds": {}}

    monkeypatch.setattr(ab, "generate_train_evaluate", fake_run)
    old = tmp_path / "runs" / "procedural-seed0" / "result.json"
    old.parent.mkdir(parents=True)
    old.write_text(json.dumps({"mode": "procedural", "seed": 0, "lfw_accuracy": 0.99, "generator": "hair-shell-1"}))
    kwargs = dict(out=tmp_path / "runs", data=tmp_path / "data", report=tmp_path / "ab.md",
                  modes=("procedural",), seeds=(0, 1))
    summary = ab.run_appearance_ab(**kwargs)
    assert trained == [("procedural", 0), ("procedural", 1)]  # the old generator's result is redone
    assert summary["modes"]["procedural"]["lfw_accuracy_per_seed"] == [0.7, 0.7]
    assert f"`{GENERATOR_VERSION}`" in (tmp_path / "ab.md").read_text()
    ab.run_appearance_ab(**kwargs)
    assert len(trained) == 2  # current results are reused: the A/B resumes
