"""What a job does when the cluster (or the user) asks it to stop: SIGTERM, SIGINT, SIGUSR1 or SIGUSR2.

SLURM sends SIGTERM at a time limit, on preemption and on scancel; a terminal sends SIGINT on Ctrl+C;
clusters configured with ``--signal`` send SIGUSR1/2 before the limit. Each of them means "stop soon,
keep the work". The first one received:

- during training: the job trains on to the next point where a checkpoint resumes bit for bit (the end of
  a Lightning epoch; the epoch's last batch for step-budgeted tasks), saves ``checkpoints/last.ckpt``
  there and stops (:class:`SafeStop`, called by symexp.checkpointing.PeriodicCheckpoint);
- before or after training: the job stops at once (:class:`JobInterrupted` raised where it is);
- between sweep jobs (or in the process that waits for parallel jobs): no further job starts.

The job then writes results.json with status ``interrupted`` (the signal, the last logged metrics), closes
its W&B run with a non-zero exit code and exits ``128 + signal`` (143 for SIGTERM, 130 for SIGINT, 138 for
SIGUSR1, 140 for SIGUSR2), the shell and SLURM convention. A later signal is logged and ignored while the
job writes its files; SIGKILL still stops at once.

Why not Lightning's own handling: its SignalConnector turns SIGTERM into a ``SystemExit`` with code 0 after
the current batch, in the middle of an epoch, where symexp cannot resume exactly, and handles no other
signal (its SLURM auto-requeue saves a mid-epoch checkpoint into a folder a requeued Hydra job never
reads). symexp replaces Lightning's SIGTERM handler for the training loop, keeps its forwarding of the
signal to DDP worker processes, and agrees on the stop across DDP ranks at the safe point.

Handlers found in place (submitit's requeue handler on SIGUSR2, its SIGTERM bypass) are called after the
job stopped and wrote its files, so submitit's requeue path keeps working and resumes from the checkpoint.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("symexp")
HANDLED = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGUSR2)
INTERRUPTED, NOT_STARTED = "interrupted", "not_started"


def exit_code(signum: int) -> int:
    """128 + the signal number: what a shell reports for a process the signal ended, and what SLURM shows."""
    return 128 + int(signum)


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class JobInterrupted(BaseException):
    """The job stops because of a signal. A BaseException, like KeyboardInterrupt: code that catches
    Exception to record a failure (or a W&B init fallback) must not swallow it."""

    def __init__(self, signum: int, where: str | None = None) -> None:
        super().__init__(signal_name(signum))
        self.signum, self.where = int(signum), where


@dataclass
class _State:
    signum: int | None = None
    phase: str = "idle"  # idle: only record | job: raise at once | training: stop at the next safe point
    chained: dict[int, Any] = field(default_factory=dict)  # handlers found in place (submitit's)
    forward: Callable[[int], None] | None = None  # passes the signal on (DDP workers, parallel sweep workers)
    installed: dict[int, Any] = field(default_factory=dict)  # what install() replaced, for restore()


_state = _State()


def received() -> int | None:
    """The signal this process received, if any (the first one)."""
    return _state.signum


def _handler(signum: int, frame: Any) -> None:
    first = _state.signum is None
    if first:
        _state.signum = signum
        where = {"training": "stopping at the next checkpoint", "job": "stopping now"}.get(
            _state.phase, "no further job starts")
        log.warning("symexp: received %s: %s", signal_name(signum), where)
    else:
        log.warning("symexp: received %s again: already stopping (SIGKILL stops at once)", signal_name(signum))
    if _state.forward is not None:
        try:
            _state.forward(signum)
        except Exception as exc:  # a worker that already exited
            log.debug("forwarding %s failed: %s", signal_name(signum), exc)
    if first and _state.phase == "job":
        raise JobInterrupted(signum)


def _is_foreign(handler: Any) -> bool:
    return callable(handler) and handler is not _handler and handler is not signal.default_int_handler


def install() -> bool:
    """Handle the four signals in this process (main thread only); handlers already in place (submitit's)
    are remembered and run after the job stopped. Returns whether anything was installed."""
    if threading.current_thread() is not threading.main_thread():
        return False
    for signum in HANDLED:
        current = signal.getsignal(signum)
        if current is _handler:
            continue
        _state.installed[signum] = current
        if _is_foreign(current):
            _state.chained[signum] = current
        signal.signal(signum, _handler)
    return True


def restore() -> None:
    """Put back the handlers install() replaced (a single run in a process that lives on: tests, notebooks)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for signum, previous in _state.installed.items():
        signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
    _state.installed.clear()
    _state.chained.clear()


def start_job(keep_state: bool) -> None:
    """A job starts in this process: handlers on, a first signal stops it at once (until training starts).
    ``keep_state`` (sweep jobs): a signal an earlier job of the sweep received still counts."""
    if not keep_state:
        _state.signum = None
    _state.forward = None
    install()
    _state.phase = "job"


def end_job(give_back_handlers: bool) -> None:
    """The job returned or raised. A single run gives the process its own handlers back (tests, notebooks);
    a sweep's process keeps symexp's, so that a signal between two jobs stops the sweep."""
    _state.phase = "idle"
    _state.forward = None
    if give_back_handlers:
        restore()


def set_phase(name: str) -> None:
    _state.phase = name


@contextmanager
def phase(name: str) -> Iterator[None]:
    """Within the block a first signal is handled as ``name`` says (see _State.phase)."""
    before = _state.phase
    _state.phase = name
    try:
        yield
    finally:
        _state.phase = before


def raise_if_received() -> None:
    """Stop here when a signal came while it was deferred (e.g. during the last epoch)."""
    if _state.signum is not None:
        raise JobInterrupted(_state.signum)


def after_stop(signum: int) -> None:
    """Run the handler that was in place before symexp's (submitit's requeue or bypass), now that the
    job's checkpoint and results are written: submitit then requeues the job and exits its process."""
    handler = _state.chained.get(signum)
    if handler is None:
        return
    try:
        handler(signum, None)
    except Exception as exc:  # e.g. submitit's "timed-out too many times": the job stays interrupted
        log.warning("symexp: %s's previous handler: %s", signal_name(signum), exc)


def set_forward(forward: Callable[[int], None] | None) -> None:
    _state.forward = forward


# ------------------------------------------------------------------------------------------- training

def stop_due(trainer) -> int | None:
    """At a safe point: the signal to stop on now (None: train on). DDP ranks agree on it (the largest
    number any rank received), so a rank the signal did not reach stops at the same point as the others."""
    local = _state.signum or 0
    if getattr(trainer, "world_size", 1) > 1:
        import torch

        local = int(trainer.strategy.reduce(torch.tensor(float(local), device=trainer.strategy.root_device),
                                            reduce_op="max").item())
    return local or None


def take_over_from_lightning(trainer) -> None:
    """Called at train start, after Lightning installed its SIGTERM handler: symexp's handler again, and
    the signal forwarded to DDP worker processes as Lightning's handler did."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _handler)  # Lightning restores its own record of ours at teardown
    launcher = getattr(trainer.strategy, "launcher", None)
    set_forward(launcher.kill if launcher is not None and hasattr(launcher, "kill") else None)


def stop_at_safe_point(trainer, save: Callable[[], None] | None = None) -> None:
    """At a safe point: when a signal came (on any DDP rank), save (if given) and stop the fit."""
    signum = stop_due(trainer)
    if signum is None:
        return
    if save is not None:
        save()
    _state.signum = _state.signum or signum
    raise JobInterrupted(signum, where=progress(trainer))


# -------------------------------------------------------------------------------------------- results

def interrupted_message(stop: JobInterrupted, checkpoint: Path | None) -> str:
    where = f" after {stop.where}" if stop.where else ""
    saved = f"; {checkpoint} holds the work so far" if checkpoint is not None and checkpoint.exists() else ""
    return f"interrupted by {signal_name(stop.signum)}{where}{saved}: rerun the same command to continue"


def progress(trainer) -> str:
    """How far training got at a safe point: Lightning epochs done, or steps for step budgets."""
    if trainer.max_steps != -1:
        return f"step {trainer.global_step}/{trainer.max_steps}"
    return f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}"


def logged_metrics(trainer) -> dict[str, float]:
    """The last value of every scalar the task logged: the metrics so far of an interrupted run."""
    if trainer is None:
        return {}
    out = {}
    for key, value in trainer.callback_metrics.items():
        try:
            if getattr(value, "numel", lambda: 1)() == 1:
                out[key] = float(value)
        except (TypeError, ValueError):
            continue
    return out


# ---------------------------------------------------------------------------------------------- sweeps

def _job_order(job: str) -> tuple:
    return tuple(int(p) if p.isdigit() else p for p in Path(job).parts)


def _recorded_signal(sweep_dir: Path, jobs: list[str]) -> int | None:
    import json

    for job in jobs:
        for name in ("results.json", "results.failed.json"):
            try:
                recorded = json.loads((sweep_dir / job / name).read_text()).get("signal")
                return int(signal.Signals[recorded])
            except (OSError, ValueError, KeyError, TypeError):
                continue
    return None


def sweep_exit_code(sweep_dir: Path, bad: dict[str, str]) -> int | None:
    """128 + signal when a signal stopped the sweep (``bad``: {job: status} of the jobs that did not end ok),
    after one line naming the interrupted and the not-started jobs; None when no job was stopped."""
    interrupted = sorted((j for j, s in bad.items() if s == INTERRUPTED), key=_job_order)
    not_started = sorted((j for j, s in bad.items() if s == NOT_STARTED), key=_job_order)
    if not interrupted and not not_started:
        return None
    signum = received() or _recorded_signal(sweep_dir, interrupted + not_started) or signal.SIGTERM
    log.error("symexp: the sweep in %s was interrupted by %s: %d job(s) interrupted (%s), %d not started (%s); "
              "rerun the same command to continue them", sweep_dir, signal_name(signum), len(interrupted),
              ", ".join(interrupted) or "-", len(not_started), ", ".join(not_started) or "-")
    return exit_code(signum)


def record(job_dir: Path, status: str, error: str, signum: int | None, **fields: Any) -> Path:
    """Write a job's results.json for a job that a signal kept from finishing (or a dead worker); a good
    results.json already there stays, the record goes beside it as results.failed.json (as for failures)."""
    import json

    from symexp.results import SCHEMA, write_json_atomic

    job_dir = Path(job_dir)
    path = job_dir / "results.json"
    try:
        keep = json.loads(path.read_text()).get("status") in ("ok", "diverged")
    except (OSError, ValueError, AttributeError):
        keep = False
    payload = {"schema": SCHEMA, "status": status, "error": error, "signal": signal_name(signum) if signum else None,
               "fingerprint": None,
               "config": None, "metrics": {}, "members": [], "timing": {}, "env": {}, **fields}
    target = job_dir / "results.failed.json" if keep else path
    write_json_atomic(target, payload)
    return target


def not_started_error(signum: int) -> str:
    return f"not started: the sweep was interrupted by {signal_name(signum)}; rerun the same command to run it"
