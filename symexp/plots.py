"""Per-run figure: the partial functions of every hidden block of one ensemble member in the style of
seed 000's Figure 2 (1D: curves with their mirror images; 2D and 3D: heat maps, 3D at the x3 = 0 slice).
The data are also saved as partials.npz so the report can draw RF-LR beside its MLP control."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from matplotlib.lines import Line2D

from symexp.figstyle import colorbar, plt, save, styled

MAX_UNITS = 8
MODEL_NAMES = {"RFLR": "RF-LR", "MLP": "MLP"}


@torch.no_grad()
def partial_values(model, grid: torch.Tensor, member: int = 0) -> tuple[np.ndarray, list[np.ndarray]]:
    """Output and per-block partials of one member on the grid, highest-variance units first."""
    device = next(model.parameters()).device
    x = grid.to(device).expand(model.members, -1, -1)
    out, parts = model(x, return_partials=True)
    blocks = []
    for p in parts:
        p = p[member]
        order = p.var(0).argsort(descending=True)[:MAX_UNITS]
        blocks.append(p[:, order].cpu().numpy())
    return out[member].cpu().numpy(), blocks


def mirror_legend(ax) -> None:
    """The two line styles of a 1D partials panel (the colours are units, named in the title)."""
    ax.legend(handles=[Line2D([], [], color="k", lw=1, label="p(x)"),
                       Line2D([], [], color="k", lw=0.8, ls="--", label="p(-x), mirrored")], loc="best")


def draw_1d(axes, x: np.ndarray, panels: list[tuple[str, str, np.ndarray]]) -> None:
    """One panel per (title, y-label, values (n, units)): each unit's curve and its mirror image."""
    for ax, (title, ylabel, vals) in zip(axes, panels):
        for k in range(vals.shape[1]):
            line = ax.plot(x, vals[:, k], lw=1)[0]
            ax.plot(-x, vals[:, k], lw=0.8, ls="--", color=line.get_color(), alpha=0.6)
        ax.set(title=title, xlabel="input x", ylabel=ylabel)
    mirror_legend(axes[0])


@styled
def plot_partials(model, datamodule, path: Path, title: str | None = None, member: int = 0,
                  seed: int | None = None) -> Path:
    """partials.png (+ .pdf) and partials.npz of ensemble member ``member`` (seed ``seed``)."""
    grid = datamodule.grid.cpu()  # figures are drawn from CPU copies (the model may live on a GPU)
    out, blocks = partial_values(model, grid, member)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path.with_suffix(".npz"), *blocks, grid=grid.numpy(), out=out, member=member,
                        seed=-1 if seed is None else seed)
    dim = grid.shape[1]
    name = title or MODEL_NAMES.get(type(model).__name__, type(model).__name__)
    who = f"member {member}" + (f" (seed {seed})" if seed is not None else "") + f" of {model.members}"
    cols = len(blocks) + 1
    if dim == 1:
        fig, axes = plt.subplots(1, cols, figsize=(3.0 * cols, 3.0), squeeze=False, layout="constrained")
        panels = [("output", "f(x)", out[:, None])]
        panels += [(f"block {i + 1}: top {b.shape[1]} units", f"partial $p_{{{i + 1},k}}(x)$", b)
                   for i, b in enumerate(blocks)]
        draw_1d(axes[0], grid[:, 0].numpy(), panels)
        fig.suptitle(f"{name} partial functions, {who}; colours: units by variance")
    else:
        n = int(round(grid.shape[0] ** (1 / dim)))
        fig, axes = plt.subplots(1, cols, figsize=(3.3 * cols, 3.0), squeeze=False, layout="constrained")
        panels = [("output", "f(x)", out)]
        panels += [(f"block {i + 1}: highest-variance unit", f"partial $p_{{{i + 1},1}}(x)$", b[:, 0])
                   for i, b in enumerate(blocks)]
        for ax, (panel_title, bar_label, vals) in zip(axes[0], panels):
            img = vals.reshape([n] * dim)
            if dim > 2:
                img = img[..., n // 2]  # the x3 = 0 slice
            lim = float(np.abs(img).max()) or 1.0
            im = ax.imshow(img.T, origin="lower", extent=(-1, 1, -1, 1), cmap="RdBu_r", vmin=-lim, vmax=lim)
            ax.set(title=panel_title, xlabel="$x_1$", ylabel="$x_2$")
            ax.grid(False)
            colorbar(fig, im, ax, bar_label)
        where = ", slice $x_3 = 0$" if dim > 2 else ""
        fig.suptitle(f"{name} partial functions, {who}{where}")
    return save(fig, path)
