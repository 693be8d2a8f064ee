"""The one plotting style of every symexp figure: fonts and sizes (rcParams), a fixed colour and marker per
target, method and regime (so a target looks the same in every figure), readable metric labels, and
``save``, which writes a 200 dpi PNG and a vector PDF beside it.

Figure functions are wrapped in ``@styled`` (the rcParams apply while the figure is built and saved, and
nowhere else in the process) and end with ``save(fig, path)``.
"""

from __future__ import annotations

import functools
import logging
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

# PDFs embed subsets of their fonts (pdf.fonttype 42); fontTools logs every table it prunes at INFO
logging.getLogger("fontTools").setLevel(logging.WARNING)

DPI = 200
RC = {
    "font.size": 9, "axes.titlesize": 9, "axes.labelsize": 9, "legend.fontsize": 7, "xtick.labelsize": 8,
    "ytick.labelsize": 8, "figure.titlesize": 10, "axes.spines.top": False, "axes.spines.right": False,
    "axes.grid": True, "grid.alpha": 0.25, "grid.linewidth": 0.5, "lines.linewidth": 1.2, "lines.markersize": 4,
    "legend.frameon": False, "savefig.bbox": "tight", "pdf.fonttype": 42, "ps.fonttype": 42,
    "image.cmap": "viridis", "figure.constrained_layout.use": True,
}
# colour-blind-safe (Okabe-Ito), then tab10 for anything beyond
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000",
           "tab:brown", "tab:gray", "tab:olive", "tab:cyan")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h", "*", "p")

# fixed entries: the same thing is drawn the same way in every figure
TARGETS = {
    "cosine1d": (0, "o"), "cosine1d_f2": (5, "o"), "gauss2d": (1, "s"), "quad2d": (2, "^"), "gauss3d": (3, "D"),
    "quad3d": (4, "v"), "softaxis3d": (6, "P"),
}
METHODS = {
    "rflr": (0, "o"), "mlp": (1, "s"), "RF-LR low rank": (0, "o"), "RF-LR high rank": (5, "D"), "MLP": (1, "s"),
    "off": (0, "o"), "vanilla": (0, "o"), "static_bias": (1, "s"), "syre": (1, "s"), "wfix": (2, "^"),
    "W-fix": (2, "^"), "advanced": (3, "D"), "offset": (4, "v"), "weight decay": (4, "v"), "l2": (4, "v"),
    "dropout": (3, "D"), "sigma_asym": (8, "P"), "perturb_only": (9, "X"), "perturb only": (9, "X"),
    "anchor_only": (10, "<"), "anchor only": (10, "<"),
}
REGIMES = {"partial-symmetric": (2, "o"), "output-only": (1, "s"), "intermediate": (0, "^"), "underfit": (9, "D"),
           "diverged": (7, "X")}
_TABLES = {"target": TARGETS, "method": METHODS, "regime": REGIMES}

# readable axis / legend text (with the unit or "fraction", "dims" where there is one) for metric keys
LABELS = {
    "test/mse": "test MSE", "val/mse": "validation MSE", "train/loss": "training loss", "test/loss": "test loss",
    "train/acc": "training accuracy (fraction)", "test/acc": "test accuracy (fraction)",
    "val/acc": "validation accuracy (fraction)", "train/objective": "objective $(w^\\top w)^2 - w^\\top B w$",
    "sym/partial_defect": "active partial defect (last block)", "sym/output_defect": "output defect",
    "sym/mirror_mismatch": "mirror mismatch", "sym/symmetry_degree": "degree of symmetry",
    "sym/distinct_neurons": "distinct neurons (count)", "sym/dead_coordinates": "dead coordinates (count)",
    "rank/covariance_rank/hidden": "hidden covariance rank (dims)", "rank/first_pre/cov_rank":
    "first layer, pre-activation: covariance rank (dims)", "rank/first_post/cov_rank":
    "first layer, post-activation: covariance rank (dims)",
}

F = TypeVar("F", bound=Callable)


def style(kind: str, name: object) -> dict:
    """``{"color", "marker"}`` of a target, method or regime: fixed for the known ones, a stable hash of the
    name for others (the same name gets the same look in every figure and every process)."""
    table = _TABLES[kind]
    key = str(name)
    if key in table:
        colour, marker = table[key]
    else:
        h = zlib.crc32(key.encode())
        colour, marker = h % len(PALETTE), MARKERS[(h // len(PALETTE)) % len(MARKERS)]
    return {"color": PALETTE[colour], "marker": marker}


def looks(kind: str, names) -> dict[str, dict]:
    """``style`` for every name drawn together in one figure, with no two sharing a colour: known names keep
    their fixed look; an unknown one whose hashed colour is taken moves to the first free colour."""
    names = sorted({str(n) for n in names})
    out = {n: style(kind, n) for n in names if n in _TABLES[kind]}
    taken = {v["color"] for v in out.values()}
    for n in names:
        if n in out:
            continue
        look = style(kind, n)
        if look["color"] in taken:
            look["color"] = next((c for c in PALETTE if c not in taken), look["color"])
        out[n] = look
        taken.add(look["color"])
    return out


def label(key: str) -> str:
    """Axis or legend text for a metric key: the readable name when known, else the key itself."""
    if key in LABELS:
        return LABELS[key]
    if key.startswith("rank/") and key.endswith("/cov_rank"):
        return f"{key[5:-9].replace('_', ', ')}: covariance rank (dims)"
    return key


def rc_context():
    """symexp's rcParams for a block (what ``@styled`` applies to a whole function)."""
    return plt.rc_context(RC)


def styled(fn: F) -> F:
    """Build (and save) the figure under symexp's rcParams, leaving the process's own settings alone."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with plt.rc_context(RC):
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def save(fig, path: Path, dpi: int = DPI) -> Path:
    """Write ``path`` (PNG, ``dpi``) and the same figure as a vector PDF beside it; close the figure."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fig.get_layout_engine() is None:  # built outside symexp's style (no constrained layout): tighten it
        fig.tight_layout()
    fig.savefig(path.with_suffix(".png"), dpi=dpi, bbox_inches="tight")
    fig.savefig(path.with_suffix(".pdf"), bbox_inches="tight")
    plt.close(fig)
    return path.with_suffix(".png")


def colorbar(fig, mappable, ax, text: str):
    """A labelled colorbar beside ``ax``."""
    bar = fig.colorbar(mappable, ax=ax, fraction=0.046, pad=0.04)
    bar.set_label(text)
    return bar


def legend_if_any(ax, **kwargs) -> None:
    """A legend only when something drawn carries a label."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(**kwargs)
