"""Signals and dead workers: a job stopped by SIGTERM/SIGINT/SIGUSR1/SIGUSR2 keeps its work (a checkpoint at
the next safe point, results.json `interrupted`, a non-zero W&B exit code) and exits 128 + signal; a sweep
stops, lists the interrupted and not-started jobs and exits the same way; a rerun continues to the numbers
of an uninterrupted run; a parallel sweep survives a worker killed by SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from hydra_plugins.symexp_launchers.parallel import dead_worker_signal, n_workers
from symexp import signals
from symexp.report.aggregate import bad_jobs
from tests.conftest import ROOT, compose_cfg
from tests.test_scaling import TINY, _wait_for
from tests.wandb_records import offline_runs

# 30 epochs of 64 autograd steps with a checkpoint after each: long enough to be signalled mid-run
LONG = [*[a for a in TINY if not a.startswith(("data.n_train", "task.epochs"))], "data.n_train=64", "task.epochs=30",
        "task.engine=autograd", "checkpoint.every_n_epochs=1"]


def _start(args: list[str], cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, str(ROOT / "launch.py"), *args], env=env, cwd=cwd, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _signal_after_checkpoint(proc: subprocess.Popen, ckpt: Path, signum: int, pid: int | None = None) -> str:
    _wait_for(lambda: ckpt.exists() or proc.poll() is not None, what=f"{ckpt}")
    assert proc.poll() is None, "the job ended before it could be signalled"
    os.kill(pid or proc.pid, signum)
    out, _ = proc.communicate(timeout=600)
    return out


def _results(job: Path) -> dict:
    return json.loads((job / "results.json").read_text())


# ------------------------------------------------------------------------------------------ unit level


def test_exit_codes_follow_the_shell_convention():
    assert [signals.exit_code(s) for s in signals.HANDLED] == [143, 130, 138, 140]


def test_a_dead_loky_worker_is_named_by_its_signal():
    msg = ("A worker process managed by the executor was unexpectedly terminated. ...\n"
           "The exit codes of the workers are {SIGKILL(-9)}\n")
    assert dead_worker_signal(RuntimeError(msg)) == signal.SIGKILL
    assert dead_worker_signal(RuntimeError("The exit codes of the workers are {}")) is None
    assert [n_workers(2, cpus=8), n_workers(-1, cpus=8), n_workers(-2, cpus=8)] == [2, 8, 7]
    with pytest.raises(ValueError, match="hydra.launcher.n_jobs"):
        n_workers(0)


def test_sweep_exit_code_names_interrupted_and_not_started_jobs(tmp_path, caplog):
    for job, status in (("0", "ok"), ("1", "interrupted"), ("2", "not_started"), ("10", "not_started")):
        (tmp_path / job).mkdir()
        (tmp_path / job / "results.json").write_text(json.dumps({"status": status, "signal": "SIGUSR1"}))
    assert signals.sweep_exit_code(tmp_path, {"3": "failed"}) is None, "a failed job is not an interruption"
    assert signals.sweep_exit_code(tmp_path, bad_jobs(tmp_path)) == 138
    assert "1 job(s) interrupted (1), 2 not started (2, 10)" in caplog.text


def test_a_handler_found_in_place_runs_after_the_job_stopped():
    """submitit's requeue handler (SIGUSR2) must still run, after symexp wrote its files."""
    called = []
    before = signal.signal(signal.SIGUSR2, lambda s, f: called.append(s))
    try:
        signals.start_job(keep_state=False)
        assert signal.getsignal(signal.SIGUSR2) is signals._handler
        signals.after_stop(signal.SIGUSR2)
        assert called == [signal.SIGUSR2]
        signals.end_job(give_back_handlers=True)
        assert signal.getsignal(signal.SIGUSR2) is not signals._handler, "a single run restores the handlers"
    finally:
        signal.signal(signal.SIGUSR2, before)


def test_sigterm_in_process_stops_at_a_checkpoint_and_exits_143(tmp_path, one_torch_thread):
    """run() on a SIGTERM during training: the checkpoint of the epoch in progress, results.json
    `interrupted` with the metrics logged so far, SystemExit(143), and the caller's handlers back."""
    from symexp.run import run

    job = tmp_path / "job"
    cfg = compose_cfg([*LONG, "logger=none", f"paths.output_root={tmp_path}"])
    ckpt = job / "checkpoints" / "last.ckpt"
    main = threading.main_thread()

    def send() -> None:
        _wait_for(lambda: ckpt.exists() or not main.is_alive(), what="the first checkpoint")
        os.kill(os.getpid(), signal.SIGTERM)

    original = signal.getsignal(signal.SIGTERM)
    threading.Thread(target=send, daemon=True).start()
    with pytest.raises(SystemExit) as stop:
        run(cfg, job_dir=job)
    assert stop.value.code == 143
    res = _results(job)
    assert res["status"] == "interrupted" and res["signal"] == "SIGTERM"
    assert "rerun the same command" in res["error"] and res["checkpoint"] == "checkpoints/last.ckpt"
    assert "train/loss" in res["metrics"], "the metrics logged so far are kept"
    assert signal.getsignal(signal.SIGTERM) is original


# ------------------------------------------------------------------------------------ real processes


def test_sigterm_to_a_single_run_checkpoints_records_interrupted_and_a_rerun_continues(tmp_path):
    """Before: "Received SIGTERM", no results.json, exit 0, W&B exit 0. Now: exit 143, results.json and the
    W&B run say interrupted, and the same command continues the checkpoint to the end."""
    job = tmp_path / "job"
    args = [*LONG, "logger=wandb", f"hydra.run.dir={job}"]
    proc = _start(args, tmp_path)
    out = _signal_after_checkpoint(proc, job / "checkpoints" / "last.ckpt", signal.SIGTERM)
    assert proc.returncode == 143, out[-3000:]
    res = _results(job)
    assert res["status"] == "interrupted" and res["signal"] == "SIGTERM", res
    assert "Traceback" not in out
    (run,) = offline_runs(job)
    assert run["exit_code"] == 143 and run["summary"]["status"] == "interrupted"

    again = _start(args, tmp_path)
    out, _ = again.communicate(timeout=600)
    assert again.returncode == 0, out[-3000:]
    res = _results(job)
    assert res["status"] == "ok" and res["timing"]["resumed_from"], "the rerun continued the checkpoint"
    assert res["timing"]["train_steps"] == 30 * 64
    assert [r["id"] for r in offline_runs(job)] == [run["id"]] * 2, "the same W&B run continues"


def test_sigterm_stops_a_sequential_sweep_and_its_summary_lists_the_rest(tmp_path):
    """Before: the sweep exited 0 after the current job, never ran the rest and wrote no summary."""
    sweep = tmp_path / "sweep"
    proc = _start(["-m", "seed=0,1,2", *LONG, "logger=wandb", f"hydra.sweep.dir={sweep}"], tmp_path)
    out = _signal_after_checkpoint(proc, sweep / "0" / "checkpoints" / "last.ckpt", signal.SIGTERM)
    assert proc.returncode == 143, out[-3000:]
    assert [_results(sweep / str(i))["status"] for i in range(3)] == ["interrupted", "not_started", "not_started"]
    assert not (sweep / "1" / "wandb").exists(), "a job that did not start has no W&B run"
    md = (sweep / "summary.md").read_text()
    assert "3 jobs" in md and "1 interrupted" in md and "2 not_started" in md
    assert "1 job(s) interrupted (0), 2 not started (1, 2)" in out


def test_a_killed_joblib_worker_fails_only_its_job(tmp_path):
    """Before: TerminatedWorkerError, the other job killed with it, no summary. Now: the dead worker's job is
    failed with SIGKILL, the other job ends ok, the summary is written, exit 1."""
    sweep = tmp_path / "sweep"
    proc = _start(["-m", "launcher=joblib", "hydra.launcher.n_jobs=2", "seed=0,1", *LONG, "logger=none",
                   f"hydra.sweep.dir={sweep}"], tmp_path)
    log = sweep / "0" / "launch.log"
    _wait_for(lambda: (sweep / "0" / "checkpoints" / "last.ckpt").exists(), what="job 0's first checkpoint")
    (worker,) = [int(p) for p in os.listdir("/proc") if p.isdigit() and _holds(int(p), log)]
    os.kill(worker, signal.SIGKILL)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 1, out[-3000:]
    dead, other = _results(sweep / "0"), _results(sweep / "1")
    assert dead["status"] == "failed" and dead["signal"] == "SIGKILL" and "killed by SIGKILL" in dead["error"]
    assert other["status"] == "ok"
    assert "TerminatedWorkerError" not in out
    head = (sweep / "summary.md").read_text().splitlines()[2]
    assert head.startswith("2 jobs, 2 member rows:") and "1 ok" in head and "1 failed" in head, head


def _holds(pid: int, path: Path) -> bool:
    """Whether process pid has path open (the job's log: the worker running that job)."""
    try:
        return any(os.readlink(f"/proc/{pid}/fd/{fd}") == str(path) for fd in os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGUSR1, signal.SIGUSR2])
def test_every_handled_signal_stops_a_run_with_its_exit_code(tmp_path, signum):
    job = tmp_path / "job"
    proc = _start([*LONG, "logger=none", f"hydra.run.dir={job}"], tmp_path)
    out = _signal_after_checkpoint(proc, job / "checkpoints" / "last.ckpt", signum)
    assert proc.returncode == 128 + signum, out[-3000:]
    assert _results(job)["signal"] == signal.Signals(signum).name


@pytest.mark.slow
def test_a_sigtermed_sweep_resumes_to_the_numbers_of_an_uninterrupted_sweep(tmp_path):
    args = ["-m", "seed=0,1", *LONG, "logger=none"]
    reference = _start([*args, f"hydra.sweep.dir={tmp_path}/ref"], tmp_path)
    sweep = tmp_path / "sweep"
    proc = _start([*args, f"hydra.sweep.dir={sweep}"], tmp_path)
    _signal_after_checkpoint(proc, sweep / "0" / "checkpoints" / "last.ckpt", signal.SIGTERM)
    assert proc.returncode == 143
    again = _start([*args, f"hydra.sweep.dir={sweep}"], tmp_path)
    out, _ = again.communicate(timeout=600)
    assert again.returncode == 0, out[-3000:]
    assert reference.wait(timeout=600) == 0
    for i in (0, 1):
        got, want = _results(sweep / str(i)), _results(tmp_path / "ref" / str(i))
        assert got["metrics"] == want["metrics"] and got["members"] == want["members"]
    assert _results(sweep / "0")["timing"]["resumed_from"]


@pytest.mark.slow
def test_sigterm_to_a_joblib_sweep_stops_its_workers_and_records_the_rest(tmp_path):
    """Only the sweep's process is signalled (kill PID): it passes the signal to the running job."""
    sweep = tmp_path / "sweep"
    proc = _start(["-m", "launcher=joblib", "hydra.launcher.n_jobs=1", "seed=0,1", *LONG, "logger=none",
                   f"hydra.sweep.dir={sweep}"], tmp_path)
    out = _signal_after_checkpoint(proc, sweep / "0" / "checkpoints" / "last.ckpt", signal.SIGTERM)
    assert proc.returncode == 143, out[-3000:]
    assert [_results(sweep / str(i))["status"] for i in (0, 1)] == ["interrupted", "not_started"]
    assert "seed=1" in (sweep / "1" / ".hydra" / "overrides.yaml").read_text()


@pytest.mark.slow
def test_sigterm_to_a_submitit_job_records_it_interrupted_and_the_sweep_exits_143(tmp_path):
    """SLURM's scancel / time-limit SIGTERM reaches the job's process (not the one waiting for the array)."""
    from tests.test_scaling import _task_pids

    sweep = tmp_path / "sweep"
    proc = _start(["-m", "launcher=submitit_local", "seed=0", *LONG, "logger=none", f"hydra.sweep.dir={sweep}"],
                  tmp_path)
    _wait_for(lambda: (sweep / "0" / "checkpoints" / "last.ckpt").exists(), what="the first checkpoint")
    (pid,) = _wait_for(lambda: _task_pids(sweep), what="the job process")
    out = _signal_after_checkpoint(proc, sweep / "0" / "checkpoints" / "last.ckpt", signal.SIGTERM, pid=pid)
    assert proc.returncode == 143, out[-3000:]
    assert _results(sweep / "0")["status"] == "interrupted"


@pytest.mark.slow
def test_a_killed_local_gpus_job_is_recorded_failed_and_the_sweep_reports(tmp_path, monkeypatch):
    """launcher=local_gpus (submitit's local executor): a job process killed by SIGKILL used to raise
    UncompletedJobError in the sweep's process, with no summary."""
    from tests.test_scaling import _task_pids

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    sweep = tmp_path / "sweep"
    proc = _start(["-m", "launcher=local_gpus", "seed=0", *LONG, "logger=none", f"hydra.sweep.dir={sweep}"], tmp_path)
    _wait_for(lambda: (sweep / "0" / "checkpoints" / "last.ckpt").exists(), what="the first checkpoint")
    (pid,) = _wait_for(lambda: _task_pids(sweep), what="the job process")
    out = _signal_after_checkpoint(proc, sweep / "0" / "checkpoints" / "last.ckpt", signal.SIGKILL, pid=pid)
    assert proc.returncode == 1, out[-3000:]
    res = _results(sweep / "0")
    assert res["status"] == "failed" and "ended without a result" in res["error"]
    assert (sweep / "summary.md").exists() and "UncompletedJobError" not in out.splitlines()[-1]
