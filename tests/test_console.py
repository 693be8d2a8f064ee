"""What a user sees while and after a job runs: plain progress lines with fresh metrics and the task's own
budget, 3 significant digits, the task's headline metrics in the end table, the engine that ran."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from symexp.console import headline_keys, print_table, results_table
from symexp.engines import build_engine
from symexp.engines import fused as fused_mod
from symexp.loggers import PlainProgress, progress_callbacks
from symexp.models.rflr import RFLR
from symexp.run import run
from tests.conftest import ROOT, compose_cfg

TINY = ["model.width=32", "model.rank=4", "model.depth=2", "data.n_train=16", "data.n_val=16", "task.val_every=2"]
needs_kernel = pytest.mark.skipif(fused_mod.kernel() is None, reason="no C compiler: fused kernel unavailable")


def _results(root: Path) -> dict:
    (path,) = list(root.rglob("results.json"))
    return json.loads(path.read_text())


def test_plain_progress_shows_steps_for_step_budgeted_tasks_and_the_tasks_own_budget():
    trainer = SimpleNamespace(max_epochs=-1, max_steps=400, global_step=120, current_epoch=0, callback_metrics={})
    plain = SimpleNamespace()
    assert PlainProgress.position(trainer, plain, 0) == "step 120/400"
    ppo = SimpleNamespace(progress=lambda: ("env step", 2048, 81920))
    assert PlainProgress.position(trainer, ppo, 0) == "env step 2048/81920"
    trainer.max_epochs = 5
    assert PlainProgress.position(trainer, plain, 3) == "epoch 3/5"


def test_plain_progress_lines_carry_the_metrics_of_the_epoch_they_name(tmp_path, tmp_outputs, capsys, monkeypatch):
    """Lines come after the task's epoch-end logging: the last line holds the final train/loss, and every
    data epoch count is the task's own (never `/-1`)."""
    monkeypatch.setenv("COLUMNS", "250")  # wide enough that no line wraps (wrapping has its own test)
    run(compose_cfg(TINY + ["task.epochs=4", "progress=plain"] + tmp_outputs[:2]))
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("[symexp] ")]
    assert lines and lines[-1].startswith("[symexp] epoch 4/4 ") and "/-1" not in "".join(lines)
    ckpt_loss = _results(tmp_path)["metrics"]
    assert "train/loss=" in lines[-1] and "val/mse=" in lines[-1]
    assert ckpt_loss  # the job finished


def test_rich_bar_formats_metrics_with_three_significant_digits():
    (bar, _), enabled = progress_callbacks("rich")
    assert enabled and bar.theme.metrics_format == ".3g"
    assert f"{2.5e-5:{bar.theme.metrics_format}}" == "2.5e-05"


def test_headline_keys_default_and_declared():
    summary = {"test/mse": 1.0, "sym/output_defect": 0.1, "sym/output_defect/neg": 0.1, "sym/partial_defect/block0": 1,
               "regime": "ok", "train/return_final": -3.0, "gen/alignment": 0.9, "gen/alignment/h1": 0.9}
    assert headline_keys(summary) == ["test/mse", "sym/output_defect", "regime"]
    assert headline_keys(summary, ("gen/alignment", "gen/alignment/h*")) == ["gen/alignment", "gen/alignment/h1"]


@pytest.mark.parametrize(
    "task_cls,keys",
    [("symexp.tasks.ppo.PPOTask", ["train/return_final", "rank/effective_rank_pct"]),
     ("symexp.tasks.generator.GeneratorTask", ["gen/alignment", "gen/alignment/h1", "gen/invariance_learned/h2"]),
     ("symexp.tasks.mirror_experiments.MirrorRankTask", ["rank/plain_min", "rank/residual_min"]),
     ("symexp.tasks.mirror_experiments.MirrorSparsityTask", ["mirror/sparsity_sym_max", "mirror/diverged_plain"]),
     ("symexp.tasks.mirror_experiments.MirrorPlasticityTask", ["plasticity/plain/last_task_loss"])],
)
def test_end_table_shows_the_tasks_headline_metrics(task_cls, keys, capsys):
    import importlib

    module, name = task_cls.rsplit(".", 1)
    cls = getattr(importlib.import_module(module), name)
    summary = {**dict.fromkeys(keys, 0.123456), "env/steps": 5.0, "rank/plain/noise0.1": 3.0}
    patterns = cls.headline_metrics(None)
    assert headline_keys(summary, patterns) == keys
    print_table("demo", [{"seed": 0, "status": "ok", "metrics": summary}], summary, patterns)
    out = capsys.readouterr().out
    assert "0.123" in out and "0.000" not in out


def test_fused_kernel_unavailable_warns_and_falls_back(monkeypatch, caplog):
    import symexp.engines as engines

    monkeypatch.setattr(fused_mod, "_cache", {fused_mod._isa(): RuntimeError("no C compiler found (set CC)")})
    monkeypatch.setattr(engines, "_warned", set())
    model = RFLR(2, width=8, rank=2, depth=1, seeds=[0])
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad])
    with caplog.at_level("WARNING", logger="symexp"):
        engine = build_engine("auto", model, opt)
    assert engine.info() == {"name": "autograd", "fallback": "fused kernel unavailable: no C compiler found (set CC)"}
    assert [r for r in caplog.records if "fused kernel is unavailable" in r.getMessage()]
    with pytest.raises(ValueError, match="task.engine=fused: the fused kernel is unavailable"):
        build_engine("fused", model, opt)


@needs_kernel
def test_results_record_the_engine_and_no_false_scheduler_warning(tmp_path, tmp_outputs):
    """The fused engine steps the optimizer in C; torch's scheduler must not think it never stepped."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run(compose_cfg(TINY + ["task.epochs=4", "task.engine=fused", "task.scheduler.step_size=1"] + tmp_outputs))
    assert not [w for w in caught if "lr_scheduler.step()" in str(w.message)]
    env = _results(tmp_path)["env"]
    assert env["engine"] == {"name": "fused", "isa": fused_mod._isa()}


def _members(n: int, keys: list[str]) -> tuple[list[dict], dict]:
    members = [{"seed": k, "status": "ok", "metrics": {key: 0.5 + k for key in keys}} for k in range(n)]
    return members, {key: 0.5 + (n - 1) / 2 for key in keys}


def test_results_table_is_never_wider_than_the_terminal_and_keeps_full_metric_names(capsys):
    """Few short metrics: members as rows. Many long ones: metrics as rows, full names, still one column
    per member. Many members too: the median with min and max."""
    keys = [f"sym/mirror_corr_centred_null/variant{i}" for i in range(12)]
    members, summary = _members(3, keys)
    print_table("demo", members, summary, keys, width=80)
    lines = capsys.readouterr().out.splitlines()
    assert max(map(len, lines)) <= 80
    assert all(any(k in ln for ln in lines) for k in keys), "every metric name is printed in full"
    assert any("seed 2" in ln for ln in lines) and any("median" in ln for ln in lines)

    short = results_table("demo", *_members(2, ["test/mse"]), ["test/mse"], width=60)
    assert [c.header for c in short.columns] == ["seed", "status", "test/mse"]

    many = results_table("demo", *_members(30, keys), keys, width=80)
    assert [c.header for c in many.columns] == ["metric", "median", "min", "max"]


def test_syre_fcn_table_shows_the_rank_metrics():
    """The preset exists for the first layer's covariance rank: the end table must show it."""
    from symexp.tasks.classification import ClassificationTask

    summary = {"test/acc": 0.9, "test/loss": 0.3, "rank/first_pre/cov_rank": 40.0, "rank/first_post/cov_rank": 38.0,
               "train/acc": 0.95}
    keys = headline_keys(summary, ClassificationTask.headline_metrics(None))
    assert {"test/acc", "rank/first_pre/cov_rank", "rank/first_post/cov_rank"} <= set(keys)


def test_launch_console_fits_100_columns_has_no_duplicate_lines_and_ends_with_where_to_look(tmp_path):
    """`COLUMNS=100 python launch.py budget=smoke`, as a user types it (offline W&B, plain progress)."""
    env = {**os.environ, "COLUMNS": "100", "WANDB_MODE": "offline", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, str(ROOT / "launch.py"), "budget=smoke", f"paths.output_root={tmp_path}/out"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]
    wide = [ln for ln in lines if len(ln) > 100]
    assert not wide, wide
    messages = [ln.split("] ", 1)[-1] for ln in lines]  # the same message with and without a timestamp
    assert len(messages) == len(set(messages)), [m for m in messages if messages.count(m) > 1]
    assert not [ln for ln in lines if "Tip:" in ln or "LeafSpec" in ln or "Warning" in ln]
    assert not [ln for ln in lines if "max_epochs=" in ln], "Lightning's epochs are not the task's"
    (job,) = (tmp_path / "out" / "runs" / "rflr_cosine1d").iterdir()
    rel = job.relative_to(tmp_path)
    assert lines[-3] == f"job folder: {rel}"
    assert lines[-1].strip() == f"wandb sync {rel}/wandb/offline-run-*"
    assert list((job / "wandb").glob("offline-run-*"))


def test_help_states_the_defaults_the_config_has():
    """`--help`'s `key=value` lines are the composed defaults (it once said logger.mode=offline under auto)."""
    from omegaconf import OmegaConf

    from symexp.cli import HELP

    cfg = compose_cfg([], return_hydra=True)
    section = HELP.split("== Common keys (key=value) ==")[1].split("==")[0]
    checked = 0
    for line in section.strip().splitlines():
        key, value = line.split()[0].split("=", 1)
        choice = OmegaConf.select(cfg, f"hydra.runtime.choices.{key}")
        actual = choice if choice is not None else OmegaConf.select(cfg, key, default="<absent>")
        if key.startswith("hydra.") or actual == "<absent>":
            continue
        shown = "null" if actual is None else str(actual).lower()
        assert shown == value.lower(), f"--help says {key}={value}, the config has {actual}"
        checked += 1
    assert checked >= 8


def test_bar_and_lightnings_stop_message_count_in_the_tasks_unit():
    """A regression Lightning epoch is val_every data epochs: the bar and the stop line say data epochs."""
    import logging

    (bar, stop), _ = progress_callbacks("rich")
    module = SimpleNamespace(progress=lambda: ("epoch", 150, 150))
    trainer = SimpleNamespace(lightning_module=module, current_epoch=30, max_epochs=30, max_steps=-1, global_step=0)
    bar._trainer = trainer
    assert bar._get_train_description(29) == "epoch 150/150"
    stop._trainer = trainer
    record = logging.LogRecord("lightning", logging.INFO, "", 0, "`Trainer.fit` stopped: `max_epochs=30` reached.",
                               (), None)
    assert stop.filter(record) and record.getMessage() == "training stopped: epoch 150/150 reached"


def test_plain_progress_lines_wrap_at_the_terminal_width():
    from symexp.loggers import wrap_items

    items = [f"rank/first_post/metric_{i}=0.123" for i in range(12)]
    text = wrap_items("[symexp] epoch 1/3", items, width=100)
    lines = text.splitlines()
    assert len(lines) > 1 and max(map(len, lines)) <= 100 and lines[0].startswith("[symexp] epoch 1/3  ")
    assert all(item in text for item in items), "no metric is split or dropped"
    assert wrap_items("[symexp] epoch 1/3", ["a=1"], width=100) == "[symexp] epoch 1/3  a=1"
