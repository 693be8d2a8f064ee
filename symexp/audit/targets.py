"""What can be audited, and how it becomes an nn.Module:

* a symexp job folder: the resolved config (a resolved config file in the folder, else results.json's
  ``config``) builds the model, ``checkpoints/last.ckpt`` fills it;
* a Lightning ``.ckpt``: the config stored in it, else the job folder around it, else ``--model``;
* a ``torch.save``d module (used as is) or state_dict (needs ``--model`` or ``--config``);
* ``module:callable`` (``torchvision.models:resnet18``, ``symexp.models.resnet18:ResNet18``), called with
  ``--kwargs``; weights from ``--weights``.

Every failure is an AuditError with one line that names the target and the reason.
"""

from __future__ import annotations

import importlib
import json
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

CONFIG_FILES = ("config.resolved.yaml", "config.yaml", ".hydra/config.yaml")  # symexp.run writes the first
CKPT_CONFIG_KEYS = ("config", "cfg")  # also under the checkpoint's "symexp" entry (symexp.checkpointing)
CHECKPOINT = Path("checkpoints") / "last.ckpt"


class AuditError(Exception):
    """A target or input that cannot be audited; str() is the one line the user sees."""


@dataclass
class Target:
    model: nn.Module
    name: str
    source: str                         # job | checkpoint | module | state_dict | callable
    path: str
    config: dict | None = None          # the symexp run config, resolved, when known
    job_dir: Path | None = None
    notes: list[str] = field(default_factory=list)

    def describe(self) -> dict:
        return {"name": self.name, "source": self.source, "path": self.path, "model": type(self.model).__name__,
                "job_dir": str(self.job_dir) if self.job_dir else None}


# ---------------------------------------------------------------------------------------------- files
def torch_load(path: Path) -> Any:
    """torch.load on CPU: tensors-only first; pickled objects (a saved module, a Lightning checkpoint's
    extras) only on retry, since unpickling runs code: audit files you trust."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, AttributeError, TypeError):
        pass
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise AuditError(f"cannot read {path}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None


def _yaml_config(path: Path) -> dict | None:
    from omegaconf import OmegaConf

    import symexp.schema  # noqa: F401  (resolvers such as ${budget:...})

    try:
        cfg = OmegaConf.load(path)
        return OmegaConf.to_container(cfg, resolve=True)
    except Exception:  # an unresolvable file (e.g. ${hydra:...}) falls through to the next source
        return None


def job_config(job_dir: Path) -> dict | None:
    """The job's resolved config: a resolved config file in the folder, else results.json's config."""
    for name in CONFIG_FILES[:2]:
        if (job_dir / name).is_file() and (cfg := _yaml_config(job_dir / name)) and "model" in cfg:
            return cfg
    results = job_dir / "results.json"
    if results.is_file():
        try:
            cfg = json.loads(results.read_text()).get("config")
        except (OSError, json.JSONDecodeError) as exc:
            raise AuditError(f"cannot read {results}: {exc}") from None
        if cfg:
            return cfg
    hydra = job_dir / CONFIG_FILES[2]
    return _yaml_config(hydra) if hydra.is_file() else None


def _job_of(ckpt: Path) -> Path | None:
    job = ckpt.resolve().parent.parent
    return job if ckpt.resolve().parent.name == "checkpoints" and (job / "results.json").exists() else None


def _ckpt_config(ckpt: dict) -> dict | None:
    for key in CKPT_CONFIG_KEYS:
        for holder in (ckpt.get("symexp") or {}, ckpt):
            cfg = holder.get(key)
            if isinstance(cfg, dict) and "model" in cfg:
                return cfg
    hp = ckpt.get("hyper_parameters") or {}
    for key in CKPT_CONFIG_KEYS:
        if isinstance(hp.get(key), dict) and "model" in hp[key]:
            return dict(hp[key])
    return None


# ---------------------------------------------------------------------------------------------- models
def model_from_config(cfg: dict) -> nn.Module:
    """The job's model, as symexp.run builds it (member seeds from seed and ensemble.size)."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from symexp.seeding import member_seeds

    if "model" not in cfg or not isinstance(cfg["model"], dict):
        raise AuditError("the config holds no model section")
    seeds = member_seeds(int(cfg.get("seed", 0)), int((cfg.get("ensemble") or {}).get("size", 1)))
    try:
        return instantiate(OmegaConf.create(cfg["model"]), seeds=seeds)
    except Exception as exc:
        root = exc.__cause__ or exc
        raise AuditError(f"cannot build model {cfg['model'].get('_target_')}: {root}") from None


def model_from_callable(spec: str, kwargs: dict | None = None) -> nn.Module:
    """``package.module:callable`` (dotted attributes allowed) called with kwargs."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise AuditError(f"{spec!r} is not module:callable")
    try:
        obj = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = (exc.name or module_name).split(".")[0]
        raise AuditError(f"{spec}: needs the package {missing!r}, which is not installed (pip install {missing})") from None
    except Exception as exc:  # a package that is installed but does not import (e.g. built for another torch)
        raise AuditError(f"{spec}: importing {module_name!r} failed: {type(exc).__name__}: {str(exc).splitlines()[0]}") from None
    try:
        for part in attr.split("."):
            obj = getattr(obj, part)
    except AttributeError:
        raise AuditError(f"{spec}: {module_name!r} has no attribute {attr!r}") from None
    try:
        model = obj(**(kwargs or {}))
    except Exception as exc:
        raise AuditError(f"{spec}: calling it with {kwargs or {}} failed: {type(exc).__name__}: {exc}") from None
    if not isinstance(model, nn.Module):
        raise AuditError(f"{spec}: returned a {type(model).__name__}, not a torch.nn.Module")
    return model


def effective_state(state: dict[str, torch.Tensor], prefix: str = "model.") -> dict[str, torch.Tensor]:
    """A plain model state_dict from a task's or a parametrized model's: keys under ``prefix`` only (when
    any), and syre's offset form (``parametrizations.<p>.original`` + ``.0.theta0``) folded into ``<p>``."""
    if any(k.startswith(prefix) for k in state):
        state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    out = {}
    for key, value in state.items():
        if ".parametrizations." in key:
            base, _, rest = key.partition(".parametrizations.")
            pname, _, tail = rest.partition(".")
            if tail == "original":
                theta0 = state.get(f"{base}.parametrizations.{pname}.0.theta0")
                out[f"{base}.{pname}"] = value + theta0 if theta0 is not None else value
            continue
        out[key] = value
    return out


def load_weights(model: nn.Module, state: dict, where: str) -> None:
    state = effective_state(state)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        own = set(model.state_dict())
        missing, extra = sorted(own - set(state))[:3], sorted(set(state) - own)[:3]
        detail = f"missing {missing}, unexpected {extra}" if missing or extra else str(exc).splitlines()[-1].strip()
        raise AuditError(f"the weights in {where} do not fit {type(model).__name__}: {detail}") from None


def _state_of(obj: Any) -> dict | None:
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        return obj["state_dict"]
    if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return obj
    return None


# ---------------------------------------------------------------------------------------------- entry
def load_target(spec: str, weights: str | None = None, model: str | None = None, kwargs: dict | None = None,
                config: str | None = None) -> Target:
    """Resolve TARGET (see the module docstring) into a model in eval mode."""
    path = Path(spec)
    arch_cfg = None
    if config is not None:
        cpath = Path(config)
        if cpath.is_dir():
            arch_cfg = job_config(cpath)
        elif cpath.suffix == ".json" and cpath.is_file():
            arch_cfg = json.loads(cpath.read_text()).get("config")
        elif cpath.is_file():
            arch_cfg = _yaml_config(cpath)
        if not arch_cfg:
            raise AuditError(f"--config {config}: no symexp config with a model section found there")

    def architecture(where: str) -> nn.Module:
        if model is not None:
            return model_from_callable(model, kwargs)
        if arch_cfg is not None:
            return model_from_config(arch_cfg)
        raise AuditError(f"{where} holds weights but no architecture: pass --model module:callable or --config JOB")

    if path.is_dir():
        cfg = job_config(path)
        if cfg is None:
            raise AuditError(f"{spec}: not a symexp job folder (no results.json with a config, no resolved config file)")
        ckpt = path / CHECKPOINT
        if not ckpt.is_file():
            raise AuditError(f"{spec}: the job has no checkpoint {CHECKPOINT} (did it run with save_checkpoints=true?)")
        net = model_from_config(cfg)
        state = _state_of(torch_load(ckpt))
        if state is None:
            raise AuditError(f"{ckpt}: not a Lightning checkpoint")
        load_weights(net, state, str(ckpt))
        name = f"{cfg['name']}/{path.name}" if cfg.get("name") else path.name
        return Target(net.eval(), name, "job", str(path), cfg, path)
    if path.is_file():
        obj = torch_load(path)
        if isinstance(obj, nn.Module):
            return Target(obj.eval(), path.stem, "module", str(path))
        state = _state_of(obj)
        if state is None:
            raise AuditError(f"{spec}: holds a {type(obj).__name__}, not a module, state_dict or checkpoint")
        if isinstance(obj, dict) and "state_dict" in obj:  # a Lightning checkpoint
            cfg = _ckpt_config(obj)
            job = _job_of(path)
            if cfg is None and job is not None:
                cfg = job_config(job)
            net = model_from_config(cfg) if cfg is not None and model is None and arch_cfg is None else architecture(spec)
            load_weights(net, state, spec)
            name = str((cfg or {}).get("name") or path.stem)
            return Target(net.eval(), name, "checkpoint", str(path), cfg or arch_cfg, job)
        net = architecture(spec)
        load_weights(net, state, spec)
        return Target(net.eval(), path.stem, "state_dict", str(path), arch_cfg)
    if ":" in spec and "/" not in spec.partition(":")[0]:
        net = model_from_callable(spec, kwargs)
        if weights is not None:
            wpath = Path(weights)
            if not wpath.is_file():
                raise AuditError(f"--weights {weights}: no such file")
            state = _state_of(torch_load(wpath))
            if state is None:
                raise AuditError(f"--weights {weights}: not a state_dict or checkpoint")
            load_weights(net, state, weights)
        name = spec.split(":")[1]
        notes = [] if weights else ["no --weights: the model's own initialisation is audited"]
        return Target(net.eval(), name, "callable", spec, arch_cfg, None, notes)
    raise AuditError(f"{spec}: no such file or folder (and not module:callable)")
