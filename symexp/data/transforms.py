"""Finite symmetry transforms T of the input space, by name.

``neg`` is x -> -x; ``reflect<i>`` flips coordinate i; ``swap<i><j>`` exchanges coordinates i and j.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import torch

Transform = Callable[[torch.Tensor], torch.Tensor]


def transform(name: str, dim: int, key: str = "data.transforms") -> Transform:
    """The transform called ``name`` on R^dim; a clear error naming ``key`` otherwise."""
    if name == "neg":
        return lambda x: -x
    if m := re.fullmatch(r"reflect(\d)", name):
        i = int(m.group(1))
        if i < dim:
            sign = torch.ones(dim)
            sign[i] = -1.0
            return lambda x: x * sign.to(x)
    if m := re.fullmatch(r"swap(\d)(\d)", name):
        i, j = int(m.group(1)), int(m.group(2))
        if i < dim and j < dim and i != j:
            perm = list(range(dim))
            perm[i], perm[j] = j, i
            return lambda x: x[..., perm]
    raise ValueError(f"{key}: unknown transform {name!r} for dimension {dim}; use neg, reflect<i>, swap<i><j>")
