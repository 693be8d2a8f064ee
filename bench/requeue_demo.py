"""Time limit -> requeue -> resume, on this machine: one RF-LR job under submitit's local executor with a
one-minute limit per slot (submitit signals it 30 s into each slot, the job requeues itself and resumes
from its last checkpoint), against the same job run uninterrupted. Prints the slots submitit logged and
the metrics of both runs, which must be equal.

Usage: python bench/requeue_demo.py [--epochs 400] [--out /tmp/requeue_demo]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=400)
    parser.add_argument("--out", type=Path, default=Path("/tmp/requeue_demo"))
    args = parser.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    job = ["budget=smoke", "model.width=16", "model.depth=1", "data.n_train=64", "data.n_val=8",
           f"task.epochs={args.epochs}", "task.val_every=10", "task.engine=autograd", "checkpoint.every_n_epochs=10",
           "logger=none", "progress=none"]
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONPATH": str(ROOT)}
    launch = [sys.executable, str(ROOT / "launch.py")]
    slotted = [*launch, "-m", "launcher=submitit_local", "hydra.launcher.timeout_min=1", *job,
               f"hydra.sweep.dir={args.out}/sweep"]
    plain = [*launch, *job, f"hydra.run.dir={args.out}/uninterrupted"]
    print("$", " ".join(slotted[1:]))
    a = subprocess.run(slotted, env=env, cwd=ROOT, capture_output=True, text=True)
    print("$", " ".join(plain[1:]))
    b = subprocess.run(plain, env=env, cwd=ROOT, capture_output=True, text=True)
    if a.returncode or b.returncode:
        raise SystemExit(f"exit codes {a.returncode}, {b.returncode}:\n{a.stderr[-3000:]}\n{b.stderr[-3000:]}")
    print("\nsubmitit's log of the slotted job:")
    for log in sorted((args.out / "sweep" / ".submitit").glob("*/*_log.out")):
        for line in log.read_text().splitlines():
            if line.startswith("submitit ") and any(k in line for k in ("Starting", "timed-out", "Requeued", "completed")):
                print("  " + line)
    got = json.loads((args.out / "sweep" / "0" / "results.json").read_text())
    want = json.loads((args.out / "uninterrupted" / "results.json").read_text())
    print(f"\nresumed_from: {got['timing']['resumed_from']}; train steps {got['timing']['train_steps']} vs "
          f"{want['timing']['train_steps']}")
    print(f"{'metric':28s} {'3-slot job':>14s} {'uninterrupted':>14s}")
    for key, value in want["metrics"].items():
        if isinstance(value, float):
            print(f"{key:28s} {got['metrics'][key]:14.8g} {value:14.8g}")
    same = got["metrics"] == want["metrics"] and got["members"] == want["members"]
    print("\nidentical metrics and members:", same)
    if not same:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
