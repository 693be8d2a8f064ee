"""Figures of the vision tasks: training curves, covariance spectra, reconstruction grids, continual-learning
and mode-connectivity curves. Plain functions of recorded numbers, in symexp's one style (figstyle)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.ticker import MaxNLocator

from symexp.figstyle import colorbar, label, legend_if_any, plt, save, styled

# eigenvalues at or below this are numerically zero (the rank tolerance is far above it): not drawn as data
EIG_FLOOR = 1e-12


def _whole_numbers(ax) -> None:
    """Epochs and task indices are counts: no fractional ticks."""
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


@styled
def plot_training(loss_history: Sequence[tuple[int, float]], epochs: Sequence[Mapping[str, float]], path: Path,
                  steps_per_epoch: float | None = None, note: str = "") -> Path:
    """Training loss, test accuracy and the tracked ranks, all over epochs (the loss is recorded per step
    and placed at step / steps_per_epoch); ``note`` (e.g. whether syre was on) goes into the title."""
    rank_keys = sorted({k for row in epochs for k in row if k.endswith("/cov_rank") or k == "sym/distinct_neurons"})
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    if loss_history:
        steps, losses = zip(*loss_history)
        xs = np.asarray(steps, dtype=float) / steps_per_epoch if steps_per_epoch else np.asarray(steps, dtype=float)
        axes[0].plot(xs, losses, color="k", lw=0.8)
        if min(losses) > 0:
            axes[0].set_yscale("log")
    axes[0].set(xlabel="epoch" if steps_per_epoch else "training step", ylabel="training loss (cross-entropy)",
                title="loss")
    acc = [(r["epoch"], r["val/acc"]) for r in epochs if "val/acc" in r]
    if acc:
        axes[1].plot(*zip(*acc), marker="o", ms=3)
    axes[1].set(xlabel="epoch", ylabel="test accuracy (fraction)", title="accuracy")
    for key in rank_keys:
        pts = [(r["epoch"], r[key]) for r in epochs if key in r]
        axes[2].plot(*zip(*pts), marker="o", ms=3, label=label(key).replace(": covariance rank (dims)", ""))
    legend_if_any(axes[2])
    axes[2].set(xlabel="epoch", ylabel="covariance rank (dims)", title="covariance rank of the tracked layers")
    for ax in axes[1:] if not steps_per_epoch else axes:
        _whole_numbers(ax)
    if note:
        fig.suptitle(note)
    return save(fig, path)


@styled
def plot_spectra(spectra: Mapping[str, torch.Tensor], tol: float, path: Path) -> Path:
    """Covariance eigenvalues of each tracked layer, descending, log scale, with the rank tolerance.
    Numerically zero eigenvalues (<= EIG_FLOOR) are left out, not drawn at the floor."""
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for name, eig in spectra.items():
        eig = eig.detach().cpu().double().numpy()  # figures are drawn from CPU copies, whatever device computed them
        index = np.arange(1, len(eig) + 1)
        keep = eig > EIG_FLOOR
        ax.semilogy(index[keep], eig[keep], label=f"{name} ({int(keep.sum())} of {len(eig)} > {EIG_FLOOR:g})")
    ax.axhline(tol, color="gray", ls="--", lw=0.8, label=f"rank tolerance {tol:g}")
    ax.set(xlabel="eigenvalue index (descending)", ylabel="eigenvalue (feature variance)",
           title="feature covariance spectrum")
    legend_if_any(ax)
    return save(fig, path)


@styled
def plot_image_grid(rows: Sequence[torch.Tensor], labels: Sequence[str], path: Path) -> Path:
    """Rows of images (N, C, H, W) side by side, e.g. originals over reconstructions (Fig. 10); each image
    is min-max scaled on its own."""
    n = rows[0].shape[0]
    fig, axes = plt.subplots(len(rows), n, figsize=(1.1 * n, 1.2 * len(rows)), squeeze=False)
    for r, (imgs, text) in enumerate(zip(rows, labels)):
        for i in range(n):
            img = imgs[i].detach().cpu().float()
            img = (img - img.min()) / (img.max() - img.min() + 1e-8)
            ax = axes[r][i]
            ax.imshow(img.permute(1, 2, 0).squeeze(-1).numpy(), cmap="gray")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
        axes[r][0].set_ylabel(text)
    return save(fig, path)


@styled
def plot_curves(x: Sequence[float], series: Mapping[str, Sequence[float]], xlabel: str, path: Path,
                ylabel: str = "", title: str = "") -> Path:
    """Several named curves over a shared x (one panel per series, the series' name on its y axis)."""
    fig, axes = plt.subplots(1, len(series), figsize=(4.0 * len(series), 3.2), squeeze=False)
    for ax, (name, ys) in zip(axes[0], series.items()):
        ax.plot(x, ys, marker="o", ms=3)
        ax.set(xlabel=xlabel, ylabel=ylabel or label(name))
        if xlabel == "epoch":
            _whole_numbers(ax)
    if title:
        fig.suptitle(title)
    return save(fig, path)


@styled
def plot_continual(new_task_acc: Sequence[float], ranks: Mapping[str, Sequence[float]], matrix: np.ndarray, path: Path) -> Path:
    """Fig. 11: accuracy on each new task after training on it, rank at each task start, and the
    accuracy matrix (row: after task t, column: evaluated on task s)."""
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    tasks = np.arange(len(new_task_acc))
    axes[0].plot(tasks, new_task_acc, marker="o")
    axes[0].set(xlabel="task", ylabel="test accuracy on the new task (fraction)", ylim=(0, 1.02))
    for name, values in ranks.items():
        axes[1].plot(np.arange(len(values)), values, marker="o", label=label(f"rank/{name}").replace(": covariance rank (dims)", ""))
    legend_if_any(axes[1])
    axes[1].set(xlabel="task start", ylabel="covariance rank (dims)")
    im = axes[2].imshow(matrix, vmin=0, vmax=1, cmap="viridis")
    axes[2].set(xlabel="evaluated on task", ylabel="after training task")
    axes[2].grid(False)
    colorbar(fig, im, axes[2], "test accuracy (fraction)")
    for ax in axes:
        _whole_numbers(ax)
    axes[2].yaxis.set_major_locator(MaxNLocator(integer=True))
    return save(fig, path)
