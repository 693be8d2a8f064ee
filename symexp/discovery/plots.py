"""Heat maps of the learned generators h_i and of the learned vector field (seed 003, Figs. 2-5).

With a nonlinear learned action h need not look like a textbook generator, so every generator gets two
panels: h itself and the effective generator M_i, the least-squares linear fit v_i(theta) ~ M_i theta of
its infinitesimal action. Two-parameter targets also get the vector field as arrows over (theta_1, theta_2).
``composite`` puts several runs' panels into one figure (the README's), one row per run, reading each run's
figures/generators.npz and results.json:

    python -m symexp.discovery.plots OUT.png RUN_DIR [RUN_DIR ...]
"""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from symexp.figstyle import DPI, colorbar, plt, save, styled


def _heat(ax, mat: np.ndarray, labels: list[str], title: str, fontsize: int = 8) -> None:
    """A generator as a matrix over the parameters, its entries on a symmetric colour scale."""
    lim = float(np.abs(mat).max()) or 1.0
    im = ax.imshow(mat, cmap="RdBu_r", vmin=-lim, vmax=lim)
    ax.grid(False)
    n = mat.shape[0]
    if n <= 16:
        ax.set_xticks(range(n), labels, rotation=90, fontsize=5 if n > 6 else 6)
        ax.set_yticks(range(n), labels, fontsize=5 if n > 6 else 6)
    ax.set_xlabel("column (parameter)", fontsize=6)
    ax.set_ylabel("row (parameter)", fontsize=6)
    ax.set_title(title, fontsize=fontsize)
    colorbar(ax.figure, im, ax, "matrix entry").ax.tick_params(labelsize=6)


@styled
def plot_generators(target, model, effective: torch.Tensor, path: Path, verdicts: Sequence[str] = (),
                    group: str = "") -> Path:
    """One row per generator: h_i, its vector field as a linear map, and (two parameters) the flow arrows.
    ``verdicts`` (from evaluate.verdict) go under the row's first title, ``group`` (evaluate.group_verdict)
    above the figure."""
    h = model.h.detach().cpu().numpy()
    eff = effective.cpu().numpy()
    labels = target.param_labels()
    quiver = target.n_params == 2
    cols = 3 if quiver else 2
    fig, axes = plt.subplots(model.k, cols, figsize=(3.8 * cols, 3.4 * model.k), squeeze=False)
    for i in range(model.k):
        note = f"\n{textwrap.fill(verdicts[i], 48)}" if i < len(verdicts) else ""
        _heat(axes[i, 0], h[i], labels, f"h{i + 1} (learned Lie algebra element){note}", 7)
        _heat(axes[i, 1], eff[i], labels, f"vector field of h{i + 1} as a linear map", 7)
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
            ax.set_title(f"learned flow of h{i + 1} (X = 1)", fontsize=7)
    if group:
        fig.suptitle(textwrap.fill(group, 100), fontsize=7)
    save(fig, path)
    np.savez_compressed(path.with_suffix(".npz"), h=h, effective=eff, labels=np.array(labels),
                        verdicts=np.array(list(verdicts), dtype=str))
    return path


@styled
def composite(run_dirs: Sequence[Path], path: Path, dpi: int = DPI) -> Path:
    """One row per run, two panels per generator (h_i and its vector field as a linear map), h_i titled with
    the generator's verdict, recomputed from the run's results.json by evaluate.verdict."""
    from symexp.discovery.evaluate import verdict

    runs = []
    for run in map(Path, run_dirs):
        res = json.loads((run / "results.json").read_text())
        data = np.load(run / "figures" / "generators.npz")
        metrics = {key: value for key, value in res["metrics"].items() if isinstance(value, float)}
        runs.append((res["name"], data["h"], data["effective"], list(data["labels"]), metrics))
    cols = 2 * max(h.shape[0] for _, h, _, _, _ in runs)
    fig, axes = plt.subplots(len(runs), cols, figsize=(2.7 * cols, 3.0 * len(runs)), squeeze=False)
    for r, (name, h, eff, labels, metrics) in enumerate(runs):
        for i in range(h.shape[0]):
            note = textwrap.fill(verdict(metrics, i + 1), 34)
            _heat(axes[r, 2 * i], h[i], labels, f"{name}: h{i + 1}\n{note}", 6)
            _heat(axes[r, 2 * i + 1], eff[i], labels, f"field of h{i + 1} as a linear map", 6)
        for ax in axes[r, 2 * h.shape[0]:]:
            ax.axis("off")
    return save(fig, path, dpi=dpi)


if __name__ == "__main__":
    if len(sys.argv) < 3:
        raise SystemExit("usage: python -m symexp.discovery.plots OUT.png RUN_DIR [RUN_DIR ...]")
    print(composite([Path(a) for a in sys.argv[2:]], Path(sys.argv[1])))
