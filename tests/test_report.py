"""The report over results.json trees: member rows, failed and diverged jobs listed, figures, and a real
two-job multirun that ends with its summary files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from symexp.report import collect, write_report
from symexp.results import write_json_atomic
from tests.conftest import ROOT


def _result(status, members, model="rflr", rank=8, data="quad2d", sampling="uniform", error=None):
    return {
        "schema": 1, "status": status, "error": error, "name": f"{model}_{data}", "seed": 0,
        "config": {"model": {"_target_": "symexp.models.rflr.RFLR" if model == "rflr" else "symexp.models.mlp.MLP",
                             "rank": rank if model == "rflr" else None, "width": 64,
                             "depth": 3 if model == "rflr" else 2,
                             **({"partials": "pre"} if model == "mlp" else {})},
                   "data": {"label": data, "sampling": sampling}},
        "metrics": {}, "members": members, "timing": {}, "env": {},
    }


def _member(seed, mse, pd, regime, status="ok", mm=0.3):
    return {"seed": seed, "status": status, "metrics": {
        "test/mse": mse, "sym/output_defect": mse * 3, "sym/partial_defect": pd, "sym/mirror_mismatch": mm,
        "sym/partial_defect/block1": 2.0, "sym/partial_defect/block2": pd,
        "regime": regime, "data/mirror_distance": 0.2}}


def _tree(root: Path) -> None:
    write_json_atomic(root / "0" / "results.json", _result("ok", [
        _member(0, 1e-5, 5e-4, "partial-symmetric"), _member(1, 2e-5, 2e-3, "intermediate"),
        _member(2, 1e-5, 3e-4, "partial-symmetric")]))
    write_json_atomic(root / "1" / "results.json", _result("ok", [
        _member(0, 5e-5, 0.8, "output-only"), _member(1, 6e-5, 1.2, "output-only")], model="mlp"))
    write_json_atomic(root / "2" / "results.json", _result("diverged", [
        _member(0, float("nan"), float("nan"), "diverged", status="diverged")], rank=128))
    write_json_atomic(root / "3" / "results.json", _result("failed", [], error="ValueError: model.rank: too big"))
    (root / "4" / ".hydra").mkdir(parents=True)  # a job killed before it wrote results.json
    write_json_atomic(root / "5" / "results.json", _result("ok", [
        _member(0, 2e-4, 1e-2, "intermediate"), _member(1, 3e-4, 2e-2, "intermediate")],
        sampling="positive_bias", data="gauss2d"))
    write_json_atomic(root / "6" / "results.json", _result("ok", [
        _member(0, 3e-4, 1.3, "output-only"), _member(1, 2e-4, 1.1, "output-only")],
        model="mlp", sampling="positive_bias", data="gauss2d"))


def test_an_ensemble_of_k_members_gives_k_rows(tmp_path):
    _tree(tmp_path)
    rows = collect(tmp_path)
    assert len([r for r in rows if r["job"] == "0"]) == 3
    assert {r["seed"] for r in rows if r["job"] == "0"} == {0, 1, 2}


def test_report_lists_failed_diverged_and_killed_jobs(tmp_path):
    _tree(tmp_path)
    paths = write_report(tmp_path)
    md = (tmp_path / "summary.md").read_text()
    failed = md.split("## Failed or diverged")[1]
    assert "| 2 | 0 | diverged |" in failed
    assert "| 3 |" in failed and "model.rank: too big" in failed
    assert "| 4 |" in failed and "no results.json" in failed
    csv = (tmp_path / "summary.csv").read_text().splitlines()
    assert len(csv) == 1 + 3 + 2 + 1 + 1 + 1 + 2 + 2
    assert tmp_path / "figures" / "figure3.png" in paths
    assert (tmp_path / "figures" / "figure5.png").exists()


def test_report_tables_regimes_and_separation(tmp_path):
    _tree(tmp_path)
    write_report(tmp_path)
    md = (tmp_path / "summary.md").read_text()
    assert "rflr (budget unknown): 6 runs: 2 partial-symmetric, 3 intermediate, 1 diverged" in md
    assert "mlp (budget unknown): 4 runs: 4 output-only" in md
    assert "- quad2d (uniform, W = 64; budget unknown; paper: 10k epochs" in md
    assert ("separation holds against the paper-matching control: RF-LR rank 8 median active D_p 0.0005 [0.0003, "
            "0.002] vs MLP (2 hidden layers, pre-activation) 1 [0.8, 1.2]: factor 2e+03x; per hidden block, "
            "first to last: RF-LR 2 / 0.0005, MLP 2 / 1") in md
    assert "- gauss2d (positive_bias, W = 64; budget unknown; paper: N = 128, epochs not stated" in md
    assert "[0.000998]" not in md, "the paper's W = 512 values stand only beside W = 512 rows"
    assert "| quad2d | rflr | 8 | 3 | 64 | uniform | budget unknown | 3 | 1e-05 [1e-05, 2e-05] |" in md


def test_report_cli(tmp_path):
    _tree(tmp_path)
    out = subprocess.run([sys.executable, "-m", "symexp.report", str(tmp_path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "summary.md" in out.stdout


def test_two_job_multirun_ends_with_its_summary(tmp_path):
    env = {**os.environ, "WANDB_MODE": "offline"}
    cmd = [sys.executable, str(ROOT / "launch.py"), "-m", "model.rank=2,3", "model.width=16", "model.depth=1",
           "data.n_train=8", "data.n_val=8", "task.epochs=2", "task.val_every=1", "logger=none", "progress=none",
           f"hydra.sweep.dir={tmp_path}/sweep"]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    sweep = tmp_path / "sweep"
    assert (sweep / "summary.md").exists() and (sweep / "summary.csv").exists()
    rows = collect(sweep)
    assert sorted(r["rank"] for r in rows) == [2, 3]
    assert all(json.loads((sweep / str(i) / "results.json").read_text())["status"] == "ok" for i in (0, 1))
