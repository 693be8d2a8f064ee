"""Every vision preset of seed 002 smoke-runs through the real pipeline; the sweeps compose."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import ROOT, compose_cfg
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from symexp.run import build, run

PRESETS = {
    "syre_fcn": ["rank/first_pre/cov_rank", "rank/first_post/cov_rank", "test/acc"],
    "syre_two_layer": ["sym/distinct_neurons", "test/acc"],
    "syre_ntk": ["rank/ntk", "rank/ntk_init", "rank/ntk_bound", "rank/grad_cov"],
    "syre_resnet": ["rank/penultimate/cov_rank", "test/acc"],
    "syre_vit": ["rank/pre_head/cov_rank", "test/acc"],
    "syre_vae": ["test/recon", "test/kl", "rank/encoder/cov_rank"],
    "syre_continual": ["cl/new_task_acc/t2", "rank/task2/conv1/cov_rank", "test/acc"],
    "syre_simclr": ["probe/penultimate_acc", "probe/last_acc", "rank/last/low_rankness"],
    "syre_simclr_all": ["probe/last_acc"],
    "syre_lmc": ["lmc/loss_barrier", "lmc/acc_barrier", "test/acc_a", "test/acc_b"],
}
SWEEPS = sorted(p.stem for p in (ROOT / "sweeps").glob("syre_*.yaml") if p.stem.split("_")[1] in
                {"two", "resnet", "fcn", "vae", "continual", "simclr", "vit", "lmc", "ntk"})


@pytest.fixture(autouse=True)
def one_thread():
    """Small models on a shared 2-core machine: one intra-op thread is several times faster."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _results(tmp_path: Path) -> dict:
    found = sorted(tmp_path.rglob("results.json"))
    assert len(found) == 1
    return json.loads(found[0].read_text())


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_preset_smoke_runs(preset, tmp_path, tmp_outputs):
    syre = ["syre=static_bias"] if preset in ("syre_fcn", "syre_vae", "syre_simclr") else []
    run(compose_cfg([f"experiment={preset}", "budget=smoke", "save_checkpoints=false", *syre] + tmp_outputs))
    res = _results(tmp_path)
    assert res["status"] == "ok", res["error"]
    for key in PRESETS[preset]:
        assert key in res["metrics"], (key, sorted(res["metrics"]))
    assert res["figures"] and all((tmp_path.rglob(Path(f).name)) for f in res["figures"].values())


def test_lmc_wfix_masks_shared_between_models(tmp_path, tmp_outputs):
    cfg = compose_cfg(["experiment=syre_lmc", "budget=smoke", "syre=wfix"] + tmp_outputs)
    task = build(cfg)["task"]
    opt_a, opt_b = task.configure_optimizers()
    w_a, w_b = task.model.body[0].weight, task.model_b.body[0].weight
    mask_a, mask_b = task.syre.masks["body.0.weight"], task.syre_b.masks["body.0.weight"]
    assert torch.equal(mask_a, mask_b) and mask_a.any() and not mask_a.all()
    assert torch.equal(w_a[mask_a.bool()], w_b[mask_b.bool()])  # same fixed values in both models
    assert not torch.equal(w_a[~mask_a.bool()], w_b[~mask_b.bool()])  # different free (initial) entries
    del opt_a, opt_b


def test_vae_syre_touches_the_encoder_only(tmp_outputs):
    cfg = compose_cfg(["experiment=syre_vae", "budget=smoke", "syre=static_bias"] + tmp_outputs)
    parts = build(cfg)
    anchors = parts["syre"].anchors(parts["model"])
    assert anchors and all(name.startswith("encoder.") for name in anchors)


def test_simclr_all_preset_applies_syre_to_every_layer(tmp_outputs):
    """`experiment=syre_simclr_all` alone is Table 1's "all layers" row, not a vanilla run."""
    parts = build(compose_cfg(["experiment=syre_simclr_all", "budget=smoke"] + tmp_outputs))
    assert parts["syre"] is not None
    anchors = parts["syre"].anchors(parts["model"])
    assert any(n.startswith("encoder.") for n in anchors) and any(n.startswith("head.") for n in anchors)
    head_only = build(compose_cfg(["experiment=syre_simclr", "budget=smoke", "syre=static_bias"] + tmp_outputs))
    assert all(n.startswith("head.") for n in head_only["syre"].anchors(head_only["model"]))


@pytest.mark.parametrize("sweep", SWEEPS)
def test_sweeps_compose(sweep):
    cfg = compose_cfg([], config_dir=ROOT / "sweeps", config_name=sweep)
    assert cfg.name.startswith("syre_")
    assert cfg.task._target_.startswith("symexp.tasks.")


@pytest.mark.parametrize("sweep", SWEEPS)
def test_sweep_first_job_composes(sweep):
    """The first job of every sweep composes, as Hydra's sweeper checks before launching anything
    (a bare YAML `off` in the sweeper params is a bool, which no config group accepts)."""
    params = OmegaConf.load(ROOT / "sweeps" / f"{sweep}.yaml").hydra.sweeper.params
    overrides = []
    for key, value in params.items():
        (parsed,) = OverridesParser.create().parse_overrides([f"{key}={value}"])
        first = next(parsed.sweep_string_iterator()) if parsed.is_sweep_override() else parsed.get_value_element_as_str()
        overrides.append(f"{key}={first}")
    cfg = compose_cfg(overrides, config_dir=ROOT / "sweeps", config_name=sweep)
    assert cfg.task._target_.startswith("symexp.tasks.")
