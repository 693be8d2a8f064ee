"""W&B runs a user can work with: the sweep summary run carries the sweep's config and a numeric table,
summary.md rendered; training runs have one step axis, one row per step and per-member metrics; eval and
audit runs are named, grouped and tagged like their training run."""

from __future__ import annotations

import json

import pytest

from tests.wandb_records import offline_runs


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")


def _fake_sweep(tmp_path, n_jobs=2):
    """A two-job sweep folder as Hydra and symexp.run leave it (overrides, multirun.yaml, results.json)."""
    sweep = tmp_path / "sweeps" / "demo" / "2026-01-01_00-00-00"
    (sweep).mkdir(parents=True)
    (sweep / "multirun.yaml").write_text("hydra:\n  sweeper:\n    params:\n      model.rank: 8,128\n")
    for i, rank in enumerate((8, 128)[:n_jobs]):
        job = sweep / str(i)
        (job / ".hydra").mkdir(parents=True)
        (job / ".hydra" / "overrides.yaml").write_text(f"- model.rank={rank}\n- budget=smoke\n")
        members = [{"seed": s, "status": "ok", "metrics": {"test/mse": 1e-3 * (s + 1), "regime": "symmetric"}}
                   for s in range(2)]
        (job / "results.json").write_text(json.dumps({
            "status": "ok", "name": "rflr_table1_quad2d", "members": members, "metrics": members[0]["metrics"],
            "config": {"logger": {"mode": "offline", "project": "p"}, "model": {"rank": rank, "width": 64},
                       "seed": 0}}))
    return sweep


def test_summary_run_has_the_sweep_config_a_numeric_table_and_rendered_markdown(tmp_path):
    from symexp.report.aggregate import collect
    from symexp.report.wandb_summary import log_summary

    sweep = _fake_sweep(tmp_path)
    md = sweep / "summary.md"
    md.write_text("# symexp summary\n\n| a | b |\n|---|---|\n| 1 | 2 |\n")
    log_summary(sweep, collect(sweep), md, {})
    (rec,) = offline_runs(sweep)
    cfg = rec["config"]
    assert cfg["sweep"]["swept"] == {"model.rank": ["8", "128"]}
    assert cfg["model"] == {"width": 64}, "the shared config keeps what the jobs agree on"
    (table_file,) = list(sweep.glob("wandb/offline-run-*/files/media/table/summary/members_*.table.json"))
    table = json.loads(table_file.read_text())
    col = {c: i for i, c in enumerate(table["columns"])}
    cells = [row[col["test/mse"]] for row in table["data"]]
    assert cells and all(isinstance(c, float) for c in cells), cells
    assert all(isinstance(row[col["rank"]], float) for row in table["data"])
    assert {row[col["regime"]] for row in table["data"]} == {"symmetric"}
    (html_file,) = list(sweep.glob("wandb/offline-run-*/files/media/html/summary/markdown_*.html"))
    html = html_file.read_text()
    assert "<table>" in html and "<h1>symexp summary</h1>" in html and "<pre>" not in html


TINY = ["model.width=32", "model.rank=4", "model.depth=2", "data.n_train=16", "data.n_val=16", "task.val_every=1",
        "task.epochs=3", "logger=wandb", "progress=none", "ensemble.size=3"]


def test_training_run_has_one_step_axis_one_row_per_epoch_members_and_paper_lines(tmp_path):
    """History rows carry one axis (data epochs), train and val of an epoch share a row, each member's
    final metrics and val curve are namespaced member/<k>/..., and seed 000's Table 1 numbers for the
    run's cell are drawn as lines (logged in the first and the last row)."""
    from symexp.run import run
    from tests.conftest import compose_cfg

    job = tmp_path / "job"
    run(compose_cfg(["experiment=rflr_table1_quad2d", *TINY, "model.rank=8"]), job_dir=job)  # a Table 1 cell
    (rec,) = offline_runs(job)
    rows = rec["history"]
    assert rec["step_metrics"].get("*") == "epoch"
    assert all("trainer/global_step" not in r for r in rows), "Lightning's second axis must not reach W&B"
    epochs = [r["epoch"] for r in rows]
    assert epochs == sorted(set(epochs)), f"one row per epoch, in order: {epochs}"
    assert epochs[-1] == 3, "the axis counts data epochs (task.epochs=3)"
    assert all("train/loss" in r and "val/mse" in r for r in rows if r["epoch"] >= 1), rows
    assert "test/mse" in rows[-1], "the final metrics share the last training row"
    assert {f"member/{k}/val/mse" for k in range(3)} <= set(rows[1])
    summary = rec["summary"]
    assert {f"member/{k}/test/mse" for k in range(3)} <= set(summary)
    assert rows[0]["paper/test/mse"] == rows[-1]["paper/test/mse"] == pytest.approx(2.17e-5)
    (table_file,) = list(job.glob("wandb/offline-run-*/files/media/table/members_*.table.json"))
    table = json.loads(table_file.read_text())
    col = table["columns"].index("test/mse")
    assert [type(r[col]) for r in table["data"]] == [float] * 3


def test_multirun_name_does_not_repeat_the_experiment():
    from symexp.loggers import display_name

    name = display_name("rflr_table1_gauss2d/0", ["experiment=rflr_table1_gauss2d", "budget=smoke"], True)
    assert name == "rflr_table1_gauss2d/0 budget=smoke"


def test_eval_and_audit_runs_are_named_grouped_and_tagged_like_their_training_run(tmp_path):
    """A sweep job's eval and audit runs carry its name (plus [eval] / [audit]), its W&B group and its
    tags from Hydra's choices (data:cosine1d, syre:off), not tags rebuilt from class names."""
    import os
    import subprocess
    import sys

    from symexp.audit.__main__ import main as audit_main
    from symexp.evaluate import evaluate
    from tests.conftest import ROOT

    sweep = tmp_path / "sweeps" / "demo" / "stamp"
    cmd = [sys.executable, "launch.py", "-m", "experiment=rflr_cosine1d", "seed=3", *TINY[:-1],
           f"hydra.sweep.dir={sweep}", f"paths.output_root={tmp_path}"]
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, env={**os.environ, "WANDB_MODE": "offline"})
    job = sweep / "0"
    (train,) = offline_runs(job)
    assert train["name"].startswith("rflr_cosine1d/0 seed=3 ") and train["group"] == "demo/stamp"
    assert {"data:cosine1d", "syre:off"} <= set(train["tags"])
    evaluate(job, ["progress=none"])
    (ev,) = offline_runs(job / "eval")
    assert audit_main([str(job), "--wandb", "--no-figures"]) == 0
    (audit,) = offline_runs(job / "audit")
    for rec, kind in ((ev, "eval"), (audit, "audit")):
        assert rec["name"] == f"{train['name']} [{kind}]"
        assert rec["group"] == "demo/stamp"
        assert set(train["tags"]) | {kind} <= set(rec["tags"])
        assert not any(t.startswith("data:") and t != "data:cosine1d" for t in rec["tags"]), rec["tags"]
    assert ev["config"]["trained_run"] == train["id"]


def test_objective_task_logs_against_optimizer_steps(tmp_path):
    """The objective benchmarks' Lightning epochs are logging intervals; their W&B axis is the step count."""
    from symexp.run import run
    from tests.conftest import compose_cfg

    job = tmp_path / "job"
    run(compose_cfg(["experiment=syre_ridge", "budget=smoke", "data.dim=40", "data.n_train=20", "data.n_val=100",
                     "model.dims=[5,20,40]", "logger=wandb", "progress=none"]), job_dir=job)
    (rec,) = offline_runs(job)
    assert rec["step_metrics"].get("*") == "step"
    steps = [r["step"] for r in rec["history"]]
    assert steps == sorted(set(steps)) and steps[-1] == 100, steps


def test_a_job_trained_before_wandb_run_json_is_followed_from_its_hydra_record(tmp_path):
    from symexp.loggers import follow_training_run

    job = tmp_path / "3"
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "hydra.yaml").write_text(
        "hydra:\n  mode: MULTIRUN\n  sweep: {dir: /x/sweeps/demo/stamp}\n  job: {num: 3}\n"
        "  overrides: {task: [experiment=rflr_table1_quad2d, seed=1]}\n"
        "  runtime:\n    choices: {experiment: rflr_table1_quad2d, data: quad2d, syre: 'off', hydra/launcher: basic}\n")
    (job / "wandb_id").write_text("abcd1234\n")
    kwargs = follow_training_run({"name": "x", "tags": ["data:symmetricregressiondata", "mine"], "config": {}},
                                 job, "eval")
    assert kwargs["name"] == "rflr_table1_quad2d/3 seed=1 [eval]" and kwargs["group"] == "demo/stamp"
    assert kwargs["tags"] == ["experiment:rflr_table1_quad2d", "data:quad2d", "syre:off", "eval", "mine"]
    assert kwargs["config"]["trained_run"] == "abcd1234"


def test_two_values_of_one_key_at_one_axis_value_are_both_kept(tmp_path):
    """Rows merge per axis value, but a second event logged in the same step must not overwrite the first."""
    from symexp.loggers import build_logger, finish
    from tests.conftest import compose_cfg

    logger = build_logger(compose_cfg(["logger=wandb"]), tmp_path, "a", None)
    logger.position = lambda: ("env_step", 256)
    logger.log_metrics({"event/parameter_change": 1.0, "train/loss": 0.5})
    logger.log_metrics({"event/parameter_change": 2.0})
    logger.log_metrics({"val/x": 3.0})
    finish(logger, failed=False)
    (rec,) = offline_runs(tmp_path)
    assert [r.get("event/parameter_change") for r in rec["history"]] == [1.0, 2.0]
    assert rec["history"][1]["val/x"] == 3.0 and {r["env_step"] for r in rec["history"]} == {256}


def test_step_axis_is_the_tasks_own_unit_else_steps_else_fractional_epochs():
    from types import SimpleNamespace

    from symexp.loggers import step_axis

    loop = SimpleNamespace(epoch_loop=SimpleNamespace(batch_progress=SimpleNamespace(total=SimpleNamespace(completed=6))))
    trainer = SimpleNamespace(max_epochs=10, global_step=12, num_training_batches=4, fit_loop=loop, current_epoch=1)
    own = SimpleNamespace(progress=lambda: ("env step", 2048, 8192))
    plain = SimpleNamespace(progress=lambda: None)
    assert step_axis(trainer, own) == ("env_step", 2048)
    assert step_axis(trainer, plain) == ("epoch", 1.5), "6 of 4-batch epochs: halfway through the second"
    loop.epoch_loop.batch_progress.total.completed = 8
    assert step_axis(trainer, plain) == ("epoch", 2)
    assert step_axis(SimpleNamespace(**{**vars(trainer), "max_epochs": -1}), plain) == ("step", 12)
