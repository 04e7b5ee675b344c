import json
from dataclasses import replace

import pytest

import synface.experiments.reproduce.runner as runner
from synface.config import ConfigError
from synface.experiments.reproduce import reproduce, write_report
from synface.experiments.reproduce.report import (
    CONTRADICTED, NOT_RESOLVED, NOT_RUN, REPRODUCED, judge_claim, judge_pair,
)
from synface.experiments.reproduce.studies import (
    Claim, SCALES, load_study, plan_study, scaled_spec, ScaleDef, steps_to_epochs, study_names,
)
from synface.datasets.spec import load_spec

PAPER_STUDIES = {"cross-domain", "identity-mixup", "mixup-attack", "domain-mixup", "long-tail", "width-depth",
                 "attributes", "augmentation"}


def test_every_study_of_the_paper_ships_and_plans_at_every_scale(data_root):
    assert set(study_names()) == PAPER_STUDIES
    for name in study_names():
        study = load_study(name)
        for scale in SCALES:
            planned = plan_study(study, scale)
            assert [p.name for p in planned] == [r.name for r in study.runs]
    wd = {p.name: p for p in plan_study(load_study("width-depth"), "cpu")}
    # Table 3's equal-image diagonals stay equal when scaled: (a) 1K_50 and (e) 10K_5.
    assert wd["1K_50"].spec.num_images == wd["10K_5"].spec.num_images == 1000
    assert (wd["10K_50"].spec.identities, wd["10K_50"].spec.samples) == (200, 50)
    tail = {p.name: p for p in plan_study(load_study("long-tail"), "cpu")}
    assert [g.samples for g in tail["2K_UB1"].spec.group_list] == [2, 2, 6, 40, 200]
    assert tail["2K_UB1"].spec.num_images == tail["2K_50"].spec.num_images == 3000
    dm = {p.name: p for p in plan_study(load_study("domain-mixup"), "cpu")}
    assert (dm["Real_2K_10"].real_identities, dm["Real_2K_10"].real_samples) == (200, 10)
    assert dm["Mix_1K_20"].kind == "mix" and dm["Mix_1K_20"].spec.num_images == 6000
    paper = {p.name: p for p in plan_study(load_study("width-depth"), "paper")}
    assert paper["10K_50"].spec.num_images == 500_000 and paper["10K_50"].preset == "paper"


def test_scaling_keeps_groups_and_a_floor_of_people():
    spec = scaled_spec(load_spec("syn_2k_ub2"), ScaleDef(width=0.0025, depth=0.1))
    assert len(spec.group_list) == 5 and spec.num_identities == 5
    assert [g.samples for g in spec.group_list] == [1, 2, 3, 8, 12]
    assert scaled_spec(load_spec("syn_1k_50"), ScaleDef(width=0.001)).identities == 4  # never fewer than 4


def test_equal_steps_whatever_the_dataset_size(tmp_path, data_root):
    from synface.datasets.build import generate_dataset
    from synface.datasets.spec import resolve_spec
    from synface.train.config import load_train_config
    from synface.train.loop import Trainer

    data = tmp_path / "data"
    spec = resolve_spec(load_spec("syn1"), width=6, depth=5)
    generate_dataset(spec, data, workers=1, progress=False)
    cfg = load_train_config("cpu", {"batch_size": 8})
    changes = steps_to_epochs(7, spec.num_images, 8, tuple(cfg.optim.milestones), cfg.optim.epochs,
                              cfg.optim.warmup_epochs)
    cfg = load_train_config("cpu", {"batch_size": 8, **changes})
    assert Trainer(cfg, data, tmp_path / "run", progress=False).total_steps == 7  # 30 images: 3 a step-epoch
    assert cfg.optim.milestones[0] / cfg.optim.epochs == pytest.approx(0.6)  # the preset's shape kept
    with pytest.raises(ConfigError, match="do not fill one batch"):
        steps_to_epochs(5, 4, 8, (1.0,), 2, 0.0)


def _row(name, per_seed):
    import statistics

    return {"name": name, "mean": {"lfw": statistics.mean(per_seed)},
            "std": {"lfw": statistics.stdev(per_seed) if len(per_seed) > 1 else None}}


def test_verdicts_follow_the_seed_spread():
    a, b = _row("A", [0.80, 0.82]), _row("B", [0.70, 0.71])
    assert judge_pair(a, b, "lfw")["verdict"] == REPRODUCED
    assert judge_pair(b, a, "lfw")["verdict"] == CONTRADICTED
    close = _row("C", [0.795, 0.83])  # 0.5 points above A, spread 2.5
    assert judge_pair(close, a, "lfw")["verdict"] == NOT_RESOLVED
    assert judge_pair(_row("D", [0.9]), b, "lfw")["why"].startswith("one seed")
    assert judge_pair(a, None, "lfw")["verdict"] == NOT_RUN
    summary = {"rows": [a, b, close], "benchmarks": ["lfw"]}
    both = judge_claim(Claim("x", "A beats B and C", [["A", "B"], ["C", "B"]]), summary)
    assert both["verdict"] == REPRODUCED and [p["verdict"] for p in both["pairs"]] == [REPRODUCED] * 2
    mixed = judge_claim(Claim("y", "", [["A", "B"], ["B", "C"]]), summary)
    assert mixed["verdict"] == CONTRADICTED
    unsure = judge_claim(Claim("z", "", [["A", "B"], ["C", "A"]]), summary)
    assert unsure["verdict"] == NOT_RESOLVED


def test_bad_studies_are_refused_with_the_name(tmp_path, data_root):
    good = load_study("augmentation")
    base = (tmp_path / "s.yaml")

    def refused(text, match):
        base.write_text(text)
        with pytest.raises(ConfigError, match=match):
            load_study(base)

    head = "name: s\npaper: x\ntitle: t\nscales: {cpu: {}}\n"
    refused(head + "runs: [{name: A, spec: syn1}]\nclaims: [{id: c, text: t, pairs: [[A, B]]}]\n",
            "claim c names run 'B'")
    refused(head + "runs: [{name: A, spec: syn1}]\nbenchmarks: [cfp]\n", "unknown benchmark 'cfp'")
    refused(head + "runs: [{name: A, spec: syn1, colour: red}]\n", "unknown key")
    refused(head + "runs: [{name: A, spec: nope}]\n", "unknown dataset spec 'nope'")
    refused(head.replace("cpu", "huge") + "runs: [{name: A, spec: syn1}]\n", "unknown scale 'huge'")
    refused(head + "runs: [{name: A, spec: syn1, real: celeba-299}]\n", "need mix: true")
    with pytest.raises(Exception, match="unknown study 'nope'"):
        load_study("nope")
    with pytest.raises(ConfigError, match="unknown scale 'huge'"):
        runner.Reproduction("huge")
    with pytest.raises(ConfigError, match="no 'smoke' scale"):
        plan_study(replace(good, scales={}), "smoke")


def test_smoke_reproduction_runs_every_study_resumes_and_renders_the_same_report(tmp_path, monkeypatch, small_lfw):
    kwargs = dict(scale="smoke", out=tmp_path / "runs", data=tmp_path / "data", reports=tmp_path / "reports",
                  workers=1, progress=False)
    trained = []
    real_train = runner.train_evaluate

    def counting_train(*args, **kw):
        trained.append(args[2])
        return real_train(*args, **kw)

    monkeypatch.setattr(runner, "train_evaluate", counting_train)
    # A reproduction killed after its first run: that run is kept.
    calls = {"n": 0}
    real_job = runner.Reproduction.run_job

    def dies_on_second(self, job):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real_job(self, job)

    monkeypatch.setattr(runner.Reproduction, "run_job", dies_on_second)
    with pytest.raises(KeyboardInterrupt):
        reproduce(["augmentation"], **kwargs)
    assert len(trained) == 1
    monkeypatch.setattr(runner.Reproduction, "run_job", real_job)

    summaries = reproduce(None, **kwargs)
    assert {s["study"] for s in summaries} == PAPER_STUDIES
    assert len(trained) == len(set(trained))  # no run trained twice, the killed study's first included
    report = tmp_path / "reports" / "reproduction.md"
    first = report.read_text()
    for summary in summaries:
        saved = json.loads((tmp_path / "reports" / "reproduction" / summary["study"] / "smoke.json").read_text())
        assert saved["scale"] == "smoke" and saved["claims"] and all(c["verdict"] for c in saved["claims"])
        for row in saved["rows"]:
            for bench in saved["benchmarks"]:
                if bench != "intra_spread":
                    assert 0.0 <= row["mean"][bench] <= 1.0
        for image in saved["plots"]:
            assert (tmp_path / "reports" / "reproduction" / summary["study"] / image).stat().st_size > 1000
        assert f"## {summary['study']} (" in first
    attack = json.loads((tmp_path / "reports" / "reproduction" / "mixup-attack" / "smoke.json").read_text())
    assert set(attack["rows"][0]["mean"]) == {"syn-lfw", "syn-lfw-0.9", "syn-lfw-0.8", "syn-lfw-0.7", "syn-lfw-0.6"}
    mixup = json.loads((tmp_path / "reports" / "reproduction" / "identity-mixup" / "smoke.json").read_text())
    assert "intra_spread" in mixup["rows"][0]["mean"] and "smoke_mds.png" in mixup["plots"]
    # Shared runs: cross-domain's SynFace is identity-mixup's Syn1 and the attack's SynFace.
    keys = lambda s, n: [p["key"] for p in next(r for r in s["rows"] if r["name"] == n)["per_seed"]]
    cross = json.loads((tmp_path / "reports" / "reproduction" / "cross-domain" / "smoke.json").read_text())
    assert keys(cross, "SynFace") == keys(mixup, "Syn1") == keys(attack, "SynFace")

    count = len(trained)
    bars = []
    real_tqdm = runner.tqdm
    monkeypatch.setattr(runner, "tqdm", lambda *a, **kw: bars.append(kw) or real_tqdm(*a, **kw))
    reproduce(None, **kwargs)
    assert len(trained) == count  # resumed: every finished run skipped
    # Runs trained before are no work left: the bar (and its ETA) counts none of them.
    assert bars[0]["total"] == 0 and f"({count} runs, {count} trained before)" in bars[0]["desc"]
    assert report.read_text() == first
    report.unlink()
    write_report(tmp_path / "reports")  # `synface reproduce report`: from the JSON alone
    assert report.read_text() == first


def test_paper_scale_trains_each_run_under_torchrun_with_its_exact_config(tmp_path, data_root):
    repro = runner.Reproduction("paper", out=tmp_path / "runs", data=tmp_path / "data", gpus=8, progress=False)
    job = next(j for j in repro.jobs(load_study("domain-mixup")) if j["run"].name == "Mix_1K_10")
    command = runner.torchrun_command(job, repro.gpus)
    assert command[:6] == ["torchrun", "--standalone", "--nproc_per_node=8", "-m", "synface.cli", "train"]
    assert command[6] == "paper" and command[command.index("--real") + 1] == str(job["real"])
    sets = dict(item.split("=", 1) for item in command[command.index("--set") + 1::2])
    assert sets["seed"] == "0" and "--resume" not in command
    from synface.cli import parse_overrides
    from synface.train.config import load_train_config

    rebuilt = load_train_config("paper", parse_overrides([f"{k}={v}" for k, v in sets.items()]))
    assert rebuilt == job["config"]  # what torchrun trains is what the run's key names
    assert job["spec"].num_images == 500_000 and job["config"].backbone == "lresnet50e_ir"


def test_the_readme_verdict_table_is_replaced_between_its_markers(tmp_path):
    from synface.experiments.reproduce.suite import README_END, README_START, update_readme

    summary = {"study": "augmentation", "paper": "Appendix A", "scale": "cpu", "claims": [
        {"text": "Jitter helps", "paper": "88.98 -> 91.23", "verdict": REPRODUCED, "pairs": [{"verdict": REPRODUCED}]}]}
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n{README_START}\nold table\n{README_END}\ntail\n")
    assert update_readme(readme, [summary], ["width-depth"])
    text = readme.read_text()
    assert "old table" not in text and text.startswith("# x\n") and text.endswith(f"{README_END}\ntail\n")
    assert "| augmentation | Appendix A | Jitter helps | 88.98 -> 91.23 | **reproduced** (1 reproduced) |" in text
    assert "Not yet run at `cpu` scale: `width-depth`." in text
    plain = tmp_path / "PLAIN.md"
    plain.write_text("no markers\n")
    assert not update_readme(plain, [summary], []) and plain.read_text() == "no markers\n"


def test_cpu_scale_studies_share_their_common_runs(tmp_path, data_root):
    """The cpu suite fits its time by training a run that several studies ask for once."""
    repro = runner.Reproduction("cpu", out=tmp_path / "runs", data=tmp_path / "data", progress=False)
    keys = {study: {(j["run"].name, j["seed"]): j["key"] for j in repro.jobs(load_study(study))}
            for study in ("identity-mixup", "mixup-attack", "domain-mixup", "cross-domain")}
    for seed in (0, 1):
        assert keys["identity-mixup"][("Syn1", seed)] == keys["mixup-attack"][("SynFace", seed)]
        assert keys["identity-mixup"][("Syn3", seed)] == keys["mixup-attack"][("SynFace_IM", seed)]
        assert keys["identity-mixup"][("RealFace", seed)] == keys["mixup-attack"][("RealFace", seed)]
        assert keys["identity-mixup"][("Syn3", seed)] == keys["domain-mixup"][("Syn_10K_50", seed)]
        # The cross-domain study keeps the demo budget (its real-photo anchor), so its own runs.
        assert keys["cross-domain"][("RealFace", seed)] != keys["identity-mixup"][("RealFace", seed)]


def test_the_cost_section_counts_a_shared_run_once_and_checks_the_cpu_goals():
    from synface.experiments.reproduce.report import cost_lines, suite_minutes

    def seed(key, train_s, score_s):
        return {"key": key, "seconds": {"data_s": 60.0, "train_s": train_s}, "score_s": score_s}

    shared = seed("k1", 540.0, {"lfw": 60.0})
    a = {"study": "a", "scale": "cpu", "seconds": 3600.0,
         "rows": [{"steps": 110, "per_seed": [shared, seed("k2", 1740.0, {"lfw": 60.0})]}]}
    b = {"study": "b", "scale": "cpu", "seconds": 3000.0,
         "rows": [{"steps": 100, "per_seed": [{**shared, "score_s": {"syn-lfw": 120.0}}, seed("k3", 2340.0, {})]}]}
    total, runs, unscored = suite_minutes([a, b], "cpu")
    # k1 once (10 min) scored on lfw and syn-lfw (3 min), k2 31 min, k3 40 min.
    assert (runs, unscored) == (3, 0) and total == pytest.approx(84.0)
    text = "\n".join(cost_lines([a, b], "cpu"))
    assert "| a | 110 | 60 | ≤ 45: **missed** |" in text and "| b | 100 | 50 | ≤ 45: **missed** |" in text
    assert "3 distinct runs, 84 min" in text and "(goal ≤ 180: **met**)" in text
