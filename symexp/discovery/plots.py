"""Heat maps of the learned generators h_i and of the learned vector field (seed 003, Figs. 2-5).

With a nonlinear learned action h need not look like a textbook generator, so every generator gets two
panels: h itself and the effective generator M_i, the least-squares linear fit v_i(theta) ~ M_i theta of
its infinitesimal action. Two-parameter targets also get the vector field as arrows over (theta_1, theta_2).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402


def _heat(ax, mat: np.ndarray, labels: list[str], title: str) -> None:
    lim = float(np.abs(mat).max()) or 1.0
    im = ax.imshow(mat, cmap="RdBu_r", vmin=-lim, vmax=lim)
    n = mat.shape[0]
    if n <= 16:
        ax.set_xticks(range(n), labels, rotation=90, fontsize=6)
        ax.set_yticks(range(n), labels, fontsize=6)
    ax.set_title(title, fontsize=8)
    plt.colorbar(im, ax=ax, fraction=0.046)


def plot_generators(target, model, effective: torch.Tensor, path: Path) -> Path:
    h = model.h.detach().cpu().numpy()
    eff = effective.cpu().numpy()
    labels = target.param_labels()
    quiver = target.n_params == 2
    cols = 3 if quiver else 2
    fig, axes = plt.subplots(model.k, cols, figsize=(3.6 * cols, 3.2 * model.k), squeeze=False)
    for i in range(model.k):
        _heat(axes[i, 0], h[i], labels, f"h{i + 1} (learned Lie algebra element)")
        _heat(axes[i, 1], eff[i], labels, f"vector field of h{i + 1} as a linear map")
        if quiver:
            ax = axes[i, 2]
            grid = torch.linspace(-2, 2, 11)
            theta = torch.cartesian_prod(grid, grid)
            x = torch.ones(theta.shape[0], target.x_size)
            with torch.enable_grad():
                v = model.field(model.h[i], theta, x).detach()
            v = v / v.norm(dim=-1, keepdim=True).clamp_min(1e-12)
            ax.quiver(theta[:, 0], theta[:, 1], v[:, 0], v[:, 1], angles="xy", scale=18)
            ax.set_xlabel(labels[0])
            ax.set_ylabel(labels[1])
            ax.set_title(f"learned flow of h{i + 1} (X = 1)", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    np.savez_compressed(path.with_suffix(".npz"), h=h, effective=eff)
    return path
