"""symexp.evaluate: a job folder's checkpoint re-evaluated without training gives its results.json
numbers; metric selections can change; interrupted jobs evaluate at their checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from symexp.evaluate import evaluate, main
from symexp.run import run
from tests.conftest import compose_cfg
from tests.test_resume import QUIET, RFLR, _crash_at


def _res(path: Path) -> dict:
    return json.loads(path.read_text())


def test_evaluate_reproduces_results_exactly_and_can_reselect_metrics(tmp_path):
    run(compose_cfg([*RFLR, "task.epochs=4", *QUIET]), tmp_path)
    out = evaluate(tmp_path, ["progress=none"])
    original, again = _res(tmp_path / "results.json"), _res(out / "results.json")
    assert again["status"] == "ok" and again["metrics"] == original["metrics"]
    assert (out / "figures" / "partials.png").exists()
    out = evaluate(tmp_path, ["metric=[output_defect]", "data.grid_points=41", "progress=none"])
    fewer = _res(out / "results.json")["metrics"]
    assert "sym/output_defect" in fewer and "sym/partial_defect" not in fewer
    assert fewer["test/mse"] == original["metrics"]["test/mse"]  # 1D grids keep >= 2001 points
    assert _res(out / "results.json")["config"]["data"]["grid_points"] == 41


def test_evaluate_an_interrupted_job_at_its_checkpoint(monkeypatch, tmp_path):
    with monkeypatch.context() as m:
        _crash_at(m, 3)
        with pytest.raises(RuntimeError):
            run(compose_cfg([*RFLR, *QUIET]), tmp_path)
    out = evaluate(tmp_path, ["progress=none"])
    res = _res(out / "results.json")
    assert res["status"] == "ok" and res["timing"]["train_steps"] == 3 * 2 * 16  # 3 Lightning epochs of 2 data epochs
    assert _res(tmp_path / "results.json")["status"] == "failed"  # the job's own record is untouched


def test_evaluate_refuses_what_defines_training_and_non_job_folders(tmp_path, capsys):
    assert main([str(tmp_path)]) == 2
    assert "not a symexp job folder" in capsys.readouterr().err
    run(compose_cfg([*RFLR, "task.epochs=2", *QUIET]), tmp_path)
    assert main([str(tmp_path), "model.rank=2"]) == 2
    assert "model.rank: defines what was trained" in capsys.readouterr().err
