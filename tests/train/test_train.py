"""Training: resume exactness, domain mixup at psi = 1, DDP on gloo, config and data errors."""

import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from synface.config import ConfigError
from synface.errors import SynfaceError
from synface.train.config import load_train_config
from synface.train.loop import CHECKPOINT, Trainer

FAST = {
    "backbone": "mobilefacenet", "input_size": "56x48", "batch_size": 8, "compile": False, "amp": False,
    "workers": 0, "validation.identities": 0, "log_every": 1, "optim.epochs": 2, "optim.milestones": [1.5],
    "optim.lr": 0.05,
}


def config(**extra):
    return load_train_config("cpu", {**FAST, **extra})


def params(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in trainer.module.named_parameters()}


def test_resumed_run_ends_with_the_same_weights(tiny_synthetic, tmp_path):
    whole = Trainer(config(), tiny_synthetic, tmp_path / "whole", progress=False)
    whole.run()
    assert whole.step == 8  # 32 images / 8 per batch x 2 epochs
    first = Trainer(config(), tiny_synthetic, tmp_path / "split", progress=False)
    first.run(stop_at_step=3)  # "interrupted" after step 3, mid-epoch
    assert (tmp_path / "split" / CHECKPOINT).is_file()
    second = Trainer(config(), tiny_synthetic, tmp_path / "split", progress=False)
    second.run(resume=True)
    a, b = params(whole), params(second)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    losses = lambda t: [h["loss"] for h in t.history if "loss" in h]  # noqa: E731
    assert losses(whole) == losses(second)
    for name in ("metrics.csv", "metrics.json", "loss.png", "config.yaml"):
        assert (tmp_path / "split" / name).is_file()
    # a longer schedule may continue a run; a different step computation may not
    longer = Trainer(config(**{"optim.epochs": 3}), tiny_synthetic, tmp_path / "split", progress=False)
    assert longer.run(resume=True)["steps"] == 12
    with pytest.raises(SynfaceError, match=r"optim\.lr differ"):
        Trainer(config(**{"optim.lr": 0.2}), tiny_synthetic, tmp_path / "split", progress=False).run(resume=True)


def test_domain_mixup_with_psi_one_is_synthetic_only_training(tiny_synthetic, tiny_real, tmp_path):
    syn_only = Trainer(config(), tiny_synthetic, tmp_path / "syn", progress=False)
    syn_only.run(stop_at_step=3)
    mixed = Trainer(config(domain_mixup=[1.0]), tiny_synthetic, tmp_path / "mix", real=tiny_real, progress=False)
    assert mixed.module.head.num_classes == 8 + 4
    mixed.run(stop_at_step=3)
    a, b = params(syn_only), params(mixed)
    for key in a:
        if key == "head.weight":
            assert torch.equal(a[key], b[key][:8])
        else:
            assert torch.equal(a[key], b[key]), key
    # and with psi < 1 the real data does change the model
    other = Trainer(config(domain_mixup=[0.5]), tiny_synthetic, tmp_path / "mix2", real=tiny_real, progress=False)
    other.run(stop_at_step=3)
    first = next(iter(a))
    assert not torch.equal(params(other)[first], a[first])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, data: str, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    trainer = Trainer(config(), data, out, device="cpu", progress=False)
    trainer.run(stop_at_step=3)  # rank 0 writes the checkpoint
    trainer.close()


def test_two_process_ddp_matches_one_process_with_the_same_global_batch(tiny_synthetic, tmp_path):
    # One thread in every process: with tiny batches, the rounding differences between 1- and
    # 2-thread kernels grow within a few SGD steps and would hide what this test compares.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        single = Trainer(config(micro_batches=2), tiny_synthetic, tmp_path / "one", progress=False)
        single.run(stop_at_step=3)
    finally:
        torch.set_num_threads(threads)
    mp.start_processes(_ddp_worker, args=(2, _free_port(), str(tiny_synthetic), str(tmp_path / "two")),
                       nprocs=2, join=True, start_method="spawn")
    state = torch.load(tmp_path / "two" / CHECKPOINT, weights_only=False)
    losses = [h["loss"] for h in state["history"] if "loss" in h]
    one_losses = [h["loss"] for h in single.history if "loss" in h]
    assert len(losses) == 3 and losses == pytest.approx(one_losses, rel=1e-5, abs=1e-5)
    mine = params(single)
    for key, value in state["model"].items():
        if f"backbone.{key}" in mine:  # parameters; BN running stats differ by design (per-rank)
            torch.testing.assert_close(value, mine[f"backbone.{key}"], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(state["head"]["weight"], mine["head.weight"], rtol=1e-4, atol=1e-5)


def test_config_and_data_errors_are_clear(tiny_synthetic, tiny_real, tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key\(s\) 'lerning_rate'"):
        load_train_config("cpu", {"optim.lerning_rate": 0.1})
    with pytest.raises(SynfaceError, match="same dataset"):
        Trainer(config(), tiny_synthetic, tmp_path / "x", real=tiny_synthetic, progress=False)
    with pytest.raises(SynfaceError, match="holds synthetic data"):
        Trainer(config(), tiny_real, tmp_path / "x", real=tiny_synthetic, progress=False)
    with pytest.raises(SynfaceError, match="classes clash"):
        Trainer(config(), _copy(tiny_real, tmp_path), tmp_path / "x", real=tiny_real, progress=False)
    with pytest.raises(ConfigError, match="must divide"):
        Trainer(config(batch_size=8, micro_batches=3), tiny_synthetic, tmp_path / "x", progress=False)
    with pytest.raises(ConfigError, match=r"mixstyle.layers: no module stem"):
        Trainer(config(**{"mixstyle.p": 0.5, "mixstyle.layers": ["stem"]}), tiny_synthetic, tmp_path / "x",
                progress=False)


def test_mixstyle_changes_training_and_its_run_still_resumes_exactly(tiny_synthetic, tmp_path):
    mixed = config(**{"mixstyle.p": 1.0})
    plain = Trainer(config(), tiny_synthetic, tmp_path / "plain", progress=False)
    plain.run(stop_at_step=3)
    whole = Trainer(mixed, tiny_synthetic, tmp_path / "whole", progress=False)
    whole.run(stop_at_step=6)
    assert [h["loss"] for h in whole.history][:3] != [h["loss"] for h in plain.history]
    first = Trainer(mixed, tiny_synthetic, tmp_path / "split", progress=False)
    first.run(stop_at_step=3)
    second = Trainer(mixed, tiny_synthetic, tmp_path / "split", progress=False)
    second.run(resume=True, stop_at_step=6)
    a, b = params(whole), params(second)
    assert all(torch.equal(a[k], b[k]) for k in a), "the mixing draws are part of the checkpointed RNG"


def _copy(path, tmp_path):
    import shutil

    dst = tmp_path / "real-copy"
    shutil.copytree(path, dst)
    return dst


def test_a_time_budget_fits_the_run_to_the_machine_instead_of_cutting_it(tiny_synthetic, tmp_path, monkeypatch):
    """2,000 epochs of 4 steps at 1 s a step (a fake clock: the test must not depend on this
    machine's speed) cannot fit 30 seconds: the run measures its step rate over its first
    steps, plans fewer steps, compresses its lr schedule alike and finishes them."""
    import time
    import types

    import synface.train.loop as loop

    clock = [1000.0]
    monkeypatch.setattr(loop, "time", types.SimpleNamespace(time=lambda: clock[0], perf_counter=time.perf_counter))
    real_step = loop.Trainer._train_step

    def one_second_step(self, *args):
        clock[0] += 1.0
        return real_step(self, *args)

    monkeypatch.setattr(loop.Trainer, "_train_step", one_second_step)
    cfg = config(**{"optim.epochs": 2000, "optim.milestones": [1200, 1600], "time_budget_min": 0.5,
                    "fit_to_budget": True})
    trainer = Trainer(cfg, tiny_synthetic, tmp_path / "fit", progress=False)
    assert trainer.total_steps == 8000
    summary = trainer.run()
    fit = summary["fitted_to_budget"]
    assert fit["planned_steps"] == 8000 and fit["seconds_per_step"] == 1.0
    assert summary["steps"] == fit["steps"] == summary["planned_steps"] == 9 + int(21 - 0.05 * 30)
    assert not summary["stopped_by_time_budget"] and summary["preset_steps"] == 8000
    # the schedule keeps its shape: lr /10 at 60 % and 80 % of the fitted run
    steps = fit["steps"]
    assert trainer.lr_at(int(0.59 * steps)) == pytest.approx(0.05)
    assert trainer.lr_at(int(0.61 * steps) + 1) == pytest.approx(0.005)
    assert trainer.lr_at(steps - 1) == pytest.approx(0.0005)
    resumed = Trainer(cfg, tiny_synthetic, tmp_path / "fit", progress=False)
    assert resumed.run(resume=True)["steps"] == steps  # a fitted run resumes to its fitted length


def test_a_fitted_run_that_slows_down_refits_instead_of_hitting_its_deadline(tiny_synthetic, tmp_path, monkeypatch):
    """Fitted on 1 s steps, the run then slows to 3 s a step (a shared machine, a drained
    prefetch queue). At the next epoch's end it plans fewer steps again and finishes them
    before its deadline; without the re-fit the 30 s budget would cut it at step 19 of 28."""
    import time
    import types

    import synface.train.loop as loop

    clock = [1000.0]
    monkeypatch.setattr(loop, "time", types.SimpleNamespace(time=lambda: clock[0], perf_counter=time.perf_counter))
    real_step = loop.Trainer._train_step
    done = [0]

    def slowing_step(self, *args):
        done[0] += 1
        clock[0] += 1.0 if done[0] <= 12 else 3.0
        return real_step(self, *args)

    monkeypatch.setattr(loop.Trainer, "_train_step", slowing_step)
    cfg = config(**{"optim.epochs": 2000, "optim.milestones": [1200, 1600], "time_budget_min": 0.5,
                    "fit_to_budget": True})
    summary = Trainer(cfg, tiny_synthetic, tmp_path / "refit", progress=False).run()
    fit = summary["fitted_to_budget"]
    # fitted at step 9 to 28 steps at 1 s; at step 16 (12 s for the last epoch of 4 steps,
    # 3 s a step; 6 s left, 1.5 s of it spare) the run plans 16 + int(4.5 / 3) = 17
    assert fit["refits"] == 1 and fit["seconds_per_step"] == 3.0
    assert summary["steps"] == fit["steps"] == summary["planned_steps"] == 17
    assert not summary["stopped_by_time_budget"] and clock[0] - 1000.0 <= 30.0


def test_a_fitted_run_that_speeds_up_grows_back_without_raising_its_lr(tiny_synthetic, tmp_path, monkeypatch):
    """Fitted on 2 s steps, the run then takes 1 s a step: at epoch ends it plans more steps
    again (towards the planned ones) and still finishes before its deadline, and its lr never
    goes back up: stretching the compressed schedule stops at a milestone already passed."""
    import time
    import types

    import synface.train.loop as loop

    clock = [1000.0]
    monkeypatch.setattr(loop, "time", types.SimpleNamespace(time=lambda: clock[0], perf_counter=time.perf_counter))
    real_step, real_fit = loop.Trainer._train_step, loop.Trainer._fit_to_budget
    lrs, first_fit = [], []

    def speeding_step(self, *args):
        clock[0] += 2.0 if len(lrs) < 9 else 1.0
        loss = real_step(self, *args)
        lrs.append(self.optimizer.param_groups[0]["lr"])
        return loss

    def recording_fit(self, *args):
        real_fit(self, *args)
        first_fit.append(self.total_steps)

    monkeypatch.setattr(loop.Trainer, "_train_step", speeding_step)
    monkeypatch.setattr(loop.Trainer, "_fit_to_budget", recording_fit)
    cfg = config(**{"optim.epochs": 2000, "optim.milestones": [1200, 1600], "optim.warmup_epochs": 0.5,
                    "time_budget_min": 1.0, "fit_to_budget": True})
    summary = Trainer(cfg, tiny_synthetic, tmp_path / "grow", progress=False).run()
    fit = summary["fitted_to_budget"]
    assert first_fit == [28]  # 9 + int((42 s left - 3 s spare) / 2 s)
    assert fit["refits"] >= 2 and summary["steps"] == fit["steps"] == summary["planned_steps"] > 28
    assert not summary["stopped_by_time_budget"] and clock[0] - 1000.0 <= 60.0
    peak = lrs.index(max(lrs))
    assert all(later <= earlier for earlier, later in zip(lrs[peak:], lrs[peak + 1:])), lrs
    assert lrs[-1] == pytest.approx(0.05 * 0.01)  # both milestones passed


def test_training_writes_tensorboard_events_beside_metrics(tiny_synthetic, tmp_path):
    pytest.importorskip("tensorboard", reason="optional: pip install synface[tensorboard]")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "tb"
    Trainer(config(), tiny_synthetic, out, progress=False).run()
    events = EventAccumulator(str(out))
    events.Reload()
    losses = events.Scalars("train/loss")
    assert [e.step for e in losses] == [1, 2, 3, 4, 5, 6, 7, 8] and (out / "metrics.csv").is_file()
    assert "train/lr" in events.Tags()["scalars"]
    Trainer(config(), tiny_synthetic, out, progress=False).run(overwrite=True)
    assert len(list(out.glob("events.out.tfevents.*"))) == 1  # the replaced run's curves are gone
