"""The one median of symexp: the midpoint of the two middle values for an even count (torch's own
``Tensor.median`` returns the lower one, so results.json and summary.md used to disagree). NaNs are
ignored; a slice with no values gives NaN (tensors) or None (report lists)."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch


def median(values, dim: int = -1, keepdim: bool = False) -> torch.Tensor:
    """Midpoint median along ``dim``, NaNs ignored (all-NaN slices give NaN); float64 in, input dtype out."""
    t = torch.as_tensor(values)
    dtype = t.dtype if t.is_floating_point() else torch.float64
    if t.numel() == 0:
        shape = list(t.shape)
        if shape:
            shape[dim] = 1
        out = torch.full(shape, math.nan, dtype=dtype)
        return out if keepdim or not shape else out.squeeze(dim)
    q = torch.nanquantile(t.double(), 0.5, dim=dim, keepdim=keepdim, interpolation="midpoint")
    return q.to(dtype)


def median_of(values: Iterable) -> float | None:
    """Midpoint median of the finite numbers among ``values`` (None, strings, NaN and inf are skipped);
    None when there are none. For report rows and per-member summaries."""
    vals = []
    for v in values:
        try:
            f = float(v)
        except (TypeError, ValueError):
            continue
        if math.isfinite(f):
            vals.append(f)
    return float(median(torch.tensor(vals, dtype=torch.float64))) if vals else None


def finite(value) -> float | None:
    """``value`` as a float when it is a finite number, else None (strings, None, NaN, inf): the one reading
    of a table cell that every report uses."""
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None
