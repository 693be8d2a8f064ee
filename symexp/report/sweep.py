"""What a sweep folder says about itself: its name and W&B group, the keys it swept (with their values),
the config its jobs share, the numeric metrics they wrote, and the study family they belong to.

The swept keys come from two places, because a sweep can be declared either way: the sweeper's params in
``multirun.yaml`` (``sweeps/NAME.yaml``) and the jobs' own overrides (``.hydra/overrides.yaml``), where
any key whose value differs between jobs was swept (a comma list on the command line, an Optuna search)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import yaml

# study family -> the experiment-name prefixes that belong to it
FAMILIES = {
    "seed000": ("rflr_", "mlp_"),
    "syre": ("syre_",),
    "ppo": ("ppo_",),
    "discovery": ("gen_",),
    "mirror": ("mirror_",),
}


@dataclass
class Job:
    folder: Path
    overrides: dict[str, str]
    results: dict

    @property
    def metrics(self) -> dict:
        return self.results.get("metrics") or {}


@dataclass
class Sweep:
    root: Path
    swept: dict[str, list[str]]           # key -> its values, in the order they were swept
    jobs: list[Job] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.root.parent.name

    @property
    def group(self) -> str:
        """The W&B group of the sweep's runs (symexp.run: the sweep folder's last two parts)."""
        return f"{self.root.parent.name}/{self.root.name}"

    @property
    def experiments(self) -> list[str]:
        return list(dict.fromkeys(str(j.results.get("name")) for j in self.jobs if j.results.get("name")))

    @property
    def family(self) -> str:
        """The study family of most of the sweep's experiments (or the sweep's own name); 'generic' if none."""
        names = self.experiments or [self.name]
        votes = [f for n in names for f, prefixes in FAMILIES.items() if n.startswith(prefixes)]
        return max(set(votes), key=votes.count) if votes else "generic"

    def metrics(self) -> list[str]:
        """Every numeric metric some job wrote, in first-seen order."""
        keys: dict[str, None] = {}
        for job in self.jobs:
            for key, value in job.metrics.items():
                if _is_number(value):
                    keys.setdefault(key)
        return list(keys)

    def shared_config(self) -> dict:
        """The resolved config values every job agrees on (the swept ones differ, so they drop out)."""
        configs = [j.results.get("config") for j in self.jobs if isinstance(j.results.get("config"), dict)]
        return _common(configs) if configs else {}

    def logger_config(self) -> dict:
        for job in self.jobs:
            logger = (job.results.get("config") or {}).get("logger")
            if isinstance(logger, dict):
                return logger
        return {}


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _common(configs: list[dict]) -> dict:
    out = {}
    for key, value in configs[0].items():
        others = [c.get(key, _MISSING) for c in configs[1:]]
        if isinstance(value, dict) and all(isinstance(o, dict) for o in others):
            sub = _common([value, *others])
            if sub:
                out[key] = sub
        elif all(o == value for o in others):
            out[key] = value
    return out


_MISSING = object()


def _overrides(job: Path) -> dict[str, str]:
    path = job / ".hydra" / "overrides.yaml"
    try:
        items = yaml.safe_load(path.read_text()) or []
    except (OSError, yaml.YAMLError):
        return {}
    out = {}
    for item in items:
        key, _, value = str(item).partition("=")
        out[key.lstrip("+~")] = value.strip("'\"")
    return out


def _sweeper_params(root: Path) -> dict[str, list[str]]:
    try:
        cfg = yaml.safe_load((root / "multirun.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        return {}
    params = ((cfg.get("hydra") or {}).get("sweeper") or {}).get("params") or {}
    return {str(k): [v.strip() for v in str(vals).replace("\n", " ").split(",") if v.strip()]
            for k, vals in params.items()}


def read_sweep(root: Path) -> Sweep:
    """The sweep below root: every job folder (it holds .hydra/) with its overrides and results.json."""
    root = Path(root).resolve()
    jobs = []
    for hydra_dir in sorted(root.rglob(".hydra"), key=lambda p: _job_order(p.parent, root)):
        folder = hydra_dir.parent
        if folder == root:
            continue
        try:
            results = json.loads((folder / "results.json").read_text())
        except (OSError, json.JSONDecodeError):
            results = {}
        jobs.append(Job(folder, _overrides(folder), results))
    swept = _sweeper_params(root)
    seen: dict[str, list[str]] = {}
    for job in jobs:
        for key, value in job.overrides.items():
            seen.setdefault(key, [])
            if value not in seen[key]:
                seen[key].append(value)
    for key, values in seen.items():
        if key in swept:
            swept[key] = [v for v in swept[key] if v in values] or values
        elif len(values) > 1 or any(key not in j.overrides for j in jobs):
            swept[key] = values
    return Sweep(root, swept, jobs)


def _job_order(folder: Path, root: Path) -> tuple:
    parts = folder.relative_to(root).parts
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts)
