"""W&B identity: every job that starts gets a run (failed ones carry status and error), a rerun into the
job folder continues the same run id, config settings beat the environment, and no network means an
offline run within the timeout, not a failed job."""

from __future__ import annotations

import os
import time

import pytest
from omegaconf import OmegaConf

from symexp.loggers import build_logger, finish, summary_run_id, wandb_identity
from symexp.run import run
from tests.conftest import compose_cfg
from tests.wandb_records import offline_runs

TINY = ["model.width=32", "model.rank=4", "model.depth=2", "data.n_train=16", "data.n_val=16", "task.val_every=2",
        "task.epochs=2", "logger=wandb", "progress=none"]


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")


def test_invalid_config_still_gets_a_failed_run_with_the_error(tmp_path):
    """build_logger must not crash on a bad config; finish() records status and error in the summary."""
    cfg = compose_cfg(["task.optimizer.lr=abc", "logger=wandb", "model=fcn"])  # also an unresolvable model
    logger = build_logger(cfg, tmp_path, "bad/0", None)
    finish(logger, failed=True, error="ConfigError: task.optimizer.lr: got 'abc'; allowed a number > 0")
    (rec,) = offline_runs(tmp_path)
    assert rec["summary"]["status"] == "failed"
    assert "task.optimizer.lr" in rec["summary"]["error"]
    assert rec["exit_code"] == 1 and rec["job_type"] == "train"
    assert rec["id"] == (tmp_path / "wandb_id").read_text().strip()


def test_job_failing_before_fit_has_an_offline_run_holding_the_error(tmp_path):
    cfg = compose_cfg(TINY + ["device=gpu"] if not _has_cuda() else TINY + ["task.optimizer.lr=0"])
    with pytest.raises(SystemExit):
        run(cfg, job_dir=tmp_path / "job")
    runs = offline_runs(tmp_path / "job")
    assert runs, "a job that fails at validation must still have its W&B run"
    assert runs[-1]["summary"]["status"] == "failed"
    assert "device.accelerator" in runs[-1]["summary"]["error"] or "task.optimizer.lr" in runs[-1]["summary"]["error"]


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def test_rerun_into_the_job_folder_continues_the_same_run_id(tmp_path):
    """A job that starts again in its folder (resume after a kill, a rerun) appends to the same run id;
    `wandb sync` of its offline folders uploads them as one run."""
    job = tmp_path / "job"
    run(compose_cfg(TINY), job_dir=job)
    again = build_logger(compose_cfg(TINY), job, "rflr_cosine1d/again", None)
    again.log_metrics({"train/loss": 0.5}, step=3)
    finish(again, failed=False)
    first, second = offline_runs(job)
    assert first["id"] == second["id"] == (job / "wandb_id").read_text().strip()
    assert first["summary"]["status"] == "ok" and first["exit_code"] == 0
    assert {"experiment:rflr_cosine1d", "model:rflr", "data:symmetricregressiondata"} <= set(first["tags"])
    assert first["config"]["model"]["width"] == 32


def test_resume_never_starts_a_new_run_id(tmp_path):
    logger = build_logger(compose_cfg(["logger=wandb"]), tmp_path, "a", None)
    finish(logger, failed=False)
    old = (tmp_path / "wandb_id").read_text()
    finish(build_logger(compose_cfg(["logger=wandb", "resume=never"]), tmp_path, "a", None), failed=False)
    assert (tmp_path / "wandb_id").read_text() != old


@pytest.mark.parametrize(
    "logger_cfg,env,mode",
    [({"mode": "online"}, "offline", "online"),   # the command line beats the environment (make run ARGS=...)
     ({"mode": "auto"}, "online", "online"),      # auto: the environment decides
     ({"mode": "auto"}, None, "offline"),         # ... and offline when it does not say
     ({"mode": None}, "disabled", "disabled"),
     ({"mode": "offline"}, "online", "offline")],
)
def test_config_mode_wins_over_the_environment(logger_cfg, env, mode, monkeypatch):
    if env is None:
        monkeypatch.delenv("WANDB_MODE", raising=False)
    else:
        monkeypatch.setenv("WANDB_MODE", env)
    assert wandb_identity(OmegaConf.create(logger_cfg))["mode"] == mode


def test_project_and_entity_from_config_then_environment(monkeypatch):
    monkeypatch.setenv("WANDB_PROJECT", "from-env")
    assert wandb_identity({"project": None})["project"] == "from-env"
    assert wandb_identity({"project": "mine"})["project"] == "mine"
    monkeypatch.delenv("WANDB_PROJECT")
    assert wandb_identity({})["project"] == "symexp"


def test_online_without_network_falls_back_to_offline_quickly(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # nothing listens there: no real network
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    cfg = compose_cfg(["logger=wandb", "logger.mode=online", "logger.init_timeout=3"])
    t0 = time.monotonic()
    with caplog.at_level("WARNING", logger="symexp"):
        logger = build_logger(cfg, tmp_path, "net/0", None)
    elapsed = time.monotonic() - t0
    logger.log_metrics({"train/loss": 1.0}, step=0)
    finish(logger, failed=False)
    assert elapsed < 30, f"fallback took {elapsed:.0f} s"
    warnings = [r for r in caplog.records if "W&B online init failed" in r.getMessage()]
    assert len(warnings) == 1 and "wandb sync" in warnings[0].getMessage()
    (rec,) = offline_runs(tmp_path)
    assert rec["id"] == (tmp_path / "wandb_id").read_text().strip() and rec["summary"]["status"] == "ok"
    assert not list((tmp_path / "wandb").glob("run-*")), "the failed online attempt leaves no folder to sync"


def test_multirun_names_show_the_overrides():
    from symexp.loggers import display_name

    name = display_name("rflr_table1/3", ["seed=2", "model.rank=8", "paths.output_root=/x", "logger.mode=online"], True)
    assert name == "rflr_table1/3 seed=2 model.rank=8"
    assert display_name("rflr_cosine1d/2026", ["seed=2"], False) == "rflr_cosine1d/2026"


def test_sweep_summary_run_id_is_deterministic_and_follows_the_sweep_logger(tmp_path):
    import json

    from symexp.report.wandb_summary import log_summary

    sweep = tmp_path / "sweeps" / "demo" / "2026-01-01_00-00-00"
    (sweep / "0").mkdir(parents=True)
    (sweep / "0" / "results.json").write_text(json.dumps({"config": {"logger": {"project": "proj-x", "mode": "offline"}}}))
    md = sweep / "summary.md"
    md.write_text("| a |\n")
    ids = [log_summary(sweep, [{"job": "0", "status": "ok"}], md, {}) for _ in range(2)]
    assert ids[0] == ids[1] == summary_run_id(sweep)
    recs = offline_runs(sweep)
    assert len(recs) == 2 and {r["id"] for r in recs} == {ids[0]}
    assert recs[0]["project"] == "proj-x" and recs[0]["job_type"] == "report"
    assert os.path.basename(str(sweep)) in recs[0]["group"]
