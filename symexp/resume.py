"""Whether a job continues the checkpoint in its folder, starts fresh, or has nothing left to do.

``resume=auto`` (default) continues only a checkpoint whose fingerprint matches this config and
refuses any other with the differing keys named; a finished ``ok`` job with the same fingerprint is
skipped (a rerun sweep redoes only its failed and missing jobs). ``resume=never`` starts fresh in the
folder; ``resume=force`` continues whatever checkpoint is there, for the user who knows why.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from symexp import fingerprint as fp
from symexp.schema import ConfigError

MODES = ("auto", "never", "force")
LAST = "last.ckpt"  # in <job>/checkpoints/


@dataclass(frozen=True)
class Decision:
    action: str  # "fresh" | "resume" | "skip"
    checkpoint: Path | None = None
    note: str = ""


def decide(job_dir: Path, config: dict, mode: str, previous: dict | None) -> Decision:
    """The decision for a job about to run in ``job_dir`` with this resolved config."""
    if mode not in MODES:
        raise ConfigError("resume", f"got {mode!r}; allowed: {', '.join(MODES)}")
    ckpt = job_dir / "checkpoints" / LAST
    if mode == "never":
        return Decision("fresh", note=f"resume=never: starting fresh in {job_dir}" if ckpt.exists() else "")
    current = fp.fingerprint(config)
    recorded = fp.read(job_dir)
    done = previous is not None and previous.get("status") == "ok"
    has_work = ckpt.exists() or done
    if recorded is None and not has_work:
        return Decision("fresh")
    if recorded is None or recorded.get("fingerprint") != current:
        if not has_work:
            return Decision("fresh")
        diffs = fp.differences(recorded["config"], config) if recorded else ["(the folder has no fingerprint.json)"]
        if mode == "force":
            return Decision("resume" if ckpt.exists() else "fresh", ckpt if ckpt.exists() else None,
                            note="resume=force: continuing a run of another config: " + "; ".join(diffs))
        raise ConfigError(
            "resume",
            f"{job_dir} holds a run of a different config ({'; '.join(diffs)}). Use another output folder, "
            "resume=never to start over there, or resume=force to continue it anyway",
        )
    if done and mode == "auto" and previous.get("fingerprint") == current:
        return Decision("skip")
    if ckpt.exists():
        return Decision("resume", ckpt)
    return Decision("fresh")
