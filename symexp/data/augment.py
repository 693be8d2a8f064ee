"""Batch augmentations on tensors (on the model's device): no torchvision, no per-sample Python loop."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def crop_flip(x: torch.Tensor, pad: int = 4) -> torch.Tensor:
    """The CIFAR recipe: zero-pad by ``pad``, take a random crop of the original size, flip half."""
    n, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), device=x.device)
    dx = torch.randint(0, 2 * pad + 1, (n,), device=x.device)
    rows = (dy[:, None] + torch.arange(h, device=x.device)[None])[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=x.device)[None])[:, None, None, :]
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    chan = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    out = padded[batch, chan, rows, cols]
    flip = torch.rand(n, device=x.device) < 0.5
    return torch.where(flip[:, None, None, None], out.flip(-1), out)


def resized_crop(x: torch.Tensor, scale: tuple[float, float] = (0.2, 1.0)) -> torch.Tensor:
    """Random square crops covering a fraction ``scale`` of the area, resized back (SimCLR's main view)."""
    n, _, h, w = x.shape
    area = torch.empty(n, device=x.device).uniform_(*scale)
    side = area.sqrt()
    cy = torch.rand(n, device=x.device) * (1 - side) + side / 2
    cx = torch.rand(n, device=x.device) * (1 - side) + side / 2
    theta = torch.zeros(n, 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0], theta[:, 1, 1] = side, side
    theta[:, 0, 2], theta[:, 1, 2] = cx * 2 - 1, cy * 2 - 1
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, align_corners=False)


def color_jitter(x: torch.Tensor, strength: float = 0.4, gray_prob: float = 0.2) -> torch.Tensor:
    """Random brightness, contrast and per-channel gain, and grayscale with probability ``gray_prob``."""
    n, c = x.shape[:2]
    shape = (n, 1, 1, 1)
    bright = torch.empty(shape, device=x.device).uniform_(-strength, strength)
    contrast = torch.empty(shape, device=x.device).uniform_(1 - strength, 1 + strength)
    gain = torch.empty(n, c, 1, 1, device=x.device).uniform_(1 - strength / 2, 1 + strength / 2)
    mean = x.mean((1, 2, 3), keepdim=True)
    out = (x - mean) * contrast * gain + mean + bright
    gray = torch.rand(shape, device=x.device) < gray_prob
    return torch.where(gray, out.mean(1, keepdim=True).expand_as(out), out)


def simclr_view(x: torch.Tensor) -> torch.Tensor:
    """One SimCLR view: resized crop, horizontal flip, colour jitter."""
    out = resized_crop(x)
    flip = torch.rand(x.shape[0], device=x.device) < 0.5
    out = torch.where(flip[:, None, None, None], out.flip(-1), out)
    return color_jitter(out)
