"""Figures of the vision tasks (matplotlib, Agg): training curves, covariance spectra, reconstruction
grids, continual-learning and mode-connectivity curves. Plain functions of recorded numbers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from symexp.plots import save_figure  # noqa: E402


def plot_training(loss_history: Sequence[tuple[int, float]], epochs: Sequence[Mapping[str, float]], path: Path) -> Path:
    """Training loss over steps, test accuracy over epochs, tracked ranks over epochs."""
    rank_keys = sorted({k for row in epochs for k in row if k.endswith("/cov_rank") or k == "sym/distinct_neurons"})
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    if loss_history:
        steps, losses = zip(*loss_history)
        axes[0].plot(steps, losses, color="k")
        if min(losses) > 0:
            axes[0].set_yscale("log")
    axes[0].set(xlabel="step", ylabel="training loss", title="loss")
    acc = [(r["epoch"], r["val/acc"]) for r in epochs if "val/acc" in r]
    if acc:
        axes[1].plot(*zip(*acc), marker="o", ms=3)
    axes[1].set(xlabel="epoch", ylabel="test accuracy", title="accuracy")
    for key in rank_keys:
        pts = [(r["epoch"], r[key]) for r in epochs if key in r]
        axes[2].plot(*zip(*pts), marker="o", ms=3, label=key.removeprefix("rank/"))
    if rank_keys:
        axes[2].legend(fontsize=7)
    axes[2].set(xlabel="epoch", ylabel="rank", title="covariance rank")
    return save_figure(fig, path)


def plot_spectra(spectra: Mapping[str, torch.Tensor], tol: float, path: Path) -> Path:
    """Covariance eigenvalues of each tracked layer, descending, log scale, with the rank tolerance."""
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for name, eig in spectra.items():
        eig = eig.detach().cpu()  # figures are drawn from CPU copies, whatever device computed them
        ax.semilogy(np.arange(1, len(eig) + 1), eig.clamp_min(1e-12).numpy(), label=name)
    ax.axhline(tol, color="gray", ls="--", lw=0.8)
    ax.set(xlabel="index", ylabel="eigenvalue", title="feature covariance spectrum")
    ax.legend(fontsize=7)
    return save_figure(fig, path)


def plot_image_grid(rows: Sequence[torch.Tensor], labels: Sequence[str], path: Path) -> Path:
    """Rows of images (N, C, H, W) side by side, e.g. originals over reconstructions (Fig. 10)."""
    n = rows[0].shape[0]
    fig, axes = plt.subplots(len(rows), n, figsize=(1.1 * n, 1.2 * len(rows)), squeeze=False)
    for r, (imgs, label) in enumerate(zip(rows, labels)):
        for i in range(n):
            img = imgs[i].detach().cpu().float()
            img = (img - img.min()) / (img.max() - img.min() + 1e-8)
            ax = axes[r][i]
            ax.imshow(img.permute(1, 2, 0).squeeze(-1).numpy(), cmap="gray")
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r][0].set_ylabel(label, fontsize=8)
    return save_figure(fig, path)


def plot_curves(x: Sequence[float], series: Mapping[str, Sequence[float]], xlabel: str, path: Path,
                ylabel: str = "", title: str = "") -> Path:
    """Several named curves over a shared x (one panel per series)."""
    fig, axes = plt.subplots(1, len(series), figsize=(4.2 * len(series), 3.4), squeeze=False)
    for ax, (name, ys) in zip(axes[0], series.items()):
        ax.plot(x, ys, marker="o", ms=3)
        ax.set(xlabel=xlabel, ylabel=ylabel or name, title=title or name)
    return save_figure(fig, path)


def plot_continual(new_task_acc: Sequence[float], ranks: Mapping[str, Sequence[float]], matrix: np.ndarray, path: Path) -> Path:
    """Fig. 11: accuracy on each new task after training on it, rank at each task start, and the
    accuracy matrix (row: after task t, column: evaluated on task s)."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    tasks = np.arange(len(new_task_acc))
    axes[0].plot(tasks, new_task_acc, marker="o")
    axes[0].set(xlabel="task", ylabel="test accuracy on the new task", ylim=(0, 1.02))
    for name, values in ranks.items():
        axes[1].plot(np.arange(len(values)), values, marker="o", label=name)
    if ranks:
        axes[1].legend(fontsize=7)
    axes[1].set(xlabel="task start", ylabel="covariance rank")
    im = axes[2].imshow(matrix, vmin=0, vmax=1, cmap="viridis")
    axes[2].set(xlabel="evaluated on task", ylabel="after training task")
    fig.colorbar(im, ax=axes[2])
    return save_figure(fig, path)
