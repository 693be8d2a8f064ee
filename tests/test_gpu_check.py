"""bench/gpu_check.sh: the dry run prints its plan and runs the CPU-safe sections end to end; without a
GPU the measuring mode refuses at once instead of writing CPU numbers as GPU ones."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent


def test_dry_run_prints_plan_and_writes_cpu_tables(tmp_path):
    out = tmp_path / "gpu_check.md"
    env = dict(os.environ, PYTHON=sys.executable, OUT=str(out), PYTHONPATH=str(ROOT), WANDB_MODE="offline")
    proc = subprocess.run(["bash", "bench/gpu_check.sh", "--dry-run"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "bench/gpu_check.py --budget-s" in proc.stdout  # the plan names the measuring command
    md = out.read_text()
    assert md.startswith("# symexp GPU check: CPU dry run (no GPU numbers)")
    for heading in ("## tests", "## rflr", "## protocol", "## vision", "## preset", "## ddp", "## presets"):
        assert heading in md
    assert "| 4 |" in md and "graph engine member-steps/s" in md  # the RF-LR rows were measured
    assert "Estimated wall time" in md and "| resnet18 | 4 |" in md and "| vit | 4 |" in md
    assert "failed sections: none" in md


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_measuring_mode_refuses_without_cuda(tmp_path, capsys):
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import gpu_check
    finally:
        sys.path.remove(str(ROOT / "bench"))
    assert gpu_check.main(["--out", str(tmp_path / "x.md")]) == 2
    assert "no CUDA device" in capsys.readouterr().err
    assert not (tmp_path / "x.md").exists()


def test_unknown_argument_fails_with_usage():
    proc = subprocess.run(["bash", "bench/gpu_check.sh", "--fast"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2 and "unknown argument --fast" in proc.stderr


def test_side_by_side_worker_counts_member_steps_on_cpu():
    """The worker behind 'jobs side by side' (run in-process here, on the CPU, for a fraction of a second)."""
    import time

    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import gpu_check
    finally:
        sys.path.remove(str(ROOT / "bench"))
    spec = dict(kind="rflr", shape=dict(in_dim=2, width=16, rank=3, depth=1), K=2, steps=4, device="cpu",
                seconds=0.05, start_at=time.time())
    got = gpu_check._worker(spec)
    assert got["rate"] > 0 and isinstance(got["late"], bool)
