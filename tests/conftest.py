"""Shared fixtures: compose the real config in-process and run the real pipeline on it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

import symexp.schema  # noqa: F401  (schema + resolvers)

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "conf"
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")


def compose_cfg(overrides: list[str] | None = None, config_dir: Path = CONF, config_name: str = "config",
                return_hydra: bool = False):
    """The composed config for these overrides (no Hydra runtime: run() picks its own output folder);
    return_hydra=True keeps the `hydra` node (launcher, sweeper) too."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
        return compose(config_name=config_name, overrides=list(overrides or []), return_hydra_config=return_hydra)


@pytest.fixture
def one_torch_thread():
    """Tiny eager ops run fastest (and steadiest on a busy machine) single-threaded; restored after."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def tmp_outputs(tmp_path):
    """Overrides that keep a test's outputs and W&B files in its tmp folder."""
    return [f"paths.output_root={tmp_path}", "logger=none", "progress=none"]
