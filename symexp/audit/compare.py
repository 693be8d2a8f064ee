"""Two networks side by side (vanilla vs syre, two seeds): both audits, the permutation alignment of B
onto A, and the linear-mode-connectivity barrier along theta(lam) = (1 - lam) theta_A + lam theta_B
before and after alignment (seed 002's Fig. 13 question: does removing symmetries remove the barrier?).

BatchNorm statistics of every interpolated network are re-estimated on the audit inputs (an averaged
network's running statistics are not its own), as REPAIR-style LMC studies do."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from symexp.audit.align import matched_similarity, permute, weight_matching
from symexp.audit.core import SCHEMA, Audit
from symexp.figstyle import plt, rc_context, save
from symexp.results import write_json_atomic
from symexp.tasks.classification import evaluate
from symexp.tasks.lmc import barrier, interpolate


@torch.no_grad()
def reset_batchnorm(model: nn.Module, x: torch.Tensor, batch: int = 250) -> None:
    """Recompute BatchNorm running statistics of model on x (cumulative average), then eval mode."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    for i in range(0, len(x), batch):
        model(x[i : i + batch])
    model.eval()


@torch.no_grad()
def _loss_acc(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    if y.dtype in (torch.int64, torch.int32, torch.uint8):
        return evaluate(model, x, y)
    model.eval()
    out = model(x)
    return float(F.mse_loss(out, y.to(out))), float("nan")


def lmc_path(model_a: nn.Module, model_b: nn.Module, x: torch.Tensor, y: torch.Tensor, points: int) -> dict:
    lams = np.linspace(0, 1, points)
    losses, accs = [], []
    for lam in lams:
        mixed = interpolate(model_a, model_b, float(lam))
        reset_batchnorm(mixed, x)
        loss, acc = _loss_acc(mixed, x, y)
        losses.append(loss)
        accs.append(acc)
    losses, accs = np.array(losses), np.array(accs)
    out = {"lambda": lams.tolist(), "loss": losses.tolist(), "acc": accs.tolist(), "loss_barrier": barrier(losses, True)}
    if np.isfinite(accs).all():
        out["acc_barrier"] = barrier(accs, False)
    return out


def compare_models(audit_a: Audit, audit_b: Audit, model_a: nn.Module, model_b: nn.Module,
                   x: torch.Tensor | None, y: torch.Tensor | None, points: int = 11, seed: int = 0) -> dict:
    perms = weight_matching(model_a, model_b, seed=seed)
    aligned = permute(model_b, perms)
    before, after = matched_similarity(model_a, model_b), matched_similarity(model_a, aligned)
    alignment = {name: {"units": len(p), "moved": int((p != torch.arange(len(p))).sum()),
                        "cosine_before": before[name], "cosine_after": after[name]} for name, p in perms.items()}
    report = {"schema": SCHEMA, "kind": "audit-compare", "a": audit_a.report, "b": audit_b.report, "alignment": alignment}
    if x is not None and y is not None:
        report["lmc"] = {"points": points, "before": lmc_path(model_a, model_b, x, y, points),
                         "after": lmc_path(model_a, aligned, x, y, points)}
    elif x is not None:
        report["notes"] = ["the inputs have no labels: no linear-mode-connectivity barrier"]
    return report


def _pair(a, b) -> str:
    fmt = lambda v: "-" if v is None else (f"{v:.3g}" if isinstance(v, float) else str(v))  # noqa: E731
    return f"{fmt(a)} / {fmt(b)}"


def markdown(report: dict) -> str:
    a, b = report["a"], report["b"]
    na, nb = a["target"].get("name"), b["target"].get("name")
    out = [f"# Audit comparison: A = {na}, B = {nb}", "", f"**A.** {a['verdict']}", "", f"**B.** {b['verdict']}", ""]
    if "lmc" in report:
        lb, la = report["lmc"]["before"], report["lmc"]["after"]
        out += ["## Linear mode connectivity", "",
                f"Loss barrier along (1 - lam) A + lam B: {lb['loss_barrier']:.4g} before alignment, "
                f"{la['loss_barrier']:.4g} after permutation alignment"
                + (f"; accuracy barrier {lb['acc_barrier']:.4g} -> {la['acc_barrier']:.4g}." if "acc_barrier" in lb else "."),
                "", "![lmc](figures/lmc_path.png)", ""]
    out += ["## Whole network (A / B)", "", "| | A / B |", "|---|---|"]
    out += [f"| {k} | {_pair(a['network'].get(k), b['network'].get(k))} |" for k in a["network"]]
    out += ["", "## Layers (A / B)", "",
            "| layer | weight eff rank | dup groups | zero in | dead | repr eff rank | aligned: moved / cos before -> after |",
            "|---|---|---|---|---|---|---|"]
    rows_b = {r["name"]: r for r in b["layers"]}
    for ra in a["layers"]:
        rb = rows_b.get(ra["name"])
        if rb is None:
            continue
        da, db = ra.get("data"), rb.get("data")
        rep = lambda d: (d.get("post") or d["pre"])["effective_rank"] if d else None  # noqa: E731
        al = report["alignment"].get(ra["name"])
        al_txt = f"{al['moved']}/{al['units']}, {al['cosine_before']:.3f} -> {al['cosine_after']:.3f}" if al else "-"
        out.append(f"| `{ra['name']}` | {_pair(ra['weight']['effective_rank'], rb['weight']['effective_rank'])} | "
                   f"{_pair(ra['permutation']['groups'], rb['permutation']['groups'])} | "
                   f"{_pair(ra['units_info']['zero_incoming'], rb['units_info']['zero_incoming'])} | "
                   f"{_pair(da['dead_units'] if da else None, db['dead_units'] if db else None)} | "
                   f"{_pair(rep(da), rep(db))} | {al_txt} |")
    return "\n".join(out) + "\n"


def write_compare(report: dict, out_dir: Path) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "report.json", "md": out_dir / "report.md"}
    if "lmc" in report:
        with rc_context():
            fig, ax = plt.subplots(figsize=(5, 3.4))
            for key, style in (("before", "--"), ("after", "-")):
                p = report["lmc"][key]
                ax.plot(p["lambda"], p["loss"], style, marker="o", label=f"{key} alignment")
            ax.set(xlabel="interpolation weight lambda (0 = A, 1 = B)", ylabel="loss on the audit inputs",
                   title="Linear mode connectivity")
            ax.legend()
            paths["lmc_path"] = save(fig, out_dir / "figures" / "lmc_path.png")
    write_json_atomic(paths["json"], report)
    paths["md"].write_text(markdown(report))
    return paths
