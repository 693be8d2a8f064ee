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
from symexp.folder import Folder
from symexp.schema import ConfigError

MODES = ("auto", "never", "force")
LAST = "last.ckpt"  # in <job>/checkpoints/


class Refused(ConfigError):
    """A rerun into a folder that holds another config's run: nothing in the folder may change."""


@dataclass(frozen=True)
class Decision:
    action: str  # "fresh" | "resume" | "skip"
    checkpoint: Path | None = None
    note: str = ""


def decide(folder: Folder, config: dict, mode: str) -> Decision:
    """The decision for a job about to run in ``folder`` (read by symexp.folder.inspect) with this config.
    An unreadable checkpoint counts as absent; an unreadable fingerprint.json is replaced by the one
    recorded in results.json or the checkpoint."""
    if mode not in MODES:
        raise ConfigError("resume", f"got {mode!r}; allowed: {', '.join(MODES)}")
    job_dir, ckpt = folder.path, folder.checkpoint
    if mode == "never":
        return Decision("fresh", note=f"resume=never: starting fresh in {job_dir}" if ckpt else "")
    current = fp.fingerprint(config)
    recorded = folder.recorded
    done = folder.finished_ok
    has_work = ckpt is not None or done
    if recorded is None and not has_work:
        return Decision("fresh")
    if recorded is None or recorded.get("fingerprint") != current:
        if not has_work:
            return Decision("fresh")
        diffs = (fp.differences(recorded["config"], config) if recorded and recorded.get("config")
                 else ["(the folder has no readable fingerprint.json)"])
        if mode == "force":
            return Decision("resume" if ckpt else "fresh", ckpt,
                            note="resume=force: continuing a run of another config: " + "; ".join(diffs))
        raise Refused(
            "resume",
            f"{job_dir} holds a run of a different config ({'; '.join(diffs)}). Use another output folder, "
            "resume=never to start over there, or resume=force to continue it anyway",
        )
    if done and mode == "auto" and folder.results.get("fingerprint") == current:
        return Decision("skip")
    if ckpt is not None:
        return Decision("resume", ckpt)
    return Decision("fresh")
