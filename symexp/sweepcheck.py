"""Resuming a sweep into its folder: refused up front when the jobs come in another order, and every job
refused later (another config's folder) recorded in the sweep folder for its summary and exit code.

Hydra numbers a sweep's jobs by position, and job N always runs in folder N. A sweep rerun with its values
in another order would send each job into a folder of another config: every such job would be refused
one by one, and the sweep would half-run. The check before any job starts compares each job's overrides
(and, where they differ, its config fingerprint) with the folder it would run in, and refuses with one
line that says how to resume. It covers Hydra's basic sweeper; other sweepers' jobs are refused one by
one (recorded, never touching the folder).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import yaml
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

REFUSED = ".refused"  # <sweep>/.refused/<job>.json: the jobs this invocation refused, cleared at its start
BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"


def record_refusal(hydra_cfg: Any, message: str) -> None:
    """Record that this sweep job was refused (its own folder stays untouched)."""
    from symexp.results import write_json_atomic

    sweep_dir, job = Path(hydra_cfg.sweep.dir), Path(hydra_cfg.runtime.output_dir)
    name = str(job.relative_to(sweep_dir)) if job.is_relative_to(sweep_dir) else job.name
    write_json_atomic(sweep_dir / REFUSED / f"{name.replace('/', '_')}.json",
                      {"job": name, "status": "refused", "error": message})


def refusals(sweep_dir: Path) -> dict[str, str]:
    """{job folder: error} of the jobs the latest invocation of this sweep refused."""
    out = {}
    for path in sorted((Path(sweep_dir) / REFUSED).glob("*.json")):
        try:
            record = json.loads(path.read_text())
            out[str(record["job"])] = str(record.get("error"))
        except (OSError, ValueError, KeyError, TypeError):
            out[path.stem] = "refused (unreadable record)"
    return out


def _recorded_fingerprint(job: Path) -> str | None:
    for name in ("fingerprint.json", "results.json"):
        try:
            value = json.loads((job / name).read_text()).get("fingerprint")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(value, str):
            return value
    return None


def _recorded_overrides(job: Path) -> list[str] | None:
    """The job's overrides as typed (plain YAML: OmegaConf would resolve a ${...} inside them)."""
    try:
        items = yaml.safe_load((job / ".hydra" / "overrides.yaml").read_text())
    except (OSError, yaml.YAMLError):  # missing or unreadable: the fingerprint decides
        return None
    return [str(x) for x in items] if isinstance(items, list) else None


def sweep_jobs(config: DictConfig) -> list[list[str]]:
    """The override list of every job the basic sweeper will launch, in its order."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params = config.hydra.sweeper.get("params") or {}
    arguments = [f"{k}={v}" for k, v in params.items()]
    arguments += list(OmegaConf.to_container(config.hydra.overrides.task, resolve=False))
    overrides = OverridesParser.create().parse_overrides(arguments)
    return [job for batch in BasicSweeper.split_arguments(overrides, None) for job in batch]


def _job_fingerprint(config: DictConfig, overrides: list[str], num: int, job_dir: Path) -> str | None:
    """The fingerprint of the job these overrides make (composed and numbered as Hydra's launcher does)."""
    import copy

    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from symexp.fingerprint import fingerprint
    from symexp.validation import resolve_config

    if not GlobalHydra.instance().is_initialized():
        return None
    saved = HydraConfig.instance().cfg
    try:
        job_cfg = GlobalHydra.instance().config_loader().load_sweep_config(config, list(overrides))
        with open_dict(job_cfg):
            job_cfg.hydra.job.num, job_cfg.hydra.job.id = num, f"resume-check_{num}"
            job_cfg.hydra.runtime.output_dir = str(job_dir.absolute())
        HydraConfig.instance().set_config(job_cfg)  # ${hydra:...} values resolve as in the job
        task = copy.deepcopy(job_cfg)
        with open_dict(task):
            del task["hydra"]
        return fingerprint(resolve_config(task))
    except Exception:  # a job that cannot compose fails in the sweep with its own message
        return None
    finally:
        HydraConfig.instance().cfg = saved


def order_problem(config: DictConfig, sweep_dir: Path) -> str | None:
    """Why this sweep cannot resume into sweep_dir (its jobs meet folders of other configs), or None."""
    if OmegaConf.select(config, "hydra.sweeper._target_") != BASIC_SWEEPER or not sweep_dir.is_dir():
        return None
    subdir = str(OmegaConf.to_container(config.hydra.sweep, resolve=False).get("subdir"))
    if subdir not in ("${hydra.job.num}", "${hydra:job.num}"):
        return None  # folders not named by position: nothing to compare
    clashes = []
    for num, overrides in enumerate(sweep_jobs(config)):
        job = sweep_dir / str(num)
        recorded = _recorded_fingerprint(job) if job.is_dir() else None
        if recorded is None:
            continue
        before = _recorded_overrides(job)
        if before is not None and sorted(before) == sorted(overrides):
            continue
        if _job_fingerprint(config, overrides, num, job) == recorded:
            continue
        if before is None:
            clashes.append(f"job {num} holds another config")
        else:
            was = " ".join(o for o in before if o not in overrides) or "(no override)"
            now = " ".join(o for o in overrides if o not in before) or "(no override)"
            clashes.append(f"job {num} ran {was}, now {now}")
    if not clashes:
        return None
    shown = "; ".join(clashes[:4]) + (f"; and {len(clashes) - 4} more" if len(clashes) > 4 else "")
    return (f"{sweep_dir} holds this sweep's jobs in another order ({shown}). Resume with the same values in "
            "the same order (new values only at the end), or start a new sweep with another hydra.sweep.dir")


class SweepResume(Callback):
    """Before a multirun launches: forget the refusals of the previous invocation and refuse a resume
    whose jobs would land in folders of other configs."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        shutil.rmtree(sweep_dir / REFUSED, ignore_errors=True)
        problem = order_problem(config, sweep_dir)
        if problem:
            # SystemExit, not an exception: Hydra turns callback exceptions into warnings
            raise SystemExit(f"symexp: configuration error: resume: {problem}")
