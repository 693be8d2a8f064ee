"""Every PPO preset smoke-runs through the real pipeline (budget=smoke, no logger)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import compose_cfg

pytest.importorskip("gymnasium")
PRESETS = sorted(p.stem for p in (Path(__file__).resolve().parent.parent / "conf" / "experiment").glob("ppo_*.yaml"))


def test_all_six_presets_found():
    assert len(PRESETS) >= 6


@pytest.mark.parametrize("preset", PRESETS)
def test_ppo_preset_smoke(preset, tmp_outputs, tmp_path):
    if "slippery_ant" in preset:
        pytest.importorskip("mujoco")
    from symexp.run import run

    cfg = compose_cfg([f"experiment={preset}", "budget=smoke"] + tmp_outputs)
    assert cfg.name == preset
    run(cfg)
    res = json.loads(next(tmp_path.rglob("results.json")).read_text())
    assert res["status"] == "ok", res["error"]
    assert res["metrics"]["env/steps"] == cfg.task.total_steps
    # the smoke budget exercises the continual part: episodes end and the env parameter changes
    assert res["metrics"]["train/episodes"] >= 1
    assert res["metrics"]["env/parameter_changes"] >= 1
    assert (next(tmp_path.rglob("curves.csv"))).is_file()
    if preset.endswith("_syre"):
        assert res["config"]["syre"]["_target_"].endswith("StaticBias")
    weight_decay = res["config"]["task"]["optimizer"]["weight_decay"]
    assert weight_decay == (0.0 if preset.endswith("_vanilla") else 0.002)


def test_sweeps_compose():
    root = Path(__file__).resolve().parent.parent / "sweeps"
    for name in ("ppo_shifting_pendulum", "ppo_slippery_ant"):
        cfg = compose_cfg(["experiment=ppo_shifting_pendulum_l2"], config_dir=root, config_name=name)
        assert cfg.task._target_.endswith("PPOTask")
