"""The PPO sweep summary (ppo_summary.md): budget stated, unfinished or failed jobs left out and named,
same-seed differences counted right (a duplicate variant differs by zero and is never "higher")."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from symexp.report.ppo_figure import SKIPPED, collect_runs, summary_table

STEPS = np.arange(1000, 9000, 1000, dtype=float)  # changes at 3000 and 6000: last phase = steps > 6000


def _job(root: Path, folder: str, name: str, seed: int, rank_last: float, ret_last: float,
         status: str | None = "ok") -> None:
    job = root / folder
    job.mkdir(parents=True)
    rank = np.where(STEPS > 6000, rank_last, 50.0)
    ret = np.where(STEPS > 6000, ret_last, -1000.0)
    lines = ["env_step,effective_rank_pct,abs_approx_rank_pct,return,dead_units"]
    lines += [f"{s},{r / 2},{r},{q},0" for s, r, q in zip(STEPS, rank, ret)]
    (job / "curves.csv").write_text("\n".join(lines) + "\n")
    (job / "parameter_changes.csv").write_text("env_step,value\n0,0.5\n3000,0.1\n6000,1.5\n")
    (job / "fingerprint.json").write_text("{}")
    if status is not None:
        (job / "results.json").write_text(json.dumps({
            "name": name, "seed": seed, "status": status, "config": {"data": {"change_every": 3000}},
            "metrics": {"train/return_final": ret_last, "rank/abs_approx_rank_pct": rank_last, "rank/dead_units": 0}}))


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    for seed, (l2_rank, syre_rank) in enumerate([(20.0, 30.0), (25.0, 24.0)]):
        _job(tmp_path, f"l2_{seed}", "ppo_x_l2", seed, l2_rank, -500.0)
        _job(tmp_path, f"syre_{seed}", "ppo_x_syre", seed, syre_rank, -400.0)
        _job(tmp_path, f"vanilla_{seed}", "ppo_x_vanilla", seed, l2_rank, -500.0)  # duplicates l2
    _job(tmp_path, "running", "ppo_x_syre", 2, 99.0, 0.0, status=None)
    _job(tmp_path, "diverged", "ppo_x_l2", 2, 0.0, -9999.0, status="diverged")
    return tmp_path


def test_unfinished_and_failed_jobs_are_left_out_and_named(sweep: Path):
    runs = collect_runs(sweep)
    assert sorted(runs[SKIPPED]) == ["diverged: status diverged", "running: no results.json yet (running or killed)"]
    assert {v: len(rs) for v, rs in runs.items() if v != SKIPPED} == {"l2": 2, "syre": 2, "vanilla": 2}
    text = summary_table(sweep)
    assert "Left out (2)" in text and "99" not in text and "-9999" not in text


def test_summary_states_budget_and_counts_same_seed_pairs(sweep: Path):
    text = summary_table(sweep)
    assert "6 runs, seeds 0, 1; 8000 env steps per run; 2 parameter changes per run (one every 3000" in text
    lines = {ln.split(",")[0]: ln for ln in text.splitlines() if ln.startswith("- ")}
    syre_l2 = lines["- PPO+syre minus PPO+L2"]
    assert "abs approx rank +4.5 (higher in 1 of 2 seeds)" in syre_l2  # (+10, -1) / 2
    assert "return +100 (higher in 2 of 2 seeds)" in syre_l2
    # vanilla duplicates l2: zero difference, never counted as higher
    assert ("abs approx rank +0.0 (higher in 0 of 2 seeds); dead units +0.0 (higher in 0 of 2 seeds); "
            "return +0 (higher in 0 of 2 seeds)") in lines["- PPO+L2 minus PPO"]
    assert "| 0 | 0.5 -> 0.1 -> 1.5 | -500 / 20 / 0 | -400 / 30 / 0 | -500 / 20 / 0 |" in text
    # effective rank: first 25, last (10, 12.5): mean 11.25, sample sd 1.77, standard error 1.77 / sqrt 2 = 1.25
    assert "| l2 | 2 | 2.0 | 25.0 -> 11.2 +- 1.2 |" in text


def test_summary_refuses_a_folder_without_finished_runs(tmp_path: Path):
    _job(tmp_path, "running", "ppo_x_syre", 0, 1.0, 0.0, status=None)
    with pytest.raises(FileNotFoundError, match="no finished PPO run"):
        summary_table(tmp_path)


def test_standard_error_uses_the_sample_deviation_and_needs_two_seeds():
    from symexp.report.ppo_figure import sem

    assert float(sem([1.0, 2.0, 3.0, float("nan")])) == pytest.approx(1 / np.sqrt(3))  # sd 1 (ddof 1), n 3
    assert np.isnan(sem([5.0, float("nan")]))
    assert sem(np.array([[1.0, 4.0], [3.0, float("nan")]]), 0) == pytest.approx([1.0, float("nan")], nan_ok=True)


def test_a_phase_without_an_ended_episode_reads_n_a_without_a_warning(tmp_path: Path):
    import warnings

    for seed in (0, 1):
        _job(tmp_path, f"syre_{seed}", "ppo_x_syre", seed, 30.0, -400.0)
        curves = tmp_path / f"syre_{seed}" / "curves.csv"
        rows = curves.read_text().splitlines()
        rows[1:4] = [",".join(r.split(",")[:3] + ["nan"] + r.split(",")[4:]) for r in rows[1:4]]  # no return yet
        curves.write_text("\n".join(rows) + "\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        text = summary_table(tmp_path)
    assert "| n/a -> -400 +- 0 |" in text and "nan" not in text
