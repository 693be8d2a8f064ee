"""Every figure symexp draws, rendered on tiny data and checked through matplotlib's objects: labelled axes,
a colorbar for every heat map, legends that name only what is drawn, no "Figure N" titles, the member
shown stated; and a 200 dpi PNG with a vector PDF beside it."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from PIL import Image

from symexp import figstyle


@pytest.fixture
def drawn(monkeypatch):
    """The figures symexp saved during the test, kept open (save closes them) for inspection."""
    figs: list = []
    monkeypatch.setattr(plt, "close", lambda fig=None: figs.append(fig))
    yield figs
    monkeypatch.undo()
    for fig in figs:
        plt.close(fig)


def _colorbar_axes(fig) -> list:
    return [ax for ax in fig.axes if hasattr(ax, "_colorbar")]


def _plot_axes(fig) -> list:
    """Axes that show data (not colorbars, not switched off)."""
    bars = _colorbar_axes(fig)
    return [ax for ax in fig.axes if ax not in bars and ax.axison
            and (ax.lines or ax.collections or ax.images or ax.patches)]


def _legend_texts(fig) -> list[str]:
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend()] + list(fig.legends)
    return [t.get_text() for lg in legends for t in lg.get_texts()]


def check(fig, png: Path, images_need_labels: bool = True) -> None:
    """The rules every figure keeps."""
    assert png.suffix == ".png" and png.is_file() and png.with_suffix(".pdf").is_file(), png
    assert png.with_suffix(".pdf").read_bytes()[:5] == b"%PDF-"
    dpi = Image.open(png).info["dpi"][0]
    assert dpi >= 199, f"{png.name}: {dpi} dpi"
    bar_images = {id(ax._colorbar.mappable) for ax in _colorbar_axes(fig)}
    for ax in _plot_axes(fig):
        if ax.images and not images_need_labels:
            continue
        assert ax.get_xlabel() and ax.get_ylabel(), f"{png.name}: unlabelled axes '{ax.get_title()}'"
        for im in ax.images:
            assert id(im) in bar_images, f"{png.name}: heat map without a colorbar ('{ax.get_title()}')"
    for ax in _colorbar_axes(fig):
        assert ax.get_ylabel() or ax.get_xlabel(), f"{png.name}: colorbar without a label"
    titles = [ax.get_title() for ax in fig.axes] + [fig._suptitle.get_text() if fig._suptitle else ""]
    assert not [t for t in titles if "Figure" in t or "Fig." in t], titles
    assert all(t.strip() for t in _legend_texts(fig))


# ------------------------------------------------------------------ per-run figures


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_partials_name_the_member_label_every_axis_and_colour_every_heat_map(tmp_path, drawn, dim):
    from symexp.data.sampling import symmetric_grid
    from symexp.models.rflr import RFLR
    from symexp.plots import plot_partials

    model = RFLR(dim, width=8, rank=2, depth=2, seeds=[5, 6])
    dm = SimpleNamespace(grid=symmetric_grid(dim, 21 if dim == 1 else 7))
    png = plot_partials(model, dm, tmp_path / "partials.png", member=1, seed=6)
    (fig,) = drawn
    check(fig, png)
    assert "member 1 (seed 6) of 2" in fig._suptitle.get_text()
    axes = _plot_axes(fig)
    assert len(axes) == 3  # output and two blocks
    if dim == 1:
        assert _legend_texts(fig) == ["p(x)", "p(-x), mirrored"]
    else:
        assert len(_colorbar_axes(fig)) == 3 and [ax.get_xlabel() for ax in axes] == ["$x_1$"] * 3
        assert ("$x_3 = 0$" in fig._suptitle.get_text()) == (dim == 3)
    z = np.load(tmp_path / "partials.npz")
    assert int(z["member"]) == 1 and int(z["seed"]) == 6


def test_vision_training_plot_counts_epochs_in_whole_numbers_and_states_syre(tmp_path, drawn):
    from symexp.tasks.vision_plots import plot_training

    history = [(s, 2.0 / (s + 1)) for s in range(0, 40, 5)]
    epochs = [{"epoch": float(e), "val/acc": 0.1 * e, "rank/first_pre/cov_rank": 30.0 - e,
               "rank/first_post/cov_rank": 20.0 - e} for e in range(4)]
    png = plot_training(history, epochs, tmp_path / "training.png", steps_per_epoch=10, note="FCN, syre off")
    (fig,) = drawn
    check(fig, png)
    assert [ax.get_xlabel() for ax in fig.axes] == ["epoch"] * 3, "one x unit across the panels"
    fig.canvas.draw()
    for ax in fig.axes:
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert all(float(t).is_integer() for t in ticks), ticks
    assert not [t for t in _legend_texts(fig) if "rank/" in t or "cov_rank" in t], "readable names, not keys"
    assert "syre off" in fig._suptitle.get_text()


def test_spectra_leave_numerically_zero_eigenvalues_out(tmp_path, drawn):
    from symexp.tasks.vision_plots import plot_spectra

    png = plot_spectra({"first_pre": torch.tensor([3.0, 1.0, 1e-3, 0.0, 0.0])}, 1e-2, tmp_path / "spectrum.png")
    (fig,) = drawn
    check(fig, png)
    (line, tol) = fig.axes[0].lines
    assert min(line.get_ydata()) > 1e-12 and len(line.get_ydata()) == 3
    assert "rank tolerance 0.01" in _legend_texts(fig)


def test_other_vision_figures(tmp_path, drawn):
    from symexp.tasks.vision_plots import plot_continual, plot_curves, plot_image_grid

    checks = [
        (plot_curves([0, 1, 2], {"val/recon": [3, 2, 1], "rank/encoder/cov_rank": [5, 4, 4]}, "epoch",
                     tmp_path / "curves.png"), True),
        (plot_continual([0.9, 0.8], {"first_pre/cov_rank": [30, 25]}, np.eye(2), tmp_path / "continual.png"), True),
        (plot_image_grid([torch.rand(3, 1, 4, 4), torch.rand(3, 1, 4, 4)], ["input", "recon"],
                         tmp_path / "grid.png"), False),
    ]
    for fig, (png, labelled) in zip(drawn, checks):
        check(fig, png, images_need_labels=labelled)
    assert len(_colorbar_axes(drawn[1])) == 1


# ------------------------------------------------------------------ seed 000's sweep figures


def _row(data, model, rank, mse, pd, regime, sampling="uniform", mm=0.3, job="0"):
    return {"status": "ok", "job": job, "model": model, "data": data, "rank": rank if model == "rflr" else None,
            "sampling": sampling, "test/mse": mse, "sym/partial_defect": pd, "sym/mirror_mismatch": mm,
            "regime": regime}


ROWS = [
    _row("gauss2d", "rflr", 8, 1e-4, 1e-3, "partial-symmetric", mm=0.1),
    _row("gauss2d", "rflr", 128, 2e-4, 1e-1, "output-only", mm=0.9),
    _row("quad2d", "rflr", 8, 1e-3, 2e-3, "partial-symmetric"),
    _row("quad2d", "mlp", None, 5e-4, 3e-1, "output-only", mm=0.6),
    _row("gauss2d", "mlp", None, 1e-4, 2e-1, "output-only", sampling="positive_bias"),
    _row("gauss2d", "rflr", 8, 3e-4, 4e-3, "intermediate", sampling="positive_bias"),
]


def test_figure3_separates_targets_keeps_mlp_runs_and_gives_the_size_a_scale(tmp_path, drawn):
    from symexp.report.figures import figure3

    png = figure3(ROWS, tmp_path / "figure3.png")
    (fig,) = drawn
    check(fig, png)
    axes = _plot_axes(fig)
    assert sorted(ax.get_title() for ax in axes) == ["target: gauss2d", "target: quad2d"]
    assert sum(len(ax.collections) for ax in axes) == len(ROWS), "every run is drawn, the MLP runs too"
    legend = _legend_texts(fig)
    assert "MLP control" in legend and "RF-LR rank 8" in legend and "RF-LR rank 128" in legend
    assert "diverged" not in legend and "underfit" not in legend, "no category that is absent"
    assert sum(t.startswith("mirror mismatch") for t in legend) == 3
    fig.canvas.draw()
    for ax in axes:  # at least two labelled ticks per log axis, and none overlapping
        for axis in (ax.xaxis, ax.yaxis):
            lo, hi = sorted(axis.get_view_interval())
            boxes = [t.label1.get_window_extent() for t in axis.get_major_ticks() + axis.get_minor_ticks()
                     if t.label1.get_visible() and t.label1.get_text() and lo <= t.get_loc() <= hi]
            assert len(boxes) >= 2, ax.get_title()
            assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])


def test_figure4_has_an_entry_per_sampling_and_ranks_on_the_labels(tmp_path, drawn):
    from symexp.report.figures import figure4

    png = figure4(ROWS, tmp_path / "figure4.png")
    (fig,) = drawn
    check(fig, png)
    ax = fig.axes[0]
    assert _legend_texts(fig) == ["sampling: positive_bias", "sampling: uniform", "median"]
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert ticks[0].endswith("(rank 8)") and ticks[1].endswith("(rank 128)") and ticks[2] == "MLP control"


def test_figure5_and_figure2(tmp_path, drawn):
    from symexp.report.figures import figure2, figure5

    check_rows = [dict(r) for r in ROWS]
    png5 = figure5(check_rows, tmp_path / "figure5.png")
    x = np.linspace(-1, 1, 11)[:, None]
    for job in ("a", "b"):
        (tmp_path / job / "figures").mkdir(parents=True)
        np.savez(tmp_path / job / "figures" / "partials.npz", np.c_[x, x ** 2], np.c_[x ** 3], grid=x, out=x[:, 0],
                 member=0, seed=4)
    rows = [_row("cosine1d", "rflr", 8, 1e-4, 1e-3, "partial-symmetric", job="a"),
            _row("cosine1d", "mlp", None, 1e-4, 1e-1, "output-only", job="b")]
    png2 = figure2(rows, tmp_path, tmp_path / "figure2.png")
    fig5, fig2 = drawn
    check(fig5, png5)
    assert set(_legend_texts(fig5)) == {"target: gauss2d", "RF-LR rank 8", "MLP control"}
    check(fig2, png2)
    assert "member 0, seed 4" in fig2.axes[0].get_title()


# ------------------------------------------------------------------ seed 002's sweep figures


def _syre_row(name, variant, overrides, **metrics):
    return {"status": "ok", "name": name, "job": name, "syre_variant": variant, "overrides": overrides, **metrics}


def test_syre_sweep_figures(tmp_path, drawn):
    from symexp.report.syre_figures import curves_figure, line_figure, ridge_figure, symbench_figure

    bench = [_syre_row("syre_symbench", v, f"syre={v}", **{"train/objective": -1.0 + i, "sym/symmetry_degree": 0.1 * i})
             for i, v in enumerate(("off", "static_bias", "wfix"))]
    fcn = [_syre_row("syre_fcn", v, f"syre={v} optimizer.weight_decay={g}", **{"test/acc": 0.9 - g,
                                                                              "rank/first_pre/cov_rank": 30 - 100 * g})
           for v in ("off", "static_bias") for g in (0.0, 0.01, 0.1)]
    ridge = [_syre_row("syre_ridge", v, f"syre={v}", weight_decay=wd, **{"test/mse/d4": 1.0, "test/mse/d8": 5.0})
             for v in ("off", "static_bias") for wd in (0.0, 0.01)]
    (tmp_path / "syre_reparam" / "figures").mkdir(parents=True)
    (tmp_path / "syre_reparam" / "figures" / "curves.json").write_text(
        json.dumps({"step": [0, 10, 20], "sym/dead_coordinates": [[0, 1], [2, 3], [4, 5]]}))
    reparam = [_syre_row("syre_reparam", "static_bias", "syre=static_bias")]
    pngs = [symbench_figure(bench, tmp_path / "bench.png"), line_figure(fcn, "syre_fcn", tmp_path / "fcn.png"),
            ridge_figure(ridge, tmp_path / "ridge.png"),
            curves_figure(reparam, tmp_path, "syre_reparam", "sym/dead_coordinates", tmp_path / "dead.png")]
    assert len(drawn) == 4
    for fig, png in zip(drawn, pngs):
        check(fig, png)
    assert {"vanilla", "syre", "W-fix"} <= set(_legend_texts(drawn[0]))
    assert "syre off" in _legend_texts(drawn[1]) and "syre=static_bias" in _legend_texts(drawn[1])
    assert drawn[1].axes[1].get_ylabel() == figstyle.label("rank/first_pre/cov_rank")
    assert drawn[3].axes[0].get_ylabel() == "dead coordinates (count)"


# ------------------------------------------------------------------ PPO, discovery


def test_ppo_figures(tmp_path, drawn):
    from symexp.report.ppo_figure import plot_single_run, plot_sweep

    steps = np.arange(0, 1000, 100, dtype=float)
    curves = {"env_step": steps, "effective_rank_pct": 90 - steps / 100, "abs_approx_rank_pct": 80 - steps / 100,
              "return": np.sin(steps), "dead_units": 0 * steps}
    png1 = plot_single_run(curves, [(500.0,)], tmp_path / "single.png")
    for variant in ("vanilla", "syre", "l2", "syre-sigma0.1"):  # l2 and syre-sigma0.1 hash to one colour
        job = tmp_path / f"ppo_{variant}"
        job.mkdir()
        lines = ["env_step,effective_rank_pct,abs_approx_rank_pct,return,dead_units"]
        lines += [f"{s},{90 - s / 100},{80 - s / 100},{math.sin(s)},0" for s in steps]
        (job / "curves.csv").write_text("\n".join(lines) + "\n")
        (job / "parameter_changes.csv").write_text("env_step\n500\n")
    png2 = plot_sweep(tmp_path)
    for fig, png in zip(drawn, (png1, png2)):
        check(fig, png)
    assert "parameter change" in _legend_texts(drawn[0])
    assert {"PPO (1 seed)", "PPO+syre (1 seed)", "PPO+L2 (1 seed)", "PPO+syre (sigma0.1) (1 seed)",
            "parameter change"} == set(_legend_texts(drawn[1]))
    colours = [line.get_color() for line in drawn[1].axes[0].get_lines() if not line.get_label().startswith("_")
               and line.get_label() != "parameter change"]
    assert len(colours) == 4 == len(set(colours))  # every variant its own colour


def test_looks_keep_known_colours_and_separate_unknown_ones():
    assert figstyle.style("method", "syre-sigma0.1")["color"] == figstyle.style("method", "l2")["color"]  # the clash
    got = figstyle.looks("method", ["l2", "syre-sigma0.1", "vanilla"])
    assert got["l2"] == figstyle.style("method", "l2") and got["vanilla"] == figstyle.style("method", "vanilla")
    assert len({v["color"] for v in got.values()}) == 3


def test_discovery_composite_labels_every_heat_map(tmp_path, drawn):
    from symexp.discovery.plots import composite

    run = tmp_path / "run"
    (run / "figures").mkdir(parents=True)
    (run / "results.json").write_text(json.dumps({"name": "gen_linear", "metrics": {}}))
    np.savez(run / "figures" / "generators.npz", h=np.random.default_rng(0).normal(size=(1, 3, 3)),
             effective=np.eye(3)[None], labels=np.array(["a", "b", "c"]))
    png = composite([run], tmp_path / "composite.png")
    (fig,) = drawn
    check(fig, png)
    assert len(_colorbar_axes(fig)) == 2


def test_style_is_stable_per_name_and_leaves_global_rcparams_alone():
    assert figstyle.style("target", "quad2d") == figstyle.style("target", "quad2d")
    assert figstyle.style("target", "gauss2d") != figstyle.style("target", "quad2d")
    assert figstyle.style("method", "a_new_method") == figstyle.style("method", "a_new_method")
    before = plt.rcParams["font.size"]

    @figstyle.styled
    def inside() -> float:
        return plt.rcParams["axes.spines.top"]

    assert inside() is False and plt.rcParams["font.size"] == before


def test_audit_figures_leave_zero_singular_values_out(tmp_path, drawn):
    from torch import nn

    from symexp.audit import audit_model
    from symexp.audit.report import figures

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2))
    with torch.no_grad():
        net[0].weight[3:] = 0.0  # rank 3: three exactly zero singular values
    paths = figures(audit_model(net, torch.randn(32, 4)), tmp_path)
    assert len(drawn) == 3
    for fig, png in zip(drawn, paths.values()):
        check(fig, png)
    spectra = drawn[2].axes[0].lines
    assert all(min(line.get_ydata()) > 1e-12 for line in spectra)
    assert len(spectra[0].get_ydata()) == 3
