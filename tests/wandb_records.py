"""Read what an offline W&B run wrote: its ``.wandb`` file is a LevelDB-style log of protobuf records
(W&B's own format; wandb ships the protobuf classes but no reader in this version)."""

from __future__ import annotations

import json
import struct
import time
from collections.abc import Iterator
from pathlib import Path

BLOCK = 32768
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def _chunks(path: Path) -> Iterator[bytes]:
    data = Path(path).read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B transaction log"
    pos, pending = 7, b""
    while pos + 7 <= len(data):
        left = BLOCK - pos % BLOCK
        if left < 7:  # block trailer padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if length == 0 and kind == 0:
            pos += left
            continue
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind == FULL:
            yield chunk
        elif kind == FIRST:
            pending = chunk
        elif kind == MIDDLE:
            pending += chunk
        elif kind == LAST:
            yield pending + chunk


def read_run(path: Path) -> dict:
    """id, name, job_type, tags, config keys, history rows (without W&B's own _keys), defined step metrics, the
    final summary and the exit code of one offline run file."""
    from wandb.proto import wandb_internal_pb2 as pb

    out: dict = {"summary": {}, "config": {}, "exit_code": None, "history": [], "step_metrics": {}}
    for raw in _chunks(path):
        rec = pb.Record()
        rec.ParseFromString(raw)
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            out.update(id=rec.run.run_id, name=rec.run.display_name, job_type=rec.run.job_type,
                       tags=list(rec.run.tags), group=rec.run.run_group, project=rec.run.project)
            out["config"].update({i.key: json.loads(i.value_json) for i in rec.run.config.update})
        elif kind == "config":
            out["config"].update({i.key: json.loads(i.value_json) for i in rec.config.update})
        elif kind == "summary":
            for item in rec.summary.update:
                out["summary"][item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
        elif kind == "history":
            out["history"].append({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in rec.history.item
                                   if not (i.key or i.nested_key[0]).startswith("_")})
        elif kind == "metric":
            out["step_metrics"][rec.metric.name or rec.metric.glob_name] = rec.metric.step_metric
        elif kind == "exit":
            out["exit_code"] = rec.exit.exit_code
    return out


def offline_runs(job_dir: Path, wait_s: float = 20.0) -> list[dict]:
    """Every offline run below job_dir/wandb, oldest first. W&B's service may still be writing a file after
    ``finish()`` returns on a busy machine: wait (up to wait_s) until every run has its exit record."""
    deadline = time.monotonic() + wait_s
    while True:
        files = sorted(p for p in (Path(job_dir) / "wandb").glob("offline-run-*/run-*.wandb"))
        runs = [read_run(p) for p in files]
        if all(r["exit_code"] is not None and "id" in r for r in runs) or time.monotonic() > deadline:
            return runs
        time.sleep(0.2)
