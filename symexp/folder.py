"""A job folder that never lies: a rerun first reads the folder (``inspect``, which writes nothing) and
decides; only an accepted run writes into it.

Why symexp writes ``.hydra/`` itself: Hydra saves a job's config files before any user code runs, so a
rerun that symexp then refuses (another config's folder) would already have replaced the folder's record
of its run. conf/config.yaml sets ``hydra.output_subdir: null`` and ``save_hydra_files`` writes the same
three files once the run is accepted.

A file that cannot be read (a truncated checkpoint, a torn JSON file, a garbled W&B id) is named in one
line and moved aside to ``<name>.corrupt`` when the run is accepted; the run falls back to what remains
(the fingerprint recorded in results.json or the checkpoint, a fresh start) and records the note in
results.json's ``warnings``.
"""

from __future__ import annotations

import errno
import json
import logging
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from symexp.fingerprint import FILE as FINGERPRINT

RESULTS, FAILED_RESULTS = "results.json", "results.failed.json"
CHECKPOINT = Path("checkpoints") / "last.ckpt"
WANDB_ID = "wandb_id"
CORRUPT = ".corrupt"
_WANDB_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
# errors of the file system, not of symexp: reported as one line naming the folder
DISK_ERRORS = {errno.ENOSPC: "no space left on the device", errno.EROFS: "read-only file system",
               errno.EDQUOT: "disk quota exceeded", errno.EACCES: "permission denied",
               errno.EPERM: "operation not permitted"}


@dataclass
class Folder:
    """What a job folder holds, read without changing it."""

    path: Path
    results: dict | None = None               # results.json, when readable
    recorded: dict | None = None              # {"fingerprint", "config"?}: fingerprint.json, else recovered
    checkpoint: Path | None = None            # checkpoints/last.ckpt, when intact
    corrupt: dict[Path, str] = field(default_factory=dict)   # unreadable files and why

    @property
    def finished_ok(self) -> bool:
        return self.results is not None and self.results.get("status") == "ok"


def _reason(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"[:160] if text else type(exc).__name__


def _read_json(path: Path, corrupt: dict[Path, str]) -> dict | None:
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:  # ValueError covers JSONDecodeError and UnicodeDecodeError
        corrupt[path] = _reason(exc)
        return None
    if not isinstance(data, dict):
        corrupt[path] = f"holds a {type(data).__name__}, not a JSON object"
        return None
    return data


def readable_results(job_dir: Path) -> dict | None:
    """results.json of a job folder, None when missing or unreadable (inspect names the problem)."""
    return _read_json(Path(job_dir) / RESULTS, {})


def checkpoint_problem(path: Path) -> str | None:
    """Why a torch checkpoint cannot be loaded (None when intact): torch saves a zip archive, whose
    directory (at its end) a truncated file lacks and whose CRCs a damaged one fails."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (OSError, zipfile.BadZipFile, EOFError, ValueError) as exc:
        return _reason(exc)
    return f"damaged entry {bad}" if bad else None


def _checkpoint_fingerprint(path: Path) -> dict | None:
    import torch

    try:
        meta = torch.load(path, map_location="cpu", weights_only=False).get("symexp") or {}
    except Exception:  # an intact zip that still does not load: no fingerprint to recover from it
        return None
    return {"fingerprint": meta["fingerprint"], "config": meta.get("config")} if meta.get("fingerprint") else None


def inspect(job_dir: Path) -> Folder:
    """Read the folder's record without writing anything: results, fingerprint (recovered from results.json
    or the checkpoint when fingerprint.json is unreadable), whether the checkpoint is intact."""
    folder = Folder(Path(job_dir))
    corrupt = folder.corrupt
    folder.results = _read_json(folder.path / RESULTS, corrupt)
    ckpt = folder.path / CHECKPOINT
    if ckpt.exists():
        problem = checkpoint_problem(ckpt)
        if problem:
            corrupt[ckpt] = problem
        else:
            folder.checkpoint = ckpt
    recorded = _read_json(folder.path / FINGERPRINT, corrupt)
    if recorded is not None and not isinstance(recorded.get("fingerprint"), str):
        corrupt[folder.path / FINGERPRINT] = "no fingerprint in it"
        recorded = None
    if recorded is None and folder.path / FINGERPRINT in corrupt:
        if folder.results and folder.results.get("fingerprint"):
            recorded = {"fingerprint": folder.results["fingerprint"], "config": folder.results.get("config")}
        elif folder.checkpoint is not None:
            recorded = _checkpoint_fingerprint(folder.checkpoint)
    folder.recorded = recorded
    wandb_id = folder.path / WANDB_ID
    if wandb_id.exists():
        try:
            ok = bool(_WANDB_ID.match(wandb_id.read_text().strip()))
        except (OSError, ValueError) as exc:
            ok, corrupt[wandb_id] = False, _reason(exc)
        if not ok:
            corrupt.setdefault(wandb_id, "not a W&B run id")
    return folder


def set_aside(path: Path) -> Path:
    """Move an unreadable file to <name>.corrupt (<name>.corrupt.1, ... when taken); returns the new path."""
    target = path.with_name(path.name + CORRUPT)
    n = 0
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}{CORRUPT}.{n}")
    path.rename(target)
    return target


def set_aside_corrupt(folder: Folder, fallback: dict[Path, str]) -> list[str]:
    """Move every unreadable file aside; one line per file saying what it was, why and what the run does
    instead (``fallback`` by path, else "ignored"). Returns the lines for results.json's warnings."""
    notes = []
    for path, reason in folder.corrupt.items():
        moved = set_aside(path)
        what = fallback.get(path, "ignored")
        notes.append(f"{path.relative_to(folder.path)} was unreadable ({reason}): moved to "
                     f"{moved.relative_to(folder.path)}; {what}")
    return notes


def save_hydra_files(out_dir: Path, task_cfg) -> None:
    """Hydra's record of the job (.hydra/config.yaml, hydra.yaml, overrides.yaml), written once the run is
    accepted: the same three files Hydra writes itself when hydra.output_subdir is set."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    if not HydraConfig.initialized():
        return
    hydra_cfg = HydraConfig.instance().cfg  # {"hydra": ...}, as Hydra saves it
    target = Path(out_dir) / ".hydra"
    target.mkdir(parents=True, exist_ok=True)
    (target / "config.yaml").write_text(OmegaConf.to_yaml(task_cfg))
    (target / "hydra.yaml").write_text(OmegaConf.to_yaml(hydra_cfg))
    (target / "overrides.yaml").write_text(OmegaConf.to_yaml(hydra_cfg.hydra.overrides.task))


def drop_file_logs(out_dir: Path) -> None:
    """Detach (and close) the log files in out_dir from the root and Lightning loggers: a refused or skipped
    rerun must not append to the folder's log, and a read-only folder must not print logging errors."""
    folder = Path(out_dir).resolve()
    for name in (None, "lightning.pytorch", "symexp.job"):
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            if isinstance(handler, logging.FileHandler) and Path(handler.baseFilename).parent == folder:
                logger.removeHandler(handler)
                handler.close()


def disk_error(exc: BaseException) -> str | None:
    """'no space left on the device (ENOSPC)' for an OSError of the file system, else None."""
    if isinstance(exc, OSError) and exc.errno in DISK_ERRORS:
        return f"{DISK_ERRORS[exc.errno]} ({errno.errorcode[exc.errno]})"
    return None
