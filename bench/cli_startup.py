"""Start-up time of the command line: `--help`, `--cfg job`, `--info` and one bash TAB completion.

Why: the target is under 1.5 s for each, so that exploring configs and pressing TAB feel instant; the job
itself (torch, Lightning) is imported only when a job starts. Each command runs as a fresh process
`--repeats` times; the table shows the median and the best wall time and the median CPU time (user + sys
of the child), which the load of a shared machine inflates less than wall time.

Usage: python bench/cli_startup.py [--repeats 7] [--launch launch.py] [--out bench/results/cli_startup.md]
(--launch: another entry point in the repository root, e.g. an older launch.py, for a before/after row)
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = {
    "--help": ["--help"],
    "--cfg job": ["--cfg", "job"],
    "--info": ["--info"],
    "-cd sweeps -cn rflr_reruns_1d --cfg job": ["-cd", "sweeps", "-cn", "rflr_reruns_1d", "--cfg", "job"],
    "TAB: `launch.py model.wi<TAB>`": ["-sc", "query=bash"],
}


def _once(launch: str, args: list[str], env: dict) -> tuple[float, float]:
    """(wall s, cpu s) of one fresh `python LAUNCH ARGS`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, str(ROOT / launch), *args], capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode != 0:
        raise SystemExit(f"launch.py {' '.join(args)} failed:\n{out.stderr[-2000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--launch", default="launch.py", help="entry point, relative to the repository root")
    parser.add_argument("--out", type=Path, default=None, help="also write the table to this markdown file")
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WANDB_MODE": "offline",
           # what bash's completion function passes to `launch.py -sc query=bash`
           "COMP_LINE": "python launch.py model.wi", "COMP_POINT": str(len("python launch.py model.wi"))}
    _once(args.launch, ["--cfg", "job"], env)  # warm the page cache so the first row is not a cold-disk outlier
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    lines = [
        f"CLI start-up of {args.launch}, {args.repeats} fresh processes each; python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, load avg {load}",
        "",
        "| command | median wall s | best wall s | median CPU s |",
        "|---|---|---|---|",
    ]
    for name, cmd in COMMANDS.items():
        runs = [_once(args.launch, cmd, env) for _ in range(args.repeats)]
        walls, cpus = [w for w, _ in runs], [c for _, c in runs]
        lines.append(f"| `{name}` | {statistics.median(walls):.2f} | {min(walls):.2f} | {statistics.median(cpus):.2f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
