"""Hydra launcher for one node with several GPUs (`launcher=local_gpus`). Hydra accepts launchers only from
the hydra_plugins namespace, hence the location; it needs the `slurm` extra (hydra-submitit-launcher).

submitit's local executor runs each job in its own process with a time limit, the timeout signal and
requeue, but starts every job at once and shows each the same GPUs. This launcher keeps its behaviour and
adds the one missing piece: a fixed set of GPU slots, each job pinned to a free one through
CUDA_VISIBLE_DEVICES, the next job submitted as soon as a slot frees up. Without a GPU it runs one job per
pair of CPU cores at a time, two torch threads each.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, filter_overrides

try:
    from hydra_plugins.hydra_submitit_launcher.submitit_launcher import LocalLauncher
except ImportError:  # without the slurm extra this module must still import: Hydra scans every plugin module

    class LocalLauncher:  # type: ignore[no-redef]
        def __init__(self, **params: Any) -> None:
            raise ImportError("launcher=local_gpus needs the slurm extra: pip install -e '.[slurm]'")


log = logging.getLogger(__name__)
CPU_THREADS_PER_JOB = 2


def visible_gpus() -> list[int]:
    """The GPU indices this node lets us use: CUDA_VISIBLE_DEVICES when set, else every device torch sees."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [int(x) for x in env.split(",") if x.strip().isdigit()]
    import torch

    return list(range(torch.cuda.device_count()))


def gpu_slots(gpus: Sequence[int], per_job: int) -> list[tuple[int, ...]]:
    """Disjoint groups of `per_job` GPUs; leftover GPUs that cannot fill a group stay idle."""
    per_job = max(1, int(per_job))
    return [tuple(gpus[i : i + per_job]) for i in range(0, len(gpus) - per_job + 1, per_job)]


class LocalGPULauncher(LocalLauncher):
    """submitit local executor, one job per GPU slot at a time."""

    def __call__(self, *args: Any, **kwargs: Any) -> JobReturn:
        if not os.environ.get("CUDA_VISIBLE_DEVICES"):  # a CPU slot: torch reads this at import, in the job
            os.environ.setdefault("OMP_NUM_THREADS", str(CPU_THREADS_PER_JOB))
        return super().__call__(*args, **kwargs)

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        import submitit

        assert self.config is not None
        per_job = int(self.params.get("gpus_per_node") or 1)
        slots: list[tuple[int, ...]] = gpu_slots(visible_gpus(), per_job)
        if not slots:
            n = max(1, (os.cpu_count() or 2) // CPU_THREADS_PER_JOB)
            log.warning("launcher=local_gpus: no GPU visible; running %d jobs at a time, one per CPU core pair", n)
            slots = [()] * n
        else:
            log.info("launcher=local_gpus: %d jobs at a time on GPUs %s", len(slots), slots)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        # the plain LocalExecutor: AutoExecutor does not pass visible_gpus through
        executor = submitit.LocalExecutor(folder=self.params["submitit_folder"], max_num_timeout=3)
        timeout_min = self.params.get("timeout_min", 60)
        free, running, jobs = list(slots), {}, []
        for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
            while not free:
                time.sleep(0.5)
                for job in [j for j in running if j.done()]:
                    free.append(running.pop(job))
            slot = free.pop(0)
            executor.update_parameters(timeout_min=timeout_min, gpus_per_node=len(slot), visible_gpus=slot)
            log.info("\t#%d on %s : %s", idx, f"GPU {slot}" if slot else "CPU", " ".join(filter_overrides(overrides)))
            job = executor.submit(
                self, list(overrides), "hydra.sweep.dir", idx, f"job_id_for_{idx}", Singleton.get_state()
            )
            running[job] = slot
            jobs.append(job)
        return [self._result(job, initial_job_idx + i, job_overrides[i]) for i, job in enumerate(jobs)]

    def _result(self, job, idx: int, overrides: Sequence[str]) -> JobReturn:
        """The job's JobReturn; a job whose process died without a result (OOM killer, kill -9) is recorded
        failed and the sweep goes on to its summary."""
        from submitit.core.utils import UncompletedJobError

        from hydra_plugins.symexp_launchers.parallel import record_lost_job

        try:
            return job.results()[0]
        except UncompletedJobError as exc:
            cause = f"the job's process ended without a result ({str(exc).splitlines()[0][:200]})"
            return record_lost_job(self.config, self.hydra_context, idx, overrides, cause, None)
