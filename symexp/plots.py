"""Per-run figures: the partial functions of every hidden block in the style of seed 000's Figure 2
(1D: curves with their mirror images; 2D: heat maps). The data are also saved as partials.npz so the
report can draw RF-LR beside its MLP control."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

MAX_UNITS = 8


def save_figure(fig, path: Path, dpi: int = 110) -> Path:
    """Every symexp figure is written this way: parent folder created, tight layout, figure closed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


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


def plot_partials(model, datamodule, path: Path, title: str | None = None) -> Path:
    grid = datamodule.grid.cpu()  # figures are drawn from CPU copies (the model may live on a GPU)
    out, blocks = partial_values(model, grid)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path.with_suffix(".npz"), *blocks, grid=grid.numpy(), out=out)
    dim = grid.shape[1]
    name = title or type(model).__name__
    cols = len(blocks) + 1
    if dim == 1:
        fig, axes = plt.subplots(1, cols, figsize=(3.2 * cols, 3), squeeze=False)
        x = grid[:, 0].numpy()
        panels = [("output", out[:, None])] + [(f"block {l + 1}", b) for l, b in enumerate(blocks)]
        for ax, (label, vals) in zip(axes[0], panels):
            for k in range(vals.shape[1]):
                line = ax.plot(x, vals[:, k], lw=1)[0]
                ax.plot(-x, vals[:, k], lw=0.8, ls="--", color=line.get_color(), alpha=0.6)
            ax.set_title(f"{name}: {label}", fontsize=9)
            ax.set_xlabel("x (dashed: p(-x))")
    else:
        n = int(round(grid.shape[0] ** (1 / dim)))
        fig, axes = plt.subplots(1, cols, figsize=(3 * cols, 3), squeeze=False)
        panels = [("output", out)] + [(f"block {l + 1}, top partial", b[:, 0]) for l, b in enumerate(blocks)]
        for ax, (label, vals) in zip(axes[0], panels):
            img = vals.reshape([n] * dim)
            if dim > 2:
                img = img[..., n // 2]  # the x_3 = 0 slice
            ax.imshow(img.T, origin="lower", extent=(-1, 1, -1, 1), cmap="RdBu_r")
            ax.set_title(f"{name}: {label}", fontsize=9)
    return save_figure(fig, path)
