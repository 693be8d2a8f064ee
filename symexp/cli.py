"""What `python launch.py` needs around a job: the schema, the `--help` text and the exit code.

Kept free of torch and Lightning so that `--help`, `--cfg`, `--info` and shell completion answer at once;
the pipeline (symexp.run) is imported only inside a job.
"""

from __future__ import annotations

import math
from pathlib import Path

from omegaconf import DictConfig

from symexp.report.aggregate import job_status
from symexp.schema import PROJECT_ROOT

CONF = PROJECT_ROOT / "conf"
BAD_STATUS = ("failed", "diverged")


def user_groups(conf: Path = CONF) -> str:
    """`group: option, option` lines for --help; options and groups whose name starts with _ are internal
    building blocks of other configs and are left out."""
    lines = []
    for group in sorted(p for p in conf.rglob("*") if p.is_dir()):
        rel = group.relative_to(conf)
        if any(part.startswith(("_", ".")) for part in rel.parts) or rel.parts[0] == "hydra":  # --hydra-help lists those
            continue
        options = sorted(f.stem for f in group.glob("*.yaml") if not f.stem.startswith("_"))
        if options:
            lines.append(f"{rel.as_posix()}: {', '.join(options)}")
    return "\n".join(lines)


HELP = """symexp: experiments on symmetry in neural-network weight space.

usage: python launch.py [group=option ...] [key=value ...]
       python launch.py -m key=a,b,c ...            a sweep: one job per value (see README.md)
       python launch.py -cd sweeps -cn NAME         a sweep file from sweeps/ (make sweep SWEEP=NAME)

== Configuration groups (group=option) ==
{groups}

== Common keys (key=value) ==
seed=0                 base seed; ensemble member k uses seed + k
ensemble.size=1        K members trained in one process
budget=paper           paper | cpu | smoke
device=cpu             cpu | gpu | auto | ddp
launcher=local         where sweep jobs run: local | joblib | submitit_local | local_gpus | slurm
logger.mode=auto       W&B mode: auto (WANDB_MODE, else offline) | offline | online | disabled
progress=auto          auto (a bar in a terminal, plain lines in a log) | rich | plain | none
resume=auto            auto: continue a matching checkpoint, skip a finished job | never | force
ckpt_path=null         a checkpoint file to start training from (weights, optimizer, loops)
debug=null             fast_dev_run | overfit | limit | profiler | default: CPU, no logger, outputs/debug
callbacks=none         extra Lightning callbacks, e.g. callbacks=[lr_monitor,early_stopping]
strict_exit=true       exit non-zero when a job failed or diverged (after the sweep summary)
hydra.sweep.dir=DIR    resume a sweep in DIR: finished jobs are skipped, failed and missing ones rerun

== Flags ==
--cfg job [--resolve]  print the composed config;  --info  where configs come from
-sc install=bash       tab completion for this shell;  --hydra-help  Hydra's own options
"""


def help_requested(argv: list[str]) -> bool:
    """--help / -h answered here, without Hydra: its help lists every option of every group (the internal
    _regression and _vision too) by composing each, which takes seconds."""
    return bool({"--help", "-h"} & set(argv))


def print_help() -> None:
    print(HELP.format(groups=user_groups()), end="")


def run_job(cfg: DictConfig) -> float | None:
    """Run one job. In a multirun, a job that failed or diverged returns None, which an Optuna sweeper
    records as a failed trial; a single run that failed or diverged exits non-zero unless strict_exit=false."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from symexp.run import run

    value = run(cfg)
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    if not HydraConfig.initialized() or getattr(rank_zero_only, "rank", 0):  # DDP: rank zero alone reports
        return value
    hc = HydraConfig.get()
    status, error = job_status(Path(hc.runtime.output_dir))
    if hc.mode == RunMode.MULTIRUN:
        finite = isinstance(value, (int, float)) and math.isfinite(value)
        return value if status not in BAD_STATUS and finite else None
    if status in BAD_STATUS and cfg.get("strict_exit", True):
        raise SystemExit(f"symexp: job {status}{': ' + error if error else ''} ({hc.runtime.output_dir}; strict_exit=false exits 0)")
    return value
