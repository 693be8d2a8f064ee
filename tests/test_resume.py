"""Runs that survive: a job killed mid-run and rerun ends with exactly the numbers of an uninterrupted
run; a folder of another config is refused with the differing keys named; a failed rerun keeps the good
results.json; a finished job is skipped."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import pytest
import torch

import symexp.run as run_module
from symexp.run import run
from tests.conftest import ROOT, compose_cfg

QUIET = ["logger=none", "progress=none"]
RFLR = ["model.width=32", "model.rank=4", "model.depth=2", "data.n_train=16", "data.n_val=16",
        "task.epochs=12", "task.val_every=2", "checkpoint.every_n_epochs=1"]


def _results(job: Path) -> dict:
    return json.loads((job / "results.json").read_text())


def _same_numbers(a: dict, b: dict) -> None:
    assert a["status"] == b["status"] == "ok"
    assert a["metrics"] == b["metrics"]
    assert [m["metrics"] for m in a["members"]] == [m["metrics"] for m in b["members"]]
    assert a["timing"]["train_steps"] == b["timing"]["train_steps"]


def _params(job: Path) -> dict:
    return torch.load(job / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]


class _Crash(L.Callback):
    """Dies in the first batch of a Lightning epoch, after the previous epoch's checkpoint was written."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.current_epoch == self.epoch:
            raise RuntimeError("simulated node failure")


def _crash_at(monkeypatch, epoch: int) -> None:
    real = run_module._trainer

    def with_crash(cfg, task, out_dir, logger, callbacks, limits=None):
        return real(cfg, task, out_dir, logger, [*callbacks, _Crash(epoch)], limits)

    monkeypatch.setattr(run_module, "_trainer", with_crash)


def _interrupted_then_resumed(monkeypatch, tmp_path: Path, overrides: list[str], crash_epoch: int) -> tuple[dict, dict]:
    cfg = compose_cfg(overrides + QUIET)
    run(cfg, tmp_path / "full")
    with monkeypatch.context() as m:
        _crash_at(m, crash_epoch)
        with pytest.raises(RuntimeError, match="simulated node failure"):
            run(cfg, tmp_path / "part")
    assert (tmp_path / "part" / "checkpoints" / "last.ckpt").exists()
    assert _results(tmp_path / "part")["status"] == "failed"
    run(cfg, tmp_path / "part")
    resumed = _results(tmp_path / "part")
    assert resumed["timing"]["resumed_from"].endswith("last.ckpt")
    return _results(tmp_path / "full"), resumed


def test_rflr_sigkill_mid_run_then_rerun_gives_the_uninterrupted_numbers(tmp_path):
    """The real thing: SIGKILL a launch.py process once it has checkpointed, rerun the same command."""
    base = [sys.executable, str(ROOT / "launch.py"), *RFLR, "task.epochs=400", "task.val_every=20",
            "budget=smoke", *QUIET]
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONPATH": str(ROOT)}
    full, part = tmp_path / "full", tmp_path / "part"
    proc = subprocess.Popen([*base, f"hydra.run.dir={part}"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    ckpt = part / "checkpoints" / "last.ckpt"
    deadline = time.time() + 240
    while not ckpt.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_mid_run = not (part / "results.json").exists() or _results(part)["status"] != "ok"
    subprocess.run([*base, f"hydra.run.dir={part}"], env=env, check=True, capture_output=True)
    subprocess.run([*base, f"hydra.run.dir={full}"], env=env, check=True, capture_output=True)
    assert killed_mid_run, "the job finished before it could be killed; lengthen it"
    _same_numbers(_results(full), _results(part))
    assert _results(part)["timing"]["resumed_from"]
    for key, value in _params(full).items():
        assert torch.equal(value, _params(part)[key]), key


def test_vision_task_resumes_to_the_same_numbers(monkeypatch, tmp_path):
    full, resumed = _interrupted_then_resumed(
        monkeypatch, tmp_path, ["experiment=syre_fcn", "budget=smoke", "task.epochs=4", "checkpoint.every_n_epochs=1",
                                "syre=static_bias", "data.augment=true"], crash_epoch=2)
    _same_numbers(full, resumed)
    for key, value in _params(tmp_path / "full").items():
        assert torch.equal(value, _params(tmp_path / "part")[key]), key


def test_ppo_resumes_to_the_same_numbers(monkeypatch, tmp_path):
    pytest.importorskip("gymnasium")
    full, resumed = _interrupted_then_resumed(
        monkeypatch, tmp_path, ["experiment=ppo_shifting_pendulum_syre", "budget=smoke", "checkpoint.every_n_epochs=1",
                                "task.iterations_per_epoch=1"], crash_epoch=1)
    _same_numbers(full, resumed)


def test_regression_resume_in_process_matches_with_scheduler_and_syre(monkeypatch, tmp_path):
    full, resumed = _interrupted_then_resumed(
        monkeypatch, tmp_path, [*RFLR, "syre=static_bias", "task.scheduler.step_size=3"], crash_epoch=3)
    _same_numbers(full, resumed)


def test_mismatching_checkpoint_is_refused_naming_the_keys(tmp_path, capsys):
    run(compose_cfg([*RFLR, "task.epochs=2", *QUIET]), tmp_path)
    good = (tmp_path / "results.json").read_text()
    with pytest.raises(SystemExit, match=r"resume: .*seed: 0 -> 1.*model\.rank: 4 -> 2|resume: .*model\.rank: 4 -> 2.*seed: 0 -> 1"):
        run(compose_cfg([*RFLR, "task.epochs=2", "seed=1", "model.rank=2", *QUIET]), tmp_path)
    assert (tmp_path / "results.json").read_text() == good, "a refused rerun must not touch the good results"
    assert not (tmp_path / "results.failed.json").exists(), "a refused rerun leaves no failure record"
    run(compose_cfg([*RFLR, "task.epochs=2", "seed=1", "resume=never", *QUIET]), tmp_path)
    assert _results(tmp_path)["seed"] == 1 and _results(tmp_path)["config"]["seed"] == 1


def test_failed_rerun_keeps_the_good_results(monkeypatch, tmp_path):
    cfg = compose_cfg([*RFLR, "task.epochs=2", *QUIET])
    run(cfg, tmp_path)
    good = (tmp_path / "results.json").read_text()
    with monkeypatch.context() as m:
        _crash_at(m, 0)
        with pytest.raises(RuntimeError):
            run(compose_cfg([*RFLR, "task.epochs=2", "resume=never", *QUIET]), tmp_path)
    assert (tmp_path / "results.json").read_text() == good
    failed = json.loads((tmp_path / "results.failed.json").read_text())
    assert failed["status"] == "failed" and "simulated node failure" in failed["error"]
    assert "Traceback" in failed["traceback"]


def test_finished_job_is_skipped_and_returns_its_objective(monkeypatch, tmp_path):
    cfg = compose_cfg([*RFLR, "task.epochs=2", *QUIET])
    first = run(cfg, tmp_path)
    monkeypatch.setattr(run_module, "build", lambda cfg: pytest.fail("a finished job must not be rebuilt"))
    assert run(compose_cfg([*RFLR, "task.epochs=2", "logger=csv", "progress=plain"]), tmp_path) == first


def test_checkpoint_holds_the_resolved_config_and_is_world_readable(tmp_path):
    run(compose_cfg([*RFLR, "task.epochs=2", *QUIET]), tmp_path)
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["symexp"]["config"]["model"]["rank"] == 4
    assert ckpt["symexp"]["fingerprint"] == _results(tmp_path)["fingerprint"]
    assert "${" not in (tmp_path / "config.resolved.yaml").read_text()
    for name in ("results.json", "fingerprint.json", "checkpoints/last.ckpt"):
        assert (tmp_path / name).stat().st_mode & 0o044 == 0o044, name


def test_checkpoints_are_written_mid_run_by_the_fraction_rule(tmp_path):
    """Default cadence: every 10% of the run, even though the batch-1 engines never move global_step."""
    saves = []
    real = run_module._checkpoint_callback

    def spy(*args, **kwargs):
        cb = real(*args, **kwargs)
        saves.append(cb)
        return cb

    run_module_callback = run_module._checkpoint_callback
    try:
        run_module._checkpoint_callback = spy
        run(compose_cfg([*RFLR[:-1], "task.epochs=40", "task.val_every=2", *QUIET]), tmp_path)
    finally:
        run_module._checkpoint_callback = run_module_callback
    assert saves[0].saves == 10 + 1  # 20 Lightning epochs, every 2 of them, plus the end of training


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["gen_relu", "syre_symbench", "syre_vae", "syre_simclr task.epochs=2",
                                    "syre_continual", "syre_lmc task.epochs=2", "syre_teacher_student",
                                    "syre_resnet task.epochs=2", "syre_resnet task.epochs=2 task.scheduler=null"])
def test_every_task_family_resumes_to_the_same_numbers(monkeypatch, tmp_path, preset):
    name, *extra = preset.split()
    full, resumed = _interrupted_then_resumed(
        monkeypatch, tmp_path, [f"experiment={name}", *extra, "budget=smoke", "checkpoint.every_n_epochs=1",
                                "save_checkpoints=true"], crash_epoch=1)
    _same_numbers(full, resumed)
