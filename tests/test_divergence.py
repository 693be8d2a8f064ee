"""One divergence detection for every task: a run whose training loss or parameters stop being finite
ends ``status: diverged`` with the task, the step and what went non-finite, and no metric is computed on
its parameters (before, vision and PPO ended ``failed (internal error): _LinAlgError`` from their rank
metrics)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from symexp.divergence import Diverged, loss_members, nonfinite_members
from symexp.run import run
from tests.conftest import compose_cfg

RFLR = ["model.width=16", "model.rank=4", "model.depth=1", "data.n_train=8", "data.n_val=8", "task.val_every=1",
        "task.epochs=4"]
# (name, overrides that make training blow up, the task class the reason names)
DIVERGING = [
    ("vision", ["experiment=syre_fcn", "budget=smoke", "task.optimizer.lr=1e12"], "ClassificationTask"),
    ("ppo", ["experiment=ppo_shifting_pendulum_vanilla", "budget=smoke", "data.num_envs=2", "task.total_steps=512",
             "task.rollout_steps=128", "task.optimizer.lr=1e12"], "PPOTask"),
    ("rflr", [*RFLR, "task.optimizer._target_=torch.optim.SGD", "task.optimizer.lr=1e6"], "RegressionTask"),
    ("objective", ["experiment=syre_teacher_student", "budget=smoke", "task.optimizer.lr=1e12"], None),
]


def _results(root: Path) -> dict:
    (path,) = root.rglob("results.json")
    return json.loads(path.read_text())


@pytest.mark.parametrize("overrides,task_class", [d[1:] for d in DIVERGING], ids=[d[0] for d in DIVERGING])
def test_a_blown_up_run_is_recorded_diverged_before_any_metric(overrides, task_class, tmp_path, tmp_outputs,
                                                                monkeypatch):
    from symexp.symmetry.callback import SymmetryMetrics

    def no_metrics(self, task):
        raise AssertionError("metrics computed on a diverged run")

    monkeypatch.setattr(SymmetryMetrics, "compute", no_metrics)
    run(compose_cfg(overrides + ["save_checkpoints=false"] + tmp_outputs))
    res = _results(tmp_path)
    assert res["status"] == "diverged", res.get("traceback", res["error"])
    assert res["metrics"] == {} and all(m["status"] == "diverged" for m in res["members"])
    assert "traceback" not in res
    assert " diverged at step " in res["error"]
    assert ("loss is" in res["error"]) or ("parameter " in res["error"]) or ("divergence_loss" in res["error"])
    if task_class:
        assert res["error"].startswith(task_class)


def test_a_healthy_run_is_not_called_diverged(tmp_path, tmp_outputs):
    run(compose_cfg([*RFLR, "task.epochs=2"] + tmp_outputs))
    res = _results(tmp_path)
    assert res["status"] == "ok" and res["error"] is None and res["metrics"]


def test_a_nan_parameter_marks_only_its_member():
    w = torch.zeros(3, 4, 2)
    w[1, 2, 0] = float("nan")
    bad, name = nonfinite_members([("ok", torch.ones(3, 5)), ("w", w)], members=3)
    assert bad.tolist() == [False, True, False] and name == "w"
    bad, name = nonfinite_members([("shared", torch.tensor([float("inf")]))], members=3)
    assert bad.tolist() == [True, True, True] and name == "shared"
    assert nonfinite_members([("ok", torch.ones(2))], members=1)[1] is None


def test_a_loss_marks_members_by_value_or_by_limit():
    assert loss_members(torch.tensor([1.0, float("nan"), 3e6]), 3, 1e6).tolist() == [False, True, True]
    assert loss_members(torch.tensor(float("inf")), 2, float("inf")).tolist() == [True, True]
    assert loss_members(torch.tensor(1.0), 2, float("inf")).tolist() == [False, False]


def test_partial_ensemble_divergence_keeps_going_and_names_the_member():
    from symexp.run import build

    task = build(compose_cfg([*RFLR, "ensemble.size=3", "logger=none"]))["task"]
    task.check_divergence(torch.tensor([0.1, float("nan"), 0.2]), parameters=False)
    assert task.member_status() == ["ok", "diverged", "ok"]
    assert task.divergence_reason == "RegressionTask diverged at step 0: training loss is nan (member 1)"
    with pytest.raises(Diverged):
        task.check_divergence(torch.tensor([float("inf"), 0.0, float("nan")]), parameters=False)
    assert task.member_status() == ["diverged"] * 3
