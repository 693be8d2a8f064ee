"""Seed 004's mirror verdicts: each holds on the paper's pattern and is refused on a null construction (no
effect, or a control that behaves like the treatment), and the sweep summary shows every run's verdict."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from symexp.report.aggregate import write_report
from symexp.tasks.mirror_verdicts import ensemble_verdict, plasticity_verdict, rank_verdict, sparsity_verdict

LRS = [0.001, 0.002, 0.003, 0.005, 0.007]
FALLS = [47, 38, 28, 24, 23]  # U V at budget=cpu: the rank falls with the noise
FULL = [48, 49, 49, 49, 49]   # the residual control stays full rank


def test_rank_verdict_holds_only_with_a_contrast():
    assert rank_verdict(LRS, FALLS, FULL, 50, "budget=cpu").startswith("holds: rank of W = U V 47 -> 23")
    same = rank_verdict(LRS, FALLS, FALLS, 50, "budget=cpu")  # null: the control falls like the treatment
    assert same.startswith("does not hold: the control falls too") and same.endswith("(budget=cpu)")
    assert rank_verdict(LRS, FULL, FULL, 50, "b").startswith("does not hold: the rank of U V does not fall")
    assert rank_verdict(LRS, [49, 48, 47, 47, 46], FULL, 50, "b").startswith("does not hold")  # drop 3 < 10% of d
    assert rank_verdict(LRS, FALLS[:-1] + [float("nan")], FULL, 50, "b").startswith("undecided")


def test_sparsity_verdict_needs_exact_zeros_a_sparse_free_control_and_the_lr_trend():
    sym = [[0, 0], [0, 0], [0, 0.46], [0.4, 0.7]]  # [lr][weight decay]
    plain = [[0, 0]] * 4
    lrs = [0.001, 0.003, 0.01, 0.03]
    assert sparsity_verdict(sym, plain, lrs, "b").startswith("holds")
    assert sparsity_verdict(sym, sym, lrs, "b").startswith("does not hold: the vanilla control is as sparse")
    assert sparsity_verdict([[0, 0]] * 4, plain, lrs, "b").startswith("does not hold: u * v has")
    assert sparsity_verdict(sym[::-1], plain, lrs, "b").startswith("does not hold: the share does not grow")
    nan = float("nan")
    assert sparsity_verdict([[nan, nan]] * 4, plain, lrs, "b").startswith("undecided")


def test_ensemble_verdict():
    wds = [0.0, 0.001, 0.01, 0.03]
    assert ensemble_verdict(wds, [0.12, 0.12, 0.81, 1.0], "b").startswith("holds")
    assert ensemble_verdict(wds, [1.0, 1.0, 1.0, 1.0], "b").startswith("does not hold: as many twins")
    assert ensemble_verdict(wds, [0.0, 0.1, 0.2, 0.3], "b").startswith("does not hold: < 0.5")


FIRST = {"vanilla": 6.1e-4, "rescaling": 6.1e-4, "rescaling_offset": 4.9e-4, "rescaling_noise": 5.8e-3}
LAST = {"vanilla": 6.1e-4, "rescaling": 0.88, "rescaling_offset": 5.2e-4, "rescaling_noise": 7.9e-3}


def test_plasticity_verdict():
    assert plasticity_verdict(FIRST, LAST, "b").startswith("holds")
    assert plasticity_verdict(FIRST, {**LAST, "rescaling": 6e-4}, "b").startswith(
        "does not hold: the symmetric model keeps learning")
    assert plasticity_verdict(FIRST, {**LAST, "vanilla": 0.88}, "b").startswith("does not hold: vanilla lose")
    assert plasticity_verdict(FIRST, {**LAST, "rescaling_noise": 0.9}, "b").startswith("does not hold: rescaling_noise")
    assert plasticity_verdict(FIRST, {**LAST, "vanilla": float("nan")}, "b").startswith("undecided")


def test_rank_control_is_the_residual_and_refuses_a_null_construction(monkeypatch):
    """The task's verdict compares U V with (U + I)(V + I); with the residual shift set to zero the control is
    U V itself (same symmetry, mirror at the origin) and the verdict must refuse the claim."""
    from symexp.tasks import mirror_experiments as me
    from tests.test_mirror import _inner

    kw = dict(dim=12, lrs=[0.002, 0.03], steps=3000, weight_decay=0.05, spectrum=[1.0, 1e-3])
    task = _inner(me.MirrorRankTask, **kw)
    assert task.results["verdict/rank"].startswith("holds"), task.results["verdict/rank"]
    monkeypatch.setitem(me.RANK_SHIFTS, "residual", (0.0, 0.0))
    null = _inner(me.MirrorRankTask, **kw)
    assert null.results["verdict/rank"].startswith("does not hold: the control falls too"), null.results["verdict/rank"]


def test_sweep_summary_shows_each_runs_verdict(tmp_path: Path):
    for n, (name, key, text) in enumerate([("mirror_rank", "verdict/rank", "holds: rank ... (budget=cpu: d=50)"),
                                           ("mirror_ensemble", "verdict/ensemble", "does not hold: x | y (budget=smoke)")]):
        job = tmp_path / str(n)
        job.mkdir()
        res = {"schema": 1, "status": "ok", "name": name, "seed": 0, "config": {}, "metrics": {key: text},
               "members": [{"seed": 0, "status": "ok", "metrics": {key: text, "rank/factorized/drop": 24.0}}]}
        (job / "results.json").write_text(json.dumps(res))
    write_report(tmp_path)
    md = (tmp_path / "summary.md").read_text()
    assert "| mirror_rank | 0 | 0 | rank | holds: rank ... (budget=cpu: d=50) |" in md
    assert "| mirror_ensemble | 1 | 0 | ensemble | does not hold: x / y (budget=smoke) |" in md


@pytest.mark.parametrize("bad", [[0.01, 0.001], [0.01]])
def test_rank_task_refuses_unordered_lrs(bad):
    from symexp.tasks.mirror_experiments import MirrorRankTask

    with pytest.raises(ValueError, match="task.lrs"):
        MirrorRankTask(None, None, lrs=bad)


def test_sparsity_trend_is_read_in_lr_order():
    sym = [[0.4, 0.7], [0, 0]]  # given largest lr first
    assert sparsity_verdict(sym, [[0, 0]] * 2, [0.03, 0.001], "b").startswith("holds")
