"""What the ordinary (non-ensemble) vision models share: one seed, a seeded init, re-initialisation."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch
from torch import nn


def single_seed(seeds: Sequence[int], model: str) -> int:
    """The seed of a model that is not ensemble-native (ensemble.size must be 1)."""
    if len(seeds) != 1:
        raise ValueError(f"ensemble.size: model {model} is not ensemble-native; use ensemble.size=1 (got {len(seeds)})")
    return int(seeds[0])


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Draw the initial parameters from ``seed`` without disturbing the global random state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed * 1_000_003 + 11)
        yield


def reinitialize(model: nn.Module, seed: int) -> nn.Module:
    """Fresh parameters from ``seed`` (every submodule's reset_parameters, then the model's own init)."""
    with seeded(seed):
        for module in model.modules():
            if module is not model and hasattr(module, "reset_parameters"):
                module.reset_parameters()
        if hasattr(model, "init_extra"):
            model.init_extra()
    return model
