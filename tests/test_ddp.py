"""DDP on CPU (2 processes, gloo): only rank zero writes results.json, figures and the W&B run and reports,
and the job ends ok (rank 1 used to crash in the summary update and leave status ok beside an error, then
to print "job failed: no readable results.json" when it looked for rank zero's results too early)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import ROOT


def test_two_process_cpu_ddp_smoke(tmp_path):
    job = tmp_path / "job"
    cmd = [sys.executable, str(ROOT / "launch.py"), "experiment=syre_fcn", "budget=smoke", "device=ddp",
           "device.accelerator=cpu", "device.devices=2", "progress=none", f"hydra.run.dir={job}"]
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads((job / "results.json").read_text())
    assert res["status"] == "ok" and res["error"] is None
    assert res["metrics"]["test/acc"] > 0.3
    assert not (job / "results.failed.json").exists()
    assert "Traceback" not in proc.stderr
    assert "job failed" not in proc.stdout + proc.stderr, "rank 1 must not judge the job (rank zero alone reports)"
    assert len(list((job / "wandb").glob("offline-run-*"))) == 1  # rank zero's run only
    assert (job / "checkpoints" / "last.ckpt").exists()
