"""An online W&B run whose server cannot be reached starts offline within ``logger.init_timeout`` in total
(before: wandb looked the account up with retried requests, then waited out its init timeout, then started
a fresh service for the offline run: 50+ s for init_timeout=5). Each case runs in a fresh process, since
wandb reads its environment once per process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading

import pytest

from tests.conftest import ROOT

# builds the job's logger the way symexp.run does and prints how long that took
PROBE = """
import json, sys, time
from pathlib import Path
from tests.conftest import compose_cfg
from symexp.loggers import build_logger, finish
cfg = compose_cfg(["logger=wandb", "logger.mode=online", f"logger.init_timeout={sys.argv[2]}"])
t0 = time.monotonic()
logger = build_logger(cfg, Path(sys.argv[1]), "net/0", None)
elapsed = time.monotonic() - t0
logger.log_metrics({"train/loss": 1.0}, step=0)
mode = logger.experiment.settings.mode
finish(logger, failed=False)
print(json.dumps({"elapsed": elapsed, "mode": mode}))
"""


def _start(base_url: str, init_timeout: float, tmp_path) -> tuple[dict, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WANDB_BASE_URL": base_url, "WANDB_API_KEY": "x" * 40,
           "WANDB_SILENT": "false"}  # not silent: wandb then also looks the account up, which used to retry
    env.pop("WANDB_MODE", None)
    proc = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path / "job"), str(init_timeout)], capture_output=True,
                          text=True, env=env, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


def test_a_refused_server_goes_offline_without_waiting_out_the_timeout(tmp_path):
    out, err = _start("http://127.0.0.1:9", 60, tmp_path)  # nothing listens on port 9
    assert out["mode"] == "offline"
    assert out["elapsed"] < 30, f"{out['elapsed']:.0f} s: the online attempt waited for a server that refused"
    assert err.count("W&B online init failed") == 1 and "Connection refused" in err
    assert list((tmp_path / "job" / "wandb").glob("offline-run-*"))


@pytest.fixture
def silent_server():
    """A server that accepts connections and never answers (a hung proxy, a firewall that lets SYN through)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def serve():
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(sock.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    sock.close()


@pytest.mark.slow
def test_a_silent_server_costs_init_timeout_then_an_offline_start(tmp_path, silent_server):
    out, err = _start(silent_server, 3, tmp_path)
    assert out["mode"] == "offline"
    # 3 s online, then an offline start (a few seconds, more on a loaded machine); before: 50+ s
    assert out["elapsed"] < 3 + 30, f"{out['elapsed']:.0f} s for init_timeout=3"
    assert err.count("W&B online init failed") == 1


def test_an_unknown_wandb_mode_in_the_environment_is_one_line(tmp_path, monkeypatch):
    from symexp.run import run
    from tests.conftest import compose_cfg

    monkeypatch.setenv("WANDB_MODE", "offlne")
    cfg = compose_cfg(["model.width=16", "model.depth=1", "data.n_train=8", "data.n_val=8", "task.epochs=1",
                       "task.val_every=1", "logger=wandb", "progress=none", f"paths.output_root={tmp_path}"])
    with pytest.raises(SystemExit, match=r"^symexp: configuration error: WANDB_MODE: got 'offlne' \(environment\)"):
        run(cfg)
