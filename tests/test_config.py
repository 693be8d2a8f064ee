"""Every group option and preset composes; bad configs fail before training, naming the key."""

from __future__ import annotations

import pytest
from hydra.errors import ConfigCompositionException, MissingConfigException
from omegaconf.errors import ConfigKeyError

from symexp.run import build, run
from symexp.schema import validate
from tests.conftest import CONF, ROOT, compose_cfg

GROUPS = ["model", "data", "task", "metric", "syre", "device", "logger", "launcher", "budget", "experiment", "hparams_search"]


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml") if not p.stem.startswith("_"))


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS for o in _options(g)])
def test_every_group_option_composes(group, option):
    cfg = compose_cfg([f"{group}={option}"] if group != "metric" else [f"metric=[{option}]"])
    assert cfg.name


@pytest.mark.parametrize("preset", _options("experiment"))
def test_every_preset_composes_at_every_budget(preset):
    for budget in ("paper", "cpu", "smoke"):
        cfg = compose_cfg([f"experiment={preset}", f"budget={budget}"])
        assert cfg.name == preset, "a preset must set name to its file name"
        validate(cfg)  # the value rules must never refuse a shipped preset


@pytest.mark.parametrize("preset", [p for p in _options("experiment") if p.startswith(("rflr_", "mlp_"))])
def test_rflr_presets_instantiate(preset):
    parts = build(compose_cfg([f"experiment={preset}", "budget=smoke"]))
    assert parts["task"].members == 1


@pytest.mark.parametrize("sweep", sorted(p.stem for p in (ROOT / "sweeps").glob("*.yaml")))
def test_every_sweep_composes(sweep):
    cfg = compose_cfg([], config_dir=ROOT / "sweeps", config_name=sweep)
    assert cfg.name


def test_typo_at_top_level_fails_at_compose():
    with pytest.raises((ConfigCompositionException, ConfigKeyError)):
        compose_cfg(["ensembel.size=3"])


def test_unknown_group_option_names_the_group():
    with pytest.raises(MissingConfigException, match="model"):
        compose_cfg(["model=nosuchmodel"])


@pytest.mark.parametrize(
    "overrides,key",
    [
        (["model.rank=600", "model.width=512"], "model.rank"),
        (["data=gauss2d", "model.in_dim=3"], "model.in_dim"),
        (["data.transforms=[spin]"], "data.transforms"),
        (["data.transforms=[swap01]"], "data.transforms"),
        (["data.n_train=0"], "data.n_train"),
        (["data.n_train=-5"], "data.n_train"),
        (["metric.partial_defect.tau=-0.1"], "metric.partial_defect.tau"),
        (["metric.regime.r2_min=2"], "metric.regime.r2_min"),
        (["task.epochs=0"], "task.epochs"),
        (["ensemble.size=0"], "ensemble.size"),
        (["model.activation=swish"], "model.activation"),
        (["task.engine=turbo", "task.epochs=1"], "task.engine"),
    ],
)
def test_bad_config_fails_before_training_naming_the_key(overrides, key, tmp_outputs, tmp_path):
    with pytest.raises(SystemExit) as err:
        run(compose_cfg(overrides + tmp_outputs))
    assert key in str(err.value)
    assert not list(tmp_path.rglob("last.ckpt")), "no training may happen on a bad config"


@pytest.mark.parametrize(("budget", "step"), [("paper", 400), ("cpu", 16), ("smoke", 1)])
def test_lr_schedule_keeps_25_decays_at_every_budget(budget, step):
    """MMNN's StepLR step 400 at 10k epochs; a shortened budget keeps the same number of decays."""
    cfg = compose_cfg(["experiment=rflr_table1_gauss2d", f"budget={budget}"])
    assert cfg.task.scheduler.step_size == step
    assert cfg.task.scheduler.gamma == 0.9
