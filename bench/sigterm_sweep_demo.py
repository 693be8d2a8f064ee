"""SIGTERM a sweep in the middle of a job, rerun the same command, and compare every job's numbers with the
same sweep run uninterrupted (both sweeps start together).

    python bench/sigterm_sweep_demo.py [--jobs 3] [--epochs 40] [--after-checkpoints 3] [--out /tmp/sigterm_demo]

The signal goes to the sweep's process (what SLURM sends at a time limit or on scancel) once the second job
has written `--after-checkpoints` checkpoints. The interrupted sweep must exit 143 with job 1 `interrupted`,
the later jobs `not_started` and its summary written; the rerun skips job 0, continues job 1 from its
checkpoint, runs the rest, exits 0, and every metric and member row must equal the uninterrupted sweep's.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _launch(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, str(ROOT / "launch.py"), *args], env=env, cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _statuses(sweep: Path, n: int) -> list[str]:
    return [json.loads((sweep / str(i) / "results.json").read_text())["status"] for i in range(n)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--after-checkpoints", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("/tmp/sigterm_demo"))
    args = parser.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    seeds = ",".join(str(i) for i in range(args.jobs))
    sweep_args = ["-m", f"seed={seeds}", "budget=smoke", "model.width=16", "model.depth=1", "data.n_train=64",
                  "data.n_val=8", f"task.epochs={args.epochs}", "task.val_every=1", "task.engine=autograd",
                  "checkpoint.every_n_epochs=1", "logger=wandb", "progress=none"]
    ref, sweep = args.out / "uninterrupted", args.out / "interrupted"
    print("$ python launch.py", " ".join(sweep_args), f"hydra.sweep.dir={sweep}", flush=True)
    t0 = time.time()
    reference = _launch([*sweep_args, f"hydra.sweep.dir={ref}"])
    proc = _launch([*sweep_args, f"hydra.sweep.dir={sweep}"])
    ckpt, seen, last = sweep / "1" / "checkpoints" / "last.ckpt", 0, None
    while proc.poll() is None and seen < args.after_checkpoints:
        mtime = ckpt.stat().st_mtime_ns if ckpt.exists() else None
        if mtime is not None and mtime != last:
            seen, last = seen + 1, mtime
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate()
    t_signal = time.time() - t0
    lines = [x for x in out.splitlines() if "interrupted" in x or "not started" in x]
    print(f"\nSIGTERM after {seen} checkpoints of job 1 ({t_signal:.0f} s): exit {proc.returncode}")
    for line in lines[-3:]:
        print("  " + line.split("] - ", 1)[-1][:220])
    print("  statuses:", _statuses(sweep, args.jobs), "| summary.md:", (sweep / "summary.md").exists())
    ok = proc.returncode == 143 and (sweep / "summary.md").exists()
    t1 = time.time()
    again = _launch([*sweep_args, f"hydra.sweep.dir={sweep}"])
    out, _ = again.communicate()
    print(f"\nrerun of the same command: exit {again.returncode} in {time.time() - t1:.0f} s; "
          f"statuses {_statuses(sweep, args.jobs)}")
    reference.communicate()
    print(f"uninterrupted sweep: exit {reference.returncode}; total wall {time.time() - t0:.0f} s\n")
    print("| job | resumed_from | train steps (rerun / uninterrupted) | metrics equal | members equal |")
    print("|---|---|---|---|---|")
    for i in range(args.jobs):
        got = json.loads((sweep / str(i) / "results.json").read_text())
        want = json.loads((ref / str(i) / "results.json").read_text())
        same = got["metrics"] == want["metrics"], got["members"] == want["members"]
        ok &= all(same)
        resumed = got["timing"].get("resumed_from")
        print(f"| {i} | {Path(resumed).relative_to(sweep) if resumed else '-'} | {got['timing']['train_steps']} / "
              f"{want['timing']['train_steps']} | {same[0]} | {same[1]} |")
    ok &= again.returncode == 0 and reference.returncode == 0
    print("\nresult:", "the resumed sweep equals the uninterrupted one" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
