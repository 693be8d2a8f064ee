"""Scaling out: launchers, sbatch rendering, sweep exit codes, resumable sweeps, merged reports, Optuna, CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hydra.utils import instantiate

from hydra_plugins.symexp_launchers.local_gpus import gpu_slots
from symexp.cli import print_help, user_groups
from symexp.report.__main__ import main as report_main
from symexp.report.aggregate import bad_jobs, collect
from tests.conftest import ROOT, compose_cfg
from tests.test_report import _tree

# the smallest RF-LR job that trains, evaluates and reports (about a second of fit)
TINY = ["budget=smoke", "model.width=16", "model.depth=1", "data.n_train=8", "data.n_val=8", "task.epochs=2",
        "task.val_every=1", "progress=none"]


def _launch(args: list[str], cwd: Path, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, str(ROOT / "launch.py"), *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=timeout)


def _wandb_runs(job: Path) -> list[str]:
    return sorted(p.name for p in (job / "wandb").glob("offline-run-*"))


# ----------------------------------------------------------------------------------------------- launchers


class _Submitted(Exception):
    """Raised in place of calling sbatch: the submission file is written, nothing is submitted."""


def test_slurm_launcher_renders_the_requested_sbatch_parameters(tmp_path, monkeypatch):
    import submitit.core.utils as sutils
    from submitit.slurm.slurm import SlurmExecutor

    cfg = compose_cfg(["launcher=slurm", "name=slurm_test", f"hydra.sweep.dir={tmp_path}/sweep",
                       "hydra.launcher.partition=gpu", "hydra.launcher.account=mylab", "hydra.launcher.qos=high",
                       "hydra.launcher.gpus_per_node=2", "hydra.launcher.cpus_per_task=6", "hydra.launcher.mem_gb=40",
                       "hydra.launcher.timeout_min=90", "hydra.launcher.array_parallelism=2",
                       "+hydra.launcher.additional_parameters.mail-type=END"], return_hydra=True)
    written = {}

    def no_sbatch(self, *args, **kwargs):
        path = Path(self.command[-1])
        written["command"], written["text"] = self.command, path.read_text()
        raise _Submitted

    monkeypatch.setattr(sutils.CommandFunction, "__call__", no_sbatch)
    monkeypatch.setattr(SlurmExecutor, "affinity", classmethod(lambda cls: 1))  # no srun here
    launcher = instantiate(cfg.hydra.launcher)
    launcher.setup(hydra_context=None, task_function=None, config=cfg)
    with pytest.raises(_Submitted):
        launcher.launch([["seed=0"], ["seed=1"], ["seed=2"]], initial_job_idx=0)
    text = written["text"]
    assert written["command"][0] == "sbatch"
    for line in ("#SBATCH --partition=gpu", "#SBATCH --account=mylab", "#SBATCH --qos=high",
                 "#SBATCH --gpus-per-node=2", "#SBATCH --cpus-per-task=6", "#SBATCH --mem=40GB",
                 "#SBATCH --time=90", "#SBATCH --array=0-2%2", "#SBATCH --mail-type=END",
                 "#SBATCH --signal=USR2@120", "#SBATCH --job-name=slurm_test", "#SBATCH --open-mode=append"):
        assert line in text, f"{line!r} missing from the sbatch file:\n{text}"
    assert f"{tmp_path}/sweep/.submitit/" in text, "submitit's logs and pickles live in the sweep folder"


def test_slurm_defaults_request_one_gpu_and_allow_requeues():
    launcher = compose_cfg(["launcher=slurm"], return_hydra=True).hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert launcher.gpus_per_node == 1 and launcher.max_num_timeout > 0, "a timed-out job must be requeued"


def test_local_gpus_splits_the_visible_gpus_into_disjoint_slots():
    assert gpu_slots([0, 1, 2, 3], 1) == [(0,), (1,), (2,), (3,)]
    assert gpu_slots([4, 5, 6, 7, 0], 2) == [(4, 5), (6, 7)], "a leftover GPU that cannot fill a slot stays idle"
    assert gpu_slots([], 1) == []
    launcher = compose_cfg(["launcher=local_gpus"], return_hydra=True).hydra.launcher
    assert launcher._target_ == "hydra_plugins.symexp_launchers.local_gpus.LocalGPULauncher"


def test_local_gpus_on_a_cpu_machine_runs_one_job_per_core_pair(tmp_path, monkeypatch):
    """No GPU: jobs still run (through submitit's local executor), a few at a time, with a message."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    out = _launch(["-m", "launcher=local_gpus", "logger=none", "seed=0,1", *TINY, f"hydra.sweep.dir={tmp_path}/s"], tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "no GPU visible; running" in out.stdout + out.stderr
    assert [json.loads((tmp_path / "s" / str(i) / "results.json").read_text())["status"] for i in (0, 1)] == ["ok", "ok"]


def test_submitit_local_sweep_end_to_end(tmp_path):
    """3 jobs through submitit's local executor: results, the sweep summary and one W&B offline run each."""
    sweep = tmp_path / "sweep"
    out = _launch(["-m", "launcher=submitit_local", "logger=wandb", "seed=0,1,2", *TINY, f"hydra.sweep.dir={sweep}"],
                  tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    for i in range(3):
        res = json.loads((sweep / str(i) / "results.json").read_text())
        assert res["status"] == "ok" and res["seed"] == i
        assert len(_wandb_runs(sweep / str(i))) == 1, f"job {i} must have exactly one W&B offline run"
    assert len(list((sweep / ".submitit").glob("*/*_result.pkl"))) == 3, "each job ran as its own submitit job"
    md = (sweep / "summary.md").read_text()
    assert "3 jobs, 3 member rows: 3 ok." in md
    assert sorted(r["seed"] for r in collect(sweep)) == [0, 1, 2]


# ------------------------------------------------------------------------------------------ requeue

# long enough (30 epochs of 64 autograd steps, a checkpoint after each) to be interrupted twice mid-run
LONGER = [*[a for a in TINY if not a.startswith(("data.n_train", "task.epochs"))], "data.n_train=64", "task.epochs=30",
          "task.engine=autograd", "checkpoint.every_n_epochs=1", "logger=none"]


def _task_pids(sweep: Path) -> list[int]:
    """The running job processes of a submitit_local sweep: children of its controllers (one per job id)."""
    pids = []
    for job in (sweep / ".submitit").glob("[0-9]*"):
        try:
            pids += [int(p) for p in Path(f"/proc/{job.name}/task/{job.name}/children").read_text().split()]
        except OSError:
            pass
    return pids


def _wait_for(predicate, timeout: float = 300.0, what: str = ""):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_job_signalled_twice_is_requeued_and_ends_with_the_numbers_of_an_uninterrupted_run(tmp_path):
    """What SLURM does at a time limit, on this machine: submitit sends USR2 (with timeout_min=2 every signal
    counts as a time-out), the job requeues itself, the next slot resumes from the last checkpoint in the same
    job folder. Three slots end with exactly the metrics of one uninterrupted run."""
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONPATH": str(ROOT)}
    reference = subprocess.Popen([sys.executable, str(ROOT / "launch.py"), *LONGER, f"hydra.run.dir={tmp_path}/ref"],
                                 env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sweep = tmp_path / "sweep"
    proc = subprocess.Popen([sys.executable, str(ROOT / "launch.py"), "-m", "launcher=submitit_local",
                             "hydra.launcher.timeout_min=2", *LONGER, f"hydra.sweep.dir={sweep}"],
                            env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ckpt = sweep / "0" / "checkpoints" / "last.ckpt"
    seen, done = 0, set()
    for slot in range(2):
        # a new slot's process, then a checkpoint of its own (the stopped slot saved one at the signal)
        pid = _wait_for(lambda d=done: [p for p in _task_pids(sweep) if p not in d], what=f"slot {slot + 1}")[0]
        _wait_for(lambda s=seen: ckpt.exists() and ckpt.stat().st_mtime_ns > s, what=f"a checkpoint in slot {slot + 1}")
        os.kill(pid, signal.SIGUSR2)
        _wait_for(lambda p=pid: p not in _task_pids(sweep), what="the job to stop")
        seen, done = ckpt.stat().st_mtime_ns, done | {pid}
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-3000:]
    assert reference.wait(timeout=600) == 0
    # submitit's own log lines (Hydra's handler repeats them in another format)
    logs = [line for p in (sweep / ".submitit").glob("*/*_log.out") for line in p.read_text().splitlines()
            if line.startswith("submitit ")]
    assert sum("this job is timed-out" in x for x in logs) == 2, logs
    assert sum("Requeued job" in x for x in logs) == 2, logs
    got = json.loads((sweep / "0" / "results.json").read_text())
    want = json.loads((tmp_path / "ref" / "results.json").read_text())
    assert got["timing"]["resumed_from"], "the last slot continued a checkpoint"
    assert got["timing"]["train_steps"] == want["timing"]["train_steps"] == 30 * 64
    assert got["metrics"] == want["metrics"] and got["members"] == want["members"]


# ------------------------------------------------------------------------------------- exit codes, resume

N_TRAIN_FROM_ENV = "data.n_train=8,16,'${oc.decode:${oc.env:SYMEXP_TEST_N_TRAIN}}'"  # job 2 fails while it is 0


def test_failing_sweep_exits_nonzero_after_its_summary_and_a_resume_skips_finished_jobs(tmp_path):
    sweep = tmp_path / "sweep"
    args = ["-m", N_TRAIN_FROM_ENV, "logger=wandb", *[a for a in TINY if not a.startswith("data.n_train")],
            f"hydra.sweep.dir={sweep}"]
    first = _launch(args, tmp_path, env={"SYMEXP_TEST_N_TRAIN": "0"})
    assert first.returncode != 0, "a sweep with a failed job must exit non-zero"
    assert "1 job(s) failed or diverged" in first.stderr
    md = (sweep / "summary.md").read_text()
    assert "3 jobs" in md and "1 failed" in md, "the summary is written before the sweep exits"
    assert bad_jobs(sweep) == {"2": "failed"}
    before = {i: ((sweep / str(i) / "results.json").read_bytes(), _wandb_runs(sweep / str(i))) for i in (0, 1)}

    again = _launch(args, tmp_path, env={"SYMEXP_TEST_N_TRAIN": "4"})  # the cause of job 2's failure is gone
    assert again.returncode == 0, again.stderr[-3000:]
    for i in (0, 1):  # finished jobs: not retrained (results.json byte for byte), no new W&B run
        assert (sweep / str(i) / "results.json").read_bytes() == before[i][0], f"job {i} was rerun"
        assert _wandb_runs(sweep / str(i)) == before[i][1], f"job {i} got a new W&B run"
    rerun = json.loads((sweep / "2" / "results.json").read_text())
    assert rerun["status"] == "ok" and rerun["timing"]["train_steps"] > 0, "the failed job is rerun"
    assert bad_jobs(sweep) == {}
    assert "3 jobs, 3 member rows: 3 ok." in (sweep / "summary.md").read_text(), "the summary is rewritten"


def test_strict_exit_false_lets_a_failed_sweep_exit_zero(tmp_path):
    out = _launch(["-m", "model.rank=2,99", "logger=none", "strict_exit=false", *TINY, f"hydra.sweep.dir={tmp_path}/s"],
                  tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert bad_jobs(tmp_path / "s") == {"1": "failed"}, "model.rank=99 > width 16 fails; the sweep still ends 0"


def test_a_diverged_single_run_exits_nonzero(tmp_path):
    out = _launch(["logger=none", "task.divergence_loss=1e-12", *TINY, f"hydra.run.dir={tmp_path}/r"], tmp_path)
    assert json.loads((tmp_path / "r" / "results.json").read_text())["status"] == "diverged"
    assert out.returncode != 0 and "symexp: job diverged" in out.stderr


# ---------------------------------------------------------------------------------------------- reports


def test_report_merges_several_sweep_folders_and_names_their_source(tmp_path, capsys):
    a, b, out = tmp_path / "submission_a", tmp_path / "submission_b", tmp_path / "merged"
    _tree(a)
    _tree(b)
    report_main([str(a), str(b), "--out", str(out)])
    rows = list(__import__("csv").DictReader((out / "summary.csv").open()))
    assert {r["source"] for r in rows} == {str(a), str(b)}
    assert len(rows) == 2 * len(collect(a))
    assert all((out / r["job"]).resolve().parent in (a.resolve(), b.resolve()) for r in rows), "job paths resolve from out"
    md = (out / "summary.md").read_text()
    assert "## Sources" in md and f"| {a} | 7 |" in md and f"| {b} | 7 |" in md
    assert not (a / "summary.md").exists(), "merging writes one report, not one per folder"


# ----------------------------------------------------------------------------------------------- Optuna


def test_optuna_search_of_three_trials_records_a_failed_trial_and_finds_the_best(tmp_path):
    """Three learning rates, one invalid (random sampler, seed 1 draws each once with optuna 2.10): that trial
    fails, the search goes on and picks the best of the other two."""
    (tmp_path / "search.yaml").write_text(f"""
defaults:
  - /config
  - override /hparams_search: rflr_cosine1d
  - override /hydra/sweeper/sampler: random
  - _self_
hydra:
  searchpath: [file://{ROOT}/conf]
  sweeper:
    n_trials: 3
    params:
      task.optimizer.lr: choice(-1.0, 1e-3, 1e-2)
      task.scheduler.gamma: choice(0.9)
""")
    sweep = tmp_path / "sweep"
    out = _launch(["-cd", str(tmp_path), "-cn", "search", "seed=1", "logger=none", *TINY, f"hydra.sweep.dir={sweep}"],
                  tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    log = out.stdout + out.stderr
    assert log.count("Failed experiment") == 1, "the lr=-1 trial is recorded as failed, not a crash"
    jobs = [json.loads((sweep / str(i) / "results.json").read_text()) for i in range(3)]
    assert sorted(j["config"]["task"]["optimizer"]["lr"] for j in jobs) == [-1.0, 1e-3, 1e-2], "sampler draws changed"
    assert sorted(j["status"] for j in jobs) == ["failed", "ok", "ok"]
    best = (sweep / "optimization_results.yaml").read_text()
    assert "best_value" in best and "-1.0" not in best


# --------------------------------------------------------------------------------------------- CLI


def test_help_lists_user_options_only(capsys):
    print_help()
    text = capsys.readouterr().out
    assert "data: cifar10" in text and "launcher: joblib, local, local_gpus, slurm, submitit_local" in text
    assert "hparams_search: rflr_cosine1d, syre_fcn" in text
    assert "_regression" not in text and "_vision" not in text
    assert "_regression" not in user_groups()


def test_the_command_line_does_not_import_torch_before_the_job():
    """--help / --cfg / tab completion stay fast because composing a config never loads torch or Lightning."""
    code = "import sys; sys.argv = ['launch.py']; import launch; print(sorted({'torch', 'lightning'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
