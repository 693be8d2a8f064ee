"""A job folder's identity: a hash of its resolved config, so a rerun continues only its own run.

The fingerprint covers every key that changes what is computed. Keys that only change how a run is
watched or where its files go (logger, progress, resume policy, checkpoint cadence, output paths,
launcher knobs) are left out, so a job can be resumed with W&B switched online or a quieter progress
style. ``differences`` names the keys two configs disagree on, for the refusal message.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

# Top-level keys that may change between a run and its resumption.
VOLATILE = (
    "logger", "progress", "resume", "checkpoint", "save_checkpoints", "paths", "tags", "strict_exit",
    "audit", "hparams_search",
)
FILE = "fingerprint.json"


def _strip(config: dict, volatile: tuple[str, ...] = VOLATILE) -> dict:
    """The config in canonical JSON types (a deep copy) without its volatile top-level keys."""
    return {k: v for k, v in json.loads(json.dumps(config, default=str)).items() if k not in volatile}


def fingerprint(config: dict) -> str:
    """sha256 (first 16 hex digits) of the resolved config without its volatile keys."""
    canonical = json.dumps(_strip(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for k, v in node.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out or {prefix[:-1]: {}}
    return {prefix[:-1]: node}


def differences(old: dict, new: dict, limit: int = 8) -> list[str]:
    """'key: old -> new' for every leaf the two configs disagree on (volatile keys ignored)."""
    a, b = _flatten(_strip(old)), _flatten(_strip(new))
    keys = sorted(k for k in a.keys() | b.keys() if a.get(k, "<unset>") != b.get(k, "<unset>"))
    lines = [f"{k}: {a.get(k, '<unset>')!r} -> {b.get(k, '<unset>')!r}" for k in keys[:limit]]
    if len(keys) > limit:
        lines.append(f"... and {len(keys) - limit} more")
    return lines


def write(job_dir: Path, config: dict) -> str:
    """Record the fingerprint and the config it was computed from in the job folder."""
    from symexp.results import write_json_atomic

    fp = fingerprint(config)
    write_json_atomic(job_dir / FILE, {"fingerprint": fp, "config": _strip(config)})
    return fp

