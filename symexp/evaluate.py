"""Evaluate a finished or interrupted job from its folder, without training further.

    python -m symexp.evaluate JOB_DIR [overrides]        (make eval DIR=JOB_DIR ARGS="...")

Reloads the job's resolved config (``config.resolved.yaml``, else the one inside the checkpoint) and
``checkpoints/last.ckpt``, restores the best parameters, recomputes every metric and figure, and writes
``JOB_DIR/eval/results.json`` and ``JOB_DIR/eval/figures/`` beside the original; the logger run it
makes has ``job_type=eval``. Overrides change only what is measured:

- ``metric=[rank,dead_coordinates]`` (or any metric selection) re-selects the metric group;
- ``key=value`` sets one value, e.g. ``data.grid_points=201`` (the evaluation grid), ``logger=none``
  (``logger=none|csv|wandb`` selects the logger), ``progress=none``.

Keys that define what was trained (model, task, syre, seed, ensemble) cannot change here.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml
from omegaconf import DictConfig, OmegaConf

from symexp.run import RESOLVED
from symexp.schema import CONF_DIR, ConfigError

SELECTABLE = ("metric", "logger")  # groups whose option an evaluation may re-select
FROZEN = ("model", "task", "syre", "seed", "ensemble")


def _group(override: str, group: str) -> dict:
    """The node a group selection composes to, e.g. metric=[rank,dead_coordinates]."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        composed = compose(config_name="config", overrides=[override])
    GlobalHydra.instance().clear()
    return OmegaConf.to_container(composed[group], resolve=True)


def job_config(job_dir: Path) -> dict:
    """The resolved config a job ran with."""
    path = job_dir / RESOLVED
    if path.exists():
        return OmegaConf.to_container(OmegaConf.load(path))
    ckpt = job_dir / "checkpoints" / "last.ckpt"
    if ckpt.exists():
        import torch

        config = (torch.load(ckpt, map_location="cpu", weights_only=False).get("symexp") or {}).get("config")
        if config:
            return config
    raise ConfigError("JOB_DIR", f"{job_dir} has no {RESOLVED} and no checkpoint with a config: not a symexp job folder")


def eval_config(job_dir: Path, overrides: list[str]) -> DictConfig:
    config = job_config(job_dir)
    for item in overrides:
        key, sep, value = item.lstrip("+").partition("=")
        if not sep:
            raise ConfigError(key, f"override {item!r} is not key=value")
        top = key.split(".")[0]
        if top in FROZEN:
            raise ConfigError(key, "defines what was trained; evaluate cannot change it (train a new job instead)")
        if key in SELECTABLE:
            config[key] = _group(item.lstrip("+"), key)
        else:
            node = OmegaConf.create(config)
            OmegaConf.update(node, key, yaml.safe_load(value), merge=False, force_add=True)
            config = OmegaConf.to_container(node)
    config["save_checkpoints"] = False
    return OmegaConf.create(config)


def check_checkpoint(job_dir: Path, ckpt: Path) -> None:
    """The checkpoint must be this folder's run: intact, of the same config fingerprint (a checkpoint copied
    in from another job would be evaluated and labelled with this job's seed), and, when it records no
    fingerprint, of the same architecture (symexp.audit's check, one line naming the mismatch)."""
    import torch

    from symexp import fingerprint as fp
    from symexp.audit.targets import AuditError, load_weights, model_from_config
    from symexp.folder import checkpoint_problem

    problem = checkpoint_problem(ckpt)
    if problem:
        raise ConfigError("JOB_DIR", f"{ckpt} is unreadable ({problem}): rerun the job to recreate it")
    config = job_config(job_dir)
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    recorded = (state.get("symexp") or {}).get("fingerprint")
    if recorded is not None:
        if recorded != fp.fingerprint(config):
            other = (state.get("symexp") or {}).get("config") or {}
            diffs = "; ".join(fp.differences(other, config)) if other else "its fingerprint differs"
            raise ConfigError("JOB_DIR", f"{ckpt} is a checkpoint of another run than the config of {job_dir} "
                              f"({diffs}); evaluate refuses to label it with this folder's config")
        return
    try:
        load_weights(model_from_config(config), state.get("state_dict") or {}, str(ckpt))
    except AuditError as exc:
        raise ConfigError("JOB_DIR", str(exc)) from None


def evaluate(job_dir: Path, overrides: list[str] | None = None) -> Path:
    """Evaluate job_dir's checkpoint; returns the eval folder."""
    from symexp.run import run

    job_dir = Path(job_dir)
    ckpt = job_dir / "checkpoints" / "last.ckpt"
    if not job_dir.is_dir():
        raise ConfigError("JOB_DIR", f"{job_dir} is not a folder")
    cfg = eval_config(job_dir, list(overrides or []))
    if not ckpt.exists():
        raise ConfigError("JOB_DIR", f"{ckpt} does not exist: the job saved no checkpoint (save_checkpoints=false?)")
    check_checkpoint(job_dir, ckpt)
    out = job_dir / "eval"
    run(cfg, out, checkpoint=ckpt, job_type="eval")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m symexp.evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("job_dir", type=Path)
    parser.add_argument("overrides", nargs="*", help="metric=[...], key=value")
    args = parser.parse_args(argv)
    try:
        out = evaluate(args.job_dir, args.overrides)
    except ConfigError as exc:
        print(f"symexp: configuration error: {exc}", file=sys.stderr)
        return 2
    print(f"symexp: evaluation written to {out / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
