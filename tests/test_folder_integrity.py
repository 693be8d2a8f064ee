"""A job folder that never lies: a refused rerun changes nothing, a resumed sweep in another order is
refused up front, corrupt files are set aside with a fallback, results.json survives failing artefacts and
full disks, and evaluate refuses a checkpoint of another run."""

from __future__ import annotations

import builtins
import errno
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

import symexp.run as run_module
from symexp.evaluate import main as evaluate_main
from symexp.report.aggregate import bad_jobs, collect, job_status
from symexp.run import run
from symexp.sweepcheck import record_refusal
from tests.conftest import ROOT, compose_cfg
from tests.test_resume import QUIET, RFLR, _crash_at, _results

SHORT = [*RFLR, "task.epochs=2", *QUIET]
ENV = {**os.environ, "WANDB_MODE": "offline", "PYTHONPATH": str(ROOT)}


def _snapshot(folder: Path) -> dict[str, str]:
    """Every file below folder with its content hash (and its modification time)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() + f"@{p.stat().st_mtime_ns}"
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _launch(*args: str, wrapper: str = "") -> subprocess.CompletedProcess:
    """python launch.py ARGS, optionally after `wrapper` (python code run first in the same process)."""
    code = f"{wrapper}\nimport runpy, sys\nsys.argv = ['launch.py', *{list(args)!r}]\nrunpy.run_path('launch.py', run_name='__main__')"
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)


def _symexp_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("symexp:")]


# ------------------------------------------------------------------------------------ refused reruns
def test_refused_rerun_changes_nothing_and_the_original_command_still_succeeds(tmp_path):
    job = tmp_path / "job"
    args = [*SHORT, f"hydra.run.dir={job}"]
    assert _launch(*args).returncode == 0
    assert sorted(p.name for p in (job / ".hydra").iterdir()) == ["config.yaml", "hydra.yaml", "overrides.yaml"]
    before = _snapshot(job)
    refused = _launch(*args, "seed=1")
    assert refused.returncode == 1
    assert _symexp_lines(refused.stderr) == [next(line for line in refused.stderr.splitlines() if "seed: 0 -> 1" in line)]
    assert "Traceback" not in refused.stderr
    assert _snapshot(job) == before, "a refused rerun must not touch the folder (.hydra, logs, results)"
    again = _launch(*args)
    assert again.returncode == 0, again.stderr[-2000:]
    assert _snapshot(job) == before, "a skipped finished job changes nothing either"


def test_read_only_finished_job_is_skipped_without_a_traceback(tmp_path):
    """chmod does not stop root, so the folder is also made read-only by a patched open (EROFS)."""
    job = tmp_path / "job"
    args = [*SHORT, f"hydra.run.dir={job}"]
    assert _launch(*args).returncode == 0
    before = _snapshot(job)
    for p in [job, *job.rglob("*")]:
        p.chmod(p.stat().st_mode & ~0o222)
    wrapper = f"import sys; sys.path.insert(0, {str(ROOT)!r}); from tests.readonly_fs import install; install({str(job)!r})"
    try:
        done = _launch(*args, wrapper=wrapper)
    finally:
        for p in [job, *job.rglob("*")]:
            p.chmod(p.stat().st_mode | 0o200)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr and "Logging error" not in done.stderr, done.stderr[-3000:]
    assert "skipped" in done.stderr + done.stdout
    assert _snapshot(job) == before


def test_sweep_resumed_in_another_order_is_refused_up_front_then_resumes_in_order(tmp_path):
    sweep = tmp_path / "sweep"
    args = ["-m", *SHORT, f"hydra.sweep.dir={sweep}"]
    assert _launch(*args, "seed=0,1").returncode == 0
    before = {job: _snapshot(sweep / job) for job in ("0", "1")}
    swapped = _launch(*args, "seed=1,0")
    assert swapped.returncode == 1
    lines = _symexp_lines(swapped.stderr)
    assert len(lines) == 1 and "job 0 ran seed=0, now seed=1" in lines[0] and "same order" in lines[0], lines
    assert "Traceback" not in swapped.stderr
    assert {job: _snapshot(sweep / job) for job in ("0", "1")} == before
    resumed = _launch(*args, "seed=0,1", "logger=csv")  # a volatile key may change on resume
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "2 ok" in (sweep / "summary.md").read_text()


def test_a_refused_sweep_job_is_reported_and_its_folder_keeps_its_status(tmp_path):
    """Jobs refused one by one (a sweeper the up-front check does not cover) are listed as refused."""
    run(compose_cfg(SHORT), tmp_path / "0")
    hydra = OmegaConf.create({"sweep": {"dir": str(tmp_path)}, "runtime": {"output_dir": str(tmp_path / "0")}})
    record_refusal(hydra, "resume: holds a run of a different config (seed: 0 -> 1)")
    assert bad_jobs(tmp_path) == {"0": "refused"}
    assert job_status(tmp_path / "0")[0] == "ok"
    assert {r["status"] for r in collect(tmp_path)} == {"ok", "refused"}


def test_a_stale_failure_record_of_a_refused_rerun_does_not_count(tmp_path):
    """Older versions wrote results.failed.json for refused reruns; the folder's status is its last accepted run."""
    run(compose_cfg(SHORT), tmp_path)
    (tmp_path / "results.failed.json").write_text(json.dumps(
        {"status": "failed", "error": "ConfigError: resume: x holds a run of a different config (seed: 0 -> 1)"}))
    assert job_status(tmp_path) == ("ok", None)


def test_a_skip_retires_the_failure_record_of_a_superseded_attempt(monkeypatch, tmp_path):
    """A failed attempt beside good results counts until a rerun finds the job finished: then it is ok."""
    run(compose_cfg(SHORT), tmp_path)
    with monkeypatch.context() as m:
        _crash_at(m, 0)
        with pytest.raises(RuntimeError):
            run(compose_cfg([*SHORT, "resume=never"]), tmp_path)
    assert job_status(tmp_path)[0] == "failed"
    run(compose_cfg(SHORT), tmp_path)
    assert job_status(tmp_path) == ("ok", None) and not (tmp_path / "results.failed.json").exists()


# ------------------------------------------------------------------------------------ corrupt files
def test_truncated_checkpoint_is_set_aside_and_the_job_starts_fresh(monkeypatch, tmp_path, caplog):
    cfg = compose_cfg([*RFLR, *QUIET])
    run(cfg, tmp_path / "full")
    part = tmp_path / "part"
    with monkeypatch.context() as m:
        _crash_at(m, 3)
        with pytest.raises(RuntimeError):
            run(cfg, part)
    ckpt = part / "checkpoints" / "last.ckpt"
    ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    run(cfg, part)
    res = _results(part)
    assert res["status"] == "ok" and res["timing"]["resumed_from"] is None
    assert res["metrics"] == _results(tmp_path / "full")["metrics"]
    assert (part / "checkpoints" / "last.ckpt.corrupt").exists()
    assert any("checkpoints/last.ckpt was unreadable" in w and "fresh start" in w for w in res["warnings"])
    assert any("last.ckpt was unreadable" in r.getMessage() for r in caplog.records)


def test_corrupt_fingerprint_of_a_finished_job_is_recovered_and_the_job_skipped(monkeypatch, tmp_path, caplog):
    run(compose_cfg(SHORT), tmp_path)
    good = (tmp_path / "results.json").read_text()
    (tmp_path / "fingerprint.json").write_text('{"fingerprint": "ab')
    monkeypatch.setattr(run_module, "build", lambda cfg: pytest.fail("a finished job must not be rebuilt"))
    run(compose_cfg(SHORT), tmp_path)
    assert (tmp_path / "results.json").read_text() == good and job_status(tmp_path)[0] == "ok"
    assert json.loads((tmp_path / "fingerprint.json").read_text())["fingerprint"] == _results(tmp_path)["fingerprint"]
    assert (tmp_path / "fingerprint.json.corrupt").exists()
    assert any("fingerprint.json was unreadable" in r.getMessage() for r in caplog.records)


def test_corrupt_results_and_wandb_id_are_set_aside_and_the_job_finishes_again(tmp_path):
    run(compose_cfg(SHORT), tmp_path)
    metrics = _results(tmp_path)["metrics"]
    (tmp_path / "results.json").write_text('{"status": "ok", "metr')
    (tmp_path / "wandb_id").write_bytes(b"\xff\xfe\x00garbage")
    run(compose_cfg(SHORT), tmp_path)
    res = _results(tmp_path)
    assert res["status"] == "ok" and res["metrics"] == metrics
    assert (tmp_path / "results.json.corrupt").exists() and (tmp_path / "wandb_id.corrupt").exists()
    assert any(w.startswith("results.json was unreadable") for w in res["warnings"])
    assert any(w.startswith("wandb_id was unreadable") for w in res["warnings"])


# ------------------------------------------------------------------------------------ full disks
def _failing_open(monkeypatch, when) -> None:
    """builtins.open whose files fail with ENOSPC on write for paths where when(path) holds."""
    real = builtins.open

    class Full:
        def __init__(self, fh):
            self._fh = fh

        def write(self, data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def __getattr__(self, name):
            return getattr(self._fh, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self._fh.close()

    def fake_open(file, mode="r", *args, **kwargs):
        fh = real(file, mode, *args, **kwargs)
        if any(c in mode for c in "wax") and isinstance(file, (str, os.PathLike)) and when(Path(file)):
            return Full(fh)
        return fh

    monkeypatch.setattr(builtins, "open", fake_open)


def test_failing_figures_leave_the_results_and_a_warning(monkeypatch, tmp_path):
    with monkeypatch.context() as m:
        _failing_open(m, lambda p: p.suffix == ".png")
        run(compose_cfg(SHORT), tmp_path)
    res = _results(tmp_path)
    assert res["status"] == "ok" and "test/mse" in res["metrics"] and res["members"]
    assert any("figures failed: no space left on the device (ENOSPC)" in w for w in res["warnings"])


def test_full_disk_gives_one_line_naming_the_folder_and_no_temp_files(monkeypatch, tmp_path, capsys):
    with monkeypatch.context() as m:
        _failing_open(m, lambda p: tmp_path in p.parents)
        with pytest.raises(SystemExit) as info:
            run(compose_cfg(SHORT), tmp_path)
    message = str(info.value)
    assert message.startswith(f"symexp: disk error: {tmp_path}: no space left on the device (ENOSPC)"), message
    assert "\n" not in message
    assert not list(tmp_path.rglob(".results-*")), "no temp results file may be left"
    assert "Traceback" not in capsys.readouterr().err


def test_full_disk_while_checkpointing_leaves_no_partial_temp_checkpoint(monkeypatch, tmp_path):
    import lightning as L

    real = L.Trainer.save_checkpoint

    def partial(self, filepath, *args, **kwargs):
        if Path(filepath).name == ".last.ckpt.tmp" and self.current_epoch >= 2:
            Path(filepath).write_bytes(b"PK\x03\x04 partial")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(filepath))
        return real(self, filepath, *args, **kwargs)

    monkeypatch.setattr(L.Trainer, "save_checkpoint", partial)
    with pytest.raises(SystemExit, match=r"disk error: .*no space left on the device \(ENOSPC\) writing .*last\.ckpt\.tmp"):
        run(compose_cfg([*RFLR, *QUIET]), tmp_path)
    assert not (tmp_path / "checkpoints" / ".last.ckpt.tmp").exists()
    assert (tmp_path / "checkpoints" / "last.ckpt").exists(), "the previous checkpoint stays"
    assert _results(tmp_path)["status"] == "failed"


def test_a_job_log_on_a_full_disk_says_so_once_without_tracebacks(monkeypatch, tmp_path, capsys):
    import logging

    from symexp.joblog import JobFileHandler

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    handler = JobFileHandler(str(tmp_path / "launch.log"))
    monkeypatch.setattr(handler, "_builtin_open", full)
    logger = logging.getLogger("tests.full_disk")
    monkeypatch.setattr(logger, "propagate", False)
    logger.addHandler(handler)
    try:
        logger.error("first")
        logger.error("second")
    finally:
        logger.removeHandler(handler)
    err = capsys.readouterr().err
    assert err.count("symexp: cannot write the job log") == 1 and "(ENOSPC)" in err, err
    assert "Traceback" not in err and "Logging error" not in err


# ------------------------------------------------------------------------------------ evaluate
def test_evaluate_refuses_a_checkpoint_of_another_run(tmp_path, capsys):
    seed0, seed1 = tmp_path / "s0", tmp_path / "s1"
    run(compose_cfg(SHORT), seed0)
    run(compose_cfg([*SHORT, "seed=1"]), seed1)
    (seed1 / "checkpoints" / "last.ckpt").write_bytes((seed0 / "checkpoints" / "last.ckpt").read_bytes())
    assert evaluate_main([str(seed1), "progress=none"]) == 2
    err = capsys.readouterr().err
    assert "checkpoint of another run" in err and "seed: 0 -> 1" in err and len(err.strip().splitlines()) == 1
    assert not (seed1 / "eval" / "results.json").exists()


def test_evaluate_names_the_architecture_mismatch_of_a_checkpoint_without_fingerprint(tmp_path, capsys):
    import torch

    run(compose_cfg(SHORT), tmp_path / "small")
    run(compose_cfg([*SHORT, "model.width=16"]), tmp_path / "other")
    ckpt = torch.load(tmp_path / "other" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    del ckpt["symexp"]
    torch.save(ckpt, tmp_path / "small" / "checkpoints" / "last.ckpt")
    assert evaluate_main([str(tmp_path / "small"), "progress=none"]) == 2
    err = capsys.readouterr().err.strip()
    assert "do not fit" in err and len(err.splitlines()) == 1, err
