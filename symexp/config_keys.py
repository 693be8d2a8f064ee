"""Every key of a config must be read by something: a ``+key=...`` that nothing reads (a typo, a knob of
another optimizer or model) fails naming the key, instead of running silently with the value ignored.

Who reads what: a node with a ``_target_`` passes its keys to that callable (so they must be parameters of
its signature, unless it takes ``**kwargs``; ``_target_`` must import); ``trainer`` passes its keys to
``lightning.Trainer``; a group without a target (device, logger, budget, audit) is read by symexp, which
reads the keys its option files under conf/ declare; top-level keys are the schema's fields. Values
under ``syre`` while syre is off are left alone: presets set them for the sweeps that switch syre on.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import importlib
import inspect
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from symexp.schema import CONF_DIR, ConfigError, SymexpConfig

# arguments symexp passes at instantiation (symexp.run.build, the tasks' factories): not config keys
PASSED_BY_SYMEXP = {"seeds", "model", "datamodule", "syre", "params", "optimizer"}
# target-free groups whose keys are declared by their option files (conf/<group>/*.yaml)
DECLARED_GROUPS = ("device", "logger", "budget", "audit")


def _suggest(key: str, allowed: set[str]) -> str:
    lower = {a.lower(): a for a in sorted(allowed)}
    close = difflib.get_close_matches(key.lower(), list(lower), n=1)
    return f" (did you mean {lower[close[0]]}?)" if close else ""


def locate(target: str) -> Any:
    """The object a dotted ``_target_`` names; ImportError saying which part is missing (and what is close)."""
    parts = target.split(".")
    module, i = None, len(parts)
    while i > 0:
        try:
            module = importlib.import_module(".".join(parts[:i]))
            break
        except ModuleNotFoundError as exc:
            if exc.name and not ".".join(parts[:i]).startswith(exc.name):
                raise  # an import inside that module failed: say so, not "no such module"
            i -= 1
    if module is None:
        raise ImportError(f"no module {parts[0]!r}")
    obj = module
    for name in parts[i:]:
        if not hasattr(obj, name):
            owner = getattr(obj, "__name__", ".".join(parts[:i]))
            raise ImportError(f"{owner} has no {name!r}{_suggest(name, set(dir(obj)))}")
        obj = getattr(obj, name)
    return obj


@functools.cache
def _parameters(target: str) -> frozenset[str] | None:
    """The keyword parameters ``target`` accepts; None when it takes **kwargs (or has no signature)."""
    obj = locate(target)
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values()):
        return None
    return frozenset(n for n, p in sig.parameters.items() if p.kind is not inspect.Parameter.VAR_POSITIONAL)


@functools.cache
def _declared(group: str, conf_dir: Path = CONF_DIR) -> frozenset[str]:
    """Dotted keys the option files of a target-free group declare (for logger: backend, project, ...)."""
    keys: set[str] = set()
    for path in (conf_dir / group).glob("*.yaml"):
        data = yaml.safe_load(path.read_text()) or {}
        if isinstance(data, dict):
            keys.update(_dotted(data))
    return frozenset(keys)


def _dotted(node: dict, prefix: str = "") -> Iterator[str]:
    for k, v in node.items():
        if str(k).startswith("_") or str(k) == "defaults":
            continue
        key = f"{prefix}{k}"
        yield key
        if isinstance(v, dict) and v:
            yield from _dotted(v, key + ".")


def _check_target_node(node: dict, path: str) -> None:
    target = node.get("_target_")
    if target is None:  # an option that switches its part off (syre=off)
        return
    if not isinstance(target, str):
        raise ConfigError(f"{path}._target_", f"got {target!r}; allowed a dotted import path")
    try:
        accepted = _parameters(target)
    except ImportError as exc:
        raise ConfigError(f"{path}._target_", f"cannot import {target!r}: {str(exc).splitlines()[0][:200]}") from None
    if accepted is None:
        return
    for key in node:
        if key.startswith("_") or key in accepted:
            continue
        names = sorted(accepted - PASSED_BY_SYMEXP - {"self"})
        raise ConfigError(f"{path}.{key}", f"{target} takes no argument {key!r}{_suggest(key, set(names))}; "
                                           f"it takes {', '.join(names)}")


def _walk_targets(node: Any, path: str) -> None:
    if isinstance(node, dict):
        if "_target_" in node:
            _check_target_node(node, path)
        for k, v in node.items():
            _walk_targets(v, f"{path}.{k}" if path else str(k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            _walk_targets(v, f"{path}.{i}")


@functools.cache
def _dataclass_fields() -> dict[str, frozenset[str]]:
    """Top-level nodes typed by a schema dataclass (ensemble, checkpoint, paths): their field names."""
    return {f.name: frozenset(g.name for g in dataclasses.fields(f.default_factory()))
            for f in dataclasses.fields(SymexpConfig)
            if f.default_factory is not dataclasses.MISSING and dataclasses.is_dataclass(f.default_factory())}


def check_keys(config: dict) -> None:
    """Raise ConfigError naming the first key of the resolved ``config`` that nothing reads."""
    fields = {f.name for f in dataclasses.fields(SymexpConfig)}
    for key in config:
        if key not in fields and key != "hydra":
            raise ConfigError(str(key), f"no such top-level key{_suggest(str(key), fields)}; "
                                        "a `+key=...` override must name a key something reads")
    for name, schema in _dataclass_fields().items():
        node = config.get(name)
        for key in node if isinstance(node, dict) else ():
            if key not in schema:
                raise ConfigError(f"{name}.{key}", f"no such key{_suggest(str(key), schema)}; {name} keys are "
                                                   f"{', '.join(sorted(schema))}")
    trainer = config.get("trainer") or {}
    if trainer:
        import lightning as L

        accepted = set(inspect.signature(L.Trainer).parameters) - {"self"}
        for key in trainer:
            if key not in accepted:
                raise ConfigError(f"trainer.{key}", f"lightning.Trainer takes no argument {key!r}"
                                                    f"{_suggest(str(key), accepted)}")
    for group in DECLARED_GROUPS:
        node = config.get(group)
        if isinstance(node, dict):
            declared = _declared(group)
            for key in _dotted(node):
                if key not in declared and not any(key.startswith(d + ".") for d in declared):
                    raise ConfigError(f"{group}.{key}", f"nothing reads this key{_suggest(key, set(declared))}; "
                                                        f"{group} keys are {', '.join(sorted(declared))}")
    _walk_targets({k: v for k, v in config.items() if k not in ("trainer", "hydra")}, "")
