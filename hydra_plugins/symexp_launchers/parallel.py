"""Hydra launcher for parallel local jobs (`launcher=joblib`) that survives a dead worker and a signal.

hydra-joblib-launcher runs the sweep through one ``joblib.Parallel`` call on a loky pool. When the OOM
killer (or ``kill -9``) ends one worker, loky declares the whole pool broken, kills the other workers and
``Parallel`` raises ``TerminatedWorkerError``: every running job is lost and no summary is written. This
launcher keeps hydra-joblib-launcher's job function (``execute_job``) and its config keys, but gives every
slot its own single-worker loky executor. A worker that dies takes only its own job: that job is recorded
``failed`` with the signal that ended it, a fresh worker takes the slot, the other jobs run on.

A signal to this process (SIGTERM, SIGINT, SIGUSR1/2) is passed on to the running workers, which stop
their jobs at the next checkpoint (symexp.signals); jobs not started yet are recorded ``not_started``. The
sweep's summary is then written and the sweep exits 128 + signal.
"""

from __future__ import annotations

import logging
import os
import re
import signal
from collections import deque
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from pathlib import Path
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, configure_log, filter_overrides, setup_globals
from hydra_plugins.hydra_joblib_launcher.joblib_launcher import JoblibLauncher
from omegaconf import OmegaConf, open_dict

log = logging.getLogger(__name__)
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
               "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


def n_workers(n_jobs: int | None, cpus: int | None = None) -> int:
    """joblib's meaning of n_jobs: N workers, -1 all CPUs, -2 all but one, ..."""
    cpus = cpus or os.cpu_count() or 1
    n = int(n_jobs if n_jobs is not None else -1)
    if n == 0:
        raise ValueError("hydra.launcher.n_jobs: 0 runs nothing; use a positive number or -1 (every CPU)")
    return max(1, n if n > 0 else cpus + 1 + n)


def dead_worker_signal(error: BaseException) -> int | None:
    """The signal that ended a loky worker, from loky's message ("exit codes of the workers are {SIGKILL(-9)}")."""
    found = re.search(r"\((-\d+)\)", str(error))
    return -int(found.group(1)) if found else None


def _worker_init() -> None:
    """In each worker: symexp's signal handlers from the start, so a signal to an idle worker does not kill
    it (its next job then records itself not started)."""
    from symexp import signals

    signals.install()


class _Slot:
    """One worker process (a single-worker loky executor) and the job it runs. Not a dataclass: Hydra
    imports plugin modules without registering them in sys.modules, which dataclasses need."""

    def __init__(self, executor: Any, pid: int) -> None:
        self.executor, self.pid = executor, pid
        self.idx: int = -1
        self.overrides: Sequence[str] = ()
        self.future: Future | None = None


class TolerantJoblibLauncher(JoblibLauncher):
    """Parallel jobs, one process per slot; a dead worker fails only its own job."""

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from hydra_plugins.hydra_joblib_launcher._core import execute_job

        from symexp import signals

        setup_globals()
        assert self.config is not None and self.task_function is not None and self.hydra_context is not None
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        n = min(n_workers(self.joblib.get("n_jobs")), max(1, len(job_overrides)))
        log.info("launcher=joblib: %d jobs, %d at a time, one worker process each; sweep output dir: %s",
                 len(job_overrides), n, sweep_dir)
        for i, overrides in enumerate(job_overrides):
            log.info("\t#%d : %s", initial_job_idx + i, " ".join(filter_overrides(overrides)))
        env = {var: os.environ.get(var, str(max(1, (os.cpu_count() or 1) // n))) for var in THREAD_VARS}
        state = Singleton.get_state()
        pending = deque((initial_job_idx + i, list(ov)) for i, ov in enumerate(job_overrides))
        idle: list[_Slot] = []
        running: list[_Slot] = []
        returns: dict[int, JobReturn] = {}
        signals.install()
        signals.set_forward(lambda signum: [_kill(s.pid, signum) for s in running])
        try:
            while pending or running:
                while pending and len(running) < n and signals.received() is None:
                    slot = idle.pop() if idle else self._new_slot(env)
                    slot.idx, slot.overrides = pending.popleft()
                    slot.future = slot.executor.submit(execute_job, slot.idx, slot.overrides, self.hydra_context,
                                                       self.config, self.task_function, state)
                    running.append(slot)
                if not running:
                    break
                wait([s.future for s in running], timeout=0.5, return_when=FIRST_COMPLETED)
                for slot in [s for s in running if s.future.done()]:
                    running.remove(slot)
                    returns[slot.idx], alive = self._collect(slot)
                    if alive:
                        idle.append(slot)
                    else:
                        slot.executor.shutdown(wait=False, kill_workers=True)
        finally:
            signals.set_forward(None)
            for slot in idle + running:
                slot.executor.shutdown(wait=False, kill_workers=True)
        signum = signals.received()
        for idx, overrides in pending:  # only after a signal
            returns[idx] = self._not_started(idx, overrides, signum)
        return [returns[initial_job_idx + i] for i in range(len(job_overrides))]

    def _new_slot(self, env: dict) -> _Slot:
        from joblib.externals.loky import ProcessPoolExecutor

        executor = ProcessPoolExecutor(max_workers=1, initializer=_worker_init, env=env)
        return _Slot(executor, executor.submit(os.getpid).result())

    def _collect(self, slot: _Slot) -> tuple[JobReturn, bool]:
        """The job's JobReturn and whether its worker lives on."""
        from joblib.externals.loky.process_executor import BrokenProcessPool

        try:
            return slot.future.result(), True
        except BrokenProcessPool as exc:
            signum = dead_worker_signal(exc)
            return self._dead(slot.idx, slot.overrides, slot.pid, signum), False

    def _dead(self, idx: int, overrides: Sequence[str], pid: int, signum: int | None) -> JobReturn:
        from symexp import signals

        how = f"killed by {signals.signal_name(signum)}" if signum else "ended without a result"
        hint = " (the OOM killer or kill -9)" if signum == signal.SIGKILL else ""
        return record_lost_job(self.config, self.hydra_context, idx, overrides,
                               f"the worker process (pid {pid}) running this job was {how}{hint}", signum)

    def _not_started(self, idx: int, overrides: Sequence[str], signum: int) -> JobReturn:
        from symexp import signals

        job_dir, cfg = job_dir_of(self.config, self.hydra_context, idx, overrides)
        (job_dir / ".hydra").mkdir(parents=True, exist_ok=True)  # the summary reads the job's overrides there
        OmegaConf.save(OmegaConf.create(list(overrides)), job_dir / ".hydra" / "overrides.yaml")
        signals.record(job_dir, signals.NOT_STARTED, signals.not_started_error(signum), signum,
                       name=cfg.get("name"), seed=cfg.get("seed"))
        return _returned(overrides, cfg, job_dir)


def job_dir_of(config, hydra_context, idx: int, overrides: Sequence[str]) -> tuple[Path, Any]:
    """A sweep job's folder as Hydra names it (hydra.sweep.dir / hydra.sweep.subdir of that job)."""
    from hydra.core.hydra_config import HydraConfig

    cfg = hydra_context.config_loader.load_sweep_config(config, list(overrides))
    with open_dict(cfg):
        cfg.hydra.job.id, cfg.hydra.job.num = f"{cfg.hydra.job.name}_{idx}", idx
    HydraConfig.instance().set_config(cfg)
    return Path(str(cfg.hydra.sweep.dir)) / str(cfg.hydra.sweep.subdir), cfg


def record_lost_job(config, hydra_context, idx: int, overrides: Sequence[str], cause: str,
                    signum: int | None) -> JobReturn:
    """A job whose process died without a result (OOM killer, kill -9): results.json says failed and why,
    and the sweep goes on."""
    from symexp import signals

    job_dir, cfg = job_dir_of(config, hydra_context, idx, overrides)
    error = f"{cause}; rerun the same command to retry it"
    path = signals.record(job_dir, "failed", error, signum, name=cfg.get("name"), seed=cfg.get("seed"))
    log.error("job #%d: %s (%s)", idx, error, path)
    return _returned(overrides, cfg, job_dir)


def _returned(overrides: Sequence[str], cfg, job_dir: Path) -> JobReturn:
    """A JobReturn for a job that produced no value (as symexp's own failed jobs return None)."""
    ret = JobReturn(overrides=list(overrides), cfg=cfg, working_dir=str(job_dir), task_name=cfg.hydra.job.name,
                    status=JobStatus.COMPLETED)
    ret.return_value = None
    return ret


def _kill(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass

