"""Helpers for ensemble-native layers: stacked (K, out, in) weights with per-member init."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import nn

from symexp.seeding import generator

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": torch.relu,
    "tanh": torch.tanh,
    "sin": torch.sin,
    "gelu": nn.functional.gelu,
    "leaky_relu": lambda x: nn.functional.leaky_relu(x, 0.1),
}


def activation_fn(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    if name not in ACTIVATIONS:
        raise ValueError(f"model.activation: unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]


def uniform_fan_in(gens: Sequence[torch.Generator], shape: Sequence[int], fan_in: int, scale: float = 1.0):
    """nn.Linear's default U(+-1/sqrt(fan_in)) init, one draw per member from its own generator."""
    bound = scale / math.sqrt(fan_in)
    return torch.stack([(torch.rand(*shape, generator=g) * 2 - 1) * bound for g in gens])


def member_generators(seeds: Sequence[int]) -> list[torch.Generator]:
    """One model-init generator per member; layers draw from it in a fixed order."""
    return [generator(s, "model") for s in seeds]


def bmv(w: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Stacked affine map: w (K, out, in) applied to x (K, n, in) -> (K, n, out)."""
    return torch.bmm(x, w.transpose(1, 2))
