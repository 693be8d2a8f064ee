"""Inputs for the activation metrics: a symexp data config (``digits``, ``synthetic_images
data.channels=3``, any ``data.*`` override), a tensor file (.pt / .npy / .npz: a tensor, a tuple
(x, y) or a dict with x / y), or, for a symexp job, the job's own data. The test split is used: the
same inputs for every audit of the same config."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from symexp.audit.targets import AuditError, Target, torch_load
from symexp.schema import PROJECT_ROOT

CONF_DIR = PROJECT_ROOT / "conf"
TENSOR_SUFFIXES = (".pt", ".pth", ".npy", ".npz")


def _from_file(path: Path) -> tuple[torch.Tensor, torch.Tensor | None]:
    if path.suffix == ".npy":
        return torch.as_tensor(np.load(path)).float(), None
    if path.suffix == ".npz":
        z = np.load(path)
        key = "x" if "x" in z else z.files[0]
        return torch.as_tensor(z[key]).float(), torch.as_tensor(z["y"]) if "y" in z else None
    obj = torch_load(path)
    if isinstance(obj, torch.Tensor):
        return obj.float(), None
    if isinstance(obj, (tuple, list)) and obj and isinstance(obj[0], torch.Tensor):
        return obj[0].float(), obj[1] if len(obj) > 1 else None
    if isinstance(obj, dict) and isinstance(obj.get("x"), torch.Tensor):
        return obj["x"].float(), obj.get("y")
    raise AuditError(f"--data {path}: expected a tensor, (x, y) or {{'x': ..., 'y': ...}}, got {type(obj).__name__}")


def datamodule_from(data: list[str], base: dict | None = None, seed: int = 0):
    """The data config named by ``data`` (``NAME`` = ``data=NAME``, then ``data.key=value`` overrides),
    composed with symexp's config tree; with no NAME, the base (a job's) data config plus the overrides."""
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    import symexp.schema  # noqa: F401  (the typed schema and resolvers)

    overrides = [d if "=" in d else f"data={d}" for d in data]
    bad = [o for o in overrides if not o.startswith("data")]
    if bad:
        raise AuditError(f"--data: {bad[0]!r} is not a data config name or a data.* override")
    try:
        if base is not None and not any(o.startswith("data=") for o in overrides):
            node = OmegaConf.merge(OmegaConf.create(base["data"]),
                                   OmegaConf.from_dotlist([o.removeprefix("data.") for o in overrides]))
        else:
            with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
                node = compose("config", overrides=overrides).data
        return instantiate(node, seeds=[seed])
    except AuditError:
        raise
    except Exception as exc:
        root = exc.__cause__ or exc
        raise AuditError(f"--data {' '.join(data)}: {type(root).__name__}: {str(root).splitlines()[0]}") from None


def from_datamodule(dm, n: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The first n test inputs (and labels) of a symexp datamodule."""
    if hasattr(dm, "split"):
        x, y = dm.split("test")
        return x[:n], y[:n]
    if hasattr(dm, "grid"):  # symmetric regression data: the evaluation grid is closed under T
        return dm.grid[:n], None
    if hasattr(dm, "x_val"):
        return dm.x_val[:n], None
    raise AuditError(f"data {type(dm).__name__}: exposes no test split, grid or x_val to audit on")


def load_inputs(data: list[str] | None, target: Target | None, n: int, seed: int = 0
                ) -> tuple[torch.Tensor | None, torch.Tensor | None, str]:
    """(x, y, description); x is None for a weight-only audit."""
    if data == ["none"]:
        return None, None, "none"
    if data and len(data) == 1 and Path(data[0]).suffix in TENSOR_SUFFIXES:
        path = Path(data[0])
        if not path.is_file():
            raise AuditError(f"--data {path}: no such file")
        x, y = _from_file(path)
        return x[:n], (y[:n] if y is not None else None), str(path)
    base = target.config if target is not None and target.config and "data" in target.config else None
    if not data and base is None:
        return None, None, "none"
    dm = datamodule_from(list(data or []), base, seed)
    x, y = from_datamodule(dm, n)
    desc = " ".join(data) if data else "the job's data"
    return x, y, f"{desc} ({type(dm).__name__}, test split)"
