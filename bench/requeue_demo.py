"""Time limit -> requeue -> resume, on this machine: one RF-LR job under submitit's local executor with a
short limit per slot (submitit signals it 30 s before the limit, the job requeues itself and resumes from
its last checkpoint), against the same job run uninterrupted (both at once). Prints the slots submitit logged and
the metrics of both runs, which must be equal. Size --epochs so that the job needs about three slots:
a slot is 60 * timeout_min - 30 s, of which start-up (imports, data, model) takes 5-45 s depending on the
machine's load, and submitit's local executor allows 3 requeues (4 slots). Measured on the 2-core
machine of BENCHMARKS.md: --epochs 320 took 3 slots at load ~15; at load ~4, 4600 needed more than 4 (try ~2500).

Usage: python bench/requeue_demo.py [--epochs 240] [--timeout-min 2] [--out /tmp/requeue_demo]
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
    parser.add_argument("--epochs", type=int, default=240)
    parser.add_argument("--timeout-min", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("/tmp/requeue_demo"))
    args = parser.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    job = ["budget=smoke", "model.width=16", "model.depth=1", "data.n_train=64", "data.n_val=8",
           f"task.epochs={args.epochs}", "task.val_every=10", "task.engine=autograd", "checkpoint.every_n_epochs=5",
           "logger=none", "progress=none"]
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONPATH": str(ROOT)}
    launch = [sys.executable, str(ROOT / "launch.py")]
    slotted = [*launch, "-m", "launcher=submitit_local", f"hydra.launcher.timeout_min={args.timeout_min}", *job,
               f"hydra.sweep.dir={args.out}/sweep"]
    plain = [*launch, *job, f"hydra.run.dir={args.out}/uninterrupted"]
    print("$", " ".join(slotted[1:]))
    print("$", " ".join(plain[1:]), flush=True)
    pa = subprocess.Popen(slotted, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    pb = subprocess.Popen(plain, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    outputs = [p.communicate() for p in (pa, pb)]  # communicate, not wait: a full pipe would block the child
    a, b = [subprocess.CompletedProcess(p.args, p.returncode, *o) for p, o in zip((pa, pb), outputs)]
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
