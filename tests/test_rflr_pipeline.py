"""The RF-LR study through the real pipeline: smoke run, frozen features, ensembles = solo runs,
divergence recorded, W&B offline folder, determinism."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from symexp.models.rflr import RFLR
from symexp.run import run
from tests.conftest import compose_cfg

TINY = ["model.width=32", "model.rank=4", "model.depth=2", "data.n_train=16", "data.n_val=16", "task.val_every=2"]


def _job(tmp_path: Path) -> Path:
    (res,) = list(tmp_path.rglob("results.json"))
    return res.parent


def _ckpt_state(job: Path) -> dict:
    return torch.load(job / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]


def test_smoke_run_writes_valid_results_and_figure(tmp_path, tmp_outputs):
    run(compose_cfg(TINY + ["task.epochs=4"] + tmp_outputs))
    job = _job(tmp_path)
    res = json.loads((job / "results.json").read_text())
    assert res["schema"] == 1 and res["status"] == "ok" and res["error"] is None
    for key in ("test/mse", "sym/output_defect", "sym/partial_defect", "sym/partial_defect_max",
                "sym/mirror_mismatch", "sym/mirror_corr", "regime"):
        assert key in res["metrics"], key
        assert key in res["members"][0]["metrics"]
    assert res["config"]["model"]["width"] == 32
    assert res["env"]["torch"] == torch.__version__ and "git_sha" in res["env"]
    assert res["timing"]["train_steps"] == 4 * 16
    assert (job / "figures" / "partials.png").stat().st_size > 1000
    assert (job / "checkpoints" / "last.ckpt").exists()


def test_frozen_features_never_change_and_mixers_do(tmp_path, tmp_outputs):
    run(compose_cfg(TINY + ["task.epochs=3", "seed=5"] + tmp_outputs))
    state = _ckpt_state(_job(tmp_path))
    fresh = RFLR(in_dim=1, width=32, rank=4, depth=2, seeds=[5])
    for l in range(3):
        assert torch.equal(state[f"model.A{l}"], getattr(fresh, f"A{l}"))
        assert torch.equal(state[f"model.b{l}"], getattr(fresh, f"b{l}"))
        assert not torch.equal(state[f"model.mixers.{l}"], fresh.mixers[l].detach())


def test_ensemble_member_equals_solo_run(tmp_path, tmp_outputs):
    """Member k of an ensemble trained for 160 optimizer steps equals the solo run with seed k."""
    common = TINY + ["task.epochs=10", "task.val_every=5", "data=gauss2d", "data.grid_points=11"]
    run(compose_cfg(common + ["ensemble.size=3", f"paths.output_root={tmp_path}/ens"] + tmp_outputs[1:]))
    run(compose_cfg(common + ["seed=2", f"paths.output_root={tmp_path}/solo"] + tmp_outputs[1:]))
    ens, solo = _job(tmp_path / "ens"), _job(tmp_path / "solo")
    s_ens, s_solo = _ckpt_state(ens), _ckpt_state(solo)
    for name in ("model.mixers.0", "model.mixers.1", "model.mixers.2", "best_0", "model.A1"):
        torch.testing.assert_close(s_ens[name][2], s_solo[name][0], rtol=1e-5, atol=1e-6)
    r_ens = json.loads((ens / "results.json").read_text())["members"][2]
    r_solo = json.loads((solo / "results.json").read_text())["members"][0]
    assert r_ens["seed"] == r_solo["seed"] == 2
    assert abs(r_ens["metrics"]["test/mse"] - r_solo["metrics"]["test/mse"]) <= 1e-5 * abs(r_solo["metrics"]["test/mse"]) + 1e-9


def test_same_seed_same_numbers(tmp_path, tmp_outputs):
    for i in range(2):
        run(compose_cfg(TINY + ["task.epochs=2", f"paths.output_root={tmp_path}/{i}"] + tmp_outputs[1:]))
    a, b = (json.loads((_job(tmp_path / str(i)) / "results.json").read_text())["metrics"] for i in range(2))
    assert a == b


def test_divergence_is_recorded_not_raised(tmp_path, tmp_outputs):
    bad = ["task.optimizer._target_=torch.optim.SGD", "task.optimizer.lr=1e6", "task.epochs=4"]
    run(compose_cfg(TINY + bad + tmp_outputs))
    res = json.loads((_job(tmp_path) / "results.json").read_text())
    assert res["status"] == "diverged"
    assert res["members"][0]["status"] == "diverged"
    assert res["error"].startswith("RegressionTask diverged at step ")
    assert res["metrics"] == {}, "no metric is computed on diverged parameters"


def test_wandb_offline_run_folder_is_written(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    run(compose_cfg(TINY + ["task.epochs=2", f"paths.output_root={tmp_path}", "logger=wandb", "progress=none"]))
    runs = list((_job(tmp_path) / "wandb").glob("offline-run-*"))
    assert runs, "an offline W&B run folder must exist in the job folder"
    assert any(p.suffix == ".wandb" for p in runs[0].iterdir())


STEP_LR = ["task.scheduler.step_size=2", "task.scheduler.gamma=0.5"]


def test_lr_schedule_steps_once_per_data_epoch_in_both_engines(tmp_path, tmp_outputs):
    """MMNN's StepLR recipe: after 6 epochs with step 2 the rate is lr * 0.5^3, and the fused engine, which
    reads the rate at every call, follows the same trajectory as the autograd reference; so does the graph
    engine (its eager step on CPU), whose tensor lr never reaches the checkpoint."""
    import pytest

    from symexp.engines.fused import build_error

    common = TINY + STEP_LR + ["task.epochs=6", "task.steps_per_call=16"]
    engines = ["autograd", "graph"] + ([] if build_error() is not None else ["fused"])
    states = {}
    for engine in engines:
        run(compose_cfg(common + [f"task.engine={engine}", f"paths.output_root={tmp_path}/{engine}"] + tmp_outputs[1:]))
        ckpt = torch.load(_job(tmp_path / engine) / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
        lr = ckpt["optimizer_states"][0]["param_groups"][0]["lr"]
        assert isinstance(lr, float) and lr == pytest.approx(1e-3 * 0.5**3)
        assert ckpt["lr_schedulers"][0]["last_epoch"] == 6
        states[engine] = ckpt["state_dict"]
    for engine in engines[1:]:
        for name in ("model.mixers.0", "model.mixers.1", "model.mixers.2"):
            torch.testing.assert_close(states[engine][name], states["autograd"][name], rtol=1e-4, atol=1e-6)
