"""The conventions researchers expect from a Hydra + Lightning template: debug presets, a callbacks group,
ckpt_path to start from a checkpoint, a TensorBoard logger option."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from symexp.run import run
from tests.conftest import CONF, compose_cfg

TINY = ["model.width=32", "model.rank=4", "model.depth=2", "data.n_train=16", "data.n_val=16", "task.val_every=2"]
DEBUG_PRESETS = sorted(p.stem for p in (CONF / "debug").glob("*.yaml"))


def _job(root: Path) -> Path:
    (res,) = list(root.rglob("results.json"))
    return res.parent


def _results(root: Path) -> dict:
    return json.loads((_job(root) / "results.json").read_text())


@pytest.mark.parametrize("preset", DEBUG_PRESETS)
def test_every_debug_preset_is_cpu_without_logger_in_its_own_output_root(preset):
    cfg = compose_cfg([f"debug={preset}"])
    assert cfg.logger.backend == "none" and cfg.device.accelerator == "cpu"
    assert Path(cfg.paths.output_root).name == "debug" and cfg.save_checkpoints is False
    assert cfg.resume == "never" and cfg.debug == preset


def test_fast_dev_run_runs_one_batch_through_the_whole_pipeline(tmp_path):
    run(compose_cfg(["debug=fast_dev_run", f"paths.output_root={tmp_path}", "progress=none", *TINY, "task.epochs=50"]))
    res = _results(tmp_path)
    assert res["status"] == "ok" and "test/mse" in res["metrics"]
    assert res["timing"]["train_steps"] < 50 * 16  # one chunk, not the 50 epochs the config asks for


def test_callbacks_group_adds_lightning_callbacks(tmp_path):
    run(compose_cfg([*TINY, "task.epochs=4", f"paths.output_root={tmp_path}", "progress=none", "logger=csv",
                     "callbacks=[lr_monitor]"]))
    with open(_job(tmp_path) / "csv" / "metrics.csv") as f:
        header = next(csv.reader(f))
    assert any(col.startswith("lr-") for col in header), header


def test_a_callback_without_target_is_an_error_naming_its_key(tmp_path):
    with pytest.raises(SystemExit, match=r"callbacks\.mine: must have a _target_"):
        run(compose_cfg([*TINY, f"paths.output_root={tmp_path}", "logger=none", "progress=none", "+callbacks.mine.x=1"]))


def test_ckpt_path_continues_from_a_given_checkpoint_and_refuses_another_model(tmp_path):
    first = tmp_path / "first"
    run(compose_cfg([*TINY, "task.epochs=4", f"paths.output_root={first}", "logger=none", "progress=none"]))
    ckpt = _job(first) / "checkpoints" / "last.ckpt"
    second = tmp_path / "second"
    run(compose_cfg([*TINY, "task.epochs=8", f"paths.output_root={second}", "logger=none", "progress=none",
                     f"ckpt_path={ckpt}"]))
    res = _results(second)
    assert res["status"] == "ok" and res["timing"]["resumed_from"] == str(ckpt)
    state = torch.load(_job(second) / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert state["symexp"]["config"]["task"]["epochs"] == 8  # the new run's own checkpoint, trained on
    with pytest.raises(SystemExit, match=r"ckpt_path: .* does not fit this model: .*\(1, 4, 32\) in the checkpoint but \(1, 4, 16\)"):
        run(compose_cfg([*TINY, "model.width=16", f"paths.output_root={tmp_path / 'third'}", "logger=none",
                         "progress=none", f"ckpt_path={ckpt}"]))
    with pytest.raises(SystemExit, match="ckpt_path: no checkpoint file"):
        run(compose_cfg([*TINY, f"paths.output_root={tmp_path / 'fourth'}", "logger=none", "progress=none",
                         f"ckpt_path={tmp_path / 'missing.ckpt'}"]))


def test_tensorboard_logger_writes_event_files(tmp_path):
    run(compose_cfg([*TINY, "task.epochs=2", f"paths.output_root={tmp_path}", "progress=none", "logger=tensorboard"]))
    events = list((_job(tmp_path) / "tensorboard").glob("events.out.tfevents.*"))
    assert events and sum(e.stat().st_size for e in events) > 100
