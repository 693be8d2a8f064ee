"""SIGKILL a job about half way, rerun the same command, and compare every metric with an uninterrupted run.

    python bench/kill_and_resume.py [OVERRIDES...]       (default: the `make run` preset at its paper budget)

The job checkpoints every 10% of its epochs (the default cadence); the script kills it with SIGKILL right
after the fifth checkpoint is written, so the resumed run has about half the training left.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _launch(job: Path, overrides: list[str]) -> subprocess.Popen:
    cmd = [sys.executable, str(ROOT / "launch.py"), *overrides, "logger=none", "progress=none", f"hydra.run.dir={job}"]
    env = {**os.environ, "WANDB_MODE": "offline"}
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main(overrides: list[str]) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="symexp-kill-"))
    full, part = tmp / "uninterrupted", tmp / "killed"
    t0 = time.time()
    if _launch(full, overrides).wait() != 0:
        print(f"uninterrupted run failed: see {full}/launch.log")
        return 1
    t_full = time.time() - t0
    proc = _launch(part, overrides)
    ckpt, seen, last = part / "checkpoints" / "last.ckpt", 0, None
    while proc.poll() is None and seen < 5:
        mtime = ckpt.stat().st_mtime_ns if ckpt.exists() else None
        if mtime is not None and mtime != last:
            seen, last = seen + 1, mtime
        time.sleep(0.02)
    killed_at = time.time()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    if (part / "results.json").exists():
        print("the job finished before the kill; use a longer preset")
        return 1
    t1 = time.time()
    if _launch(part, overrides).wait() != 0:
        print(f"resumed run failed: see {part}/launch.log")
        return 1
    a = json.loads((full / "results.json").read_text())
    b = json.loads((part / "results.json").read_text())
    print(f"overrides: {' '.join(overrides) or '(defaults)'}")
    print(f"uninterrupted: {t_full:.1f} s; killed (SIGKILL) after 5 checkpoints at {killed_at - t0 - t_full:.1f} s; "
          f"resumed from {b['timing']['resumed_from']} in {time.time() - t1:.1f} s")
    same = True
    print("| metric | uninterrupted | killed + resumed | equal |\n|---|---|---|---|")
    for key, value in a["metrics"].items():
        other = b["metrics"].get(key)
        same &= value == other
        print(f"| {key} | {value} | {other} | {'yes' if value == other else 'NO'} |")
    print(f"train steps {a['timing']['train_steps']} vs {b['timing']['train_steps']}; "
          f"all metrics equal: {same and a['members'] == b['members']}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
