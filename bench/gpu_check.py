"""Every GPU claim of symexp measured in one go (bench/gpu_check.sh sets up the venv and calls this).

Sections, in order of importance, each time-boxed and isolated (a failing one is reported and the
rest still run):

1. ``tests``     the CUDA-graph capture tests (``pytest -m gpu``)
2. ``rflr``      RF-LR batch-1 throughput, Table 1 network: eager AutogradEngine vs GraphEngine at
                 K in {1, 64, 256, 1024, 4096, 16384}, member-steps/s and ratio; graph_compiled at K = 5, 4096
3. ``protocol``  the step time of every network of seed 000's two protocols at its job's K, and the
                 estimated wall time of each protocol (Table 1 with matched controls; the 1D study),
                 one job at a time and with 4 jobs side by side on the GPU
4. ``vision``    ResNet18 / ViT step time and peak memory with and without syre (seed 002 Tables 2-3)
5. ``preset``    one vision preset (syre_resnet, CIFAR-10 if present, else synthetic CIFAR-shaped) for a
                 few epochs with device=gpu
6. ``ddp``       a DDP smoke run (device=ddp) on all visible GPUs
7. ``presets``   every preset at budget=smoke with device=gpu (device placement of every family)

``--cpu`` runs sections 2-4 tiny on the CPU (the graph engine's step then runs eagerly) and prints the
commands of the others: it exercises the script, and none of its numbers is a GPU number.

    python bench/gpu_check.py --out bench/results/gpu_check.md      # on a CUDA machine
    python bench/gpu_check.py --cpu --out /tmp/gpu_check_cpu.md     # CPU exercise
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from rflr_throughput import target, timed  # noqa: E402
from vision_step_time import measure as vision_measure  # noqa: E402

from symexp.engines import AutogradEngine  # noqa: E402
from symexp.engines.graph import GraphEngine  # noqa: E402
from symexp.models.mlp import MLP  # noqa: E402
from symexp.models.rflr import RFLR  # noqa: E402

SECTIONS = ("tests", "rflr", "protocol", "vision", "preset", "ddp", "presets")
RFLR_K = (1, 64, 256, 1024, 4096, 16384)

# seed 000's protocols as symexp runs them (sweeps/rflr_table1.yaml, sweeps/rflr_reruns_1d.yaml at
# budget=paper): (label, model kind, shape, members K of the job, jobs of this shape, steps per job)
TABLE1_STEPS = 10_000 * 128  # 10k epochs x N = 128
RERUN_STEPS = 10_000 * 256  # 10k epochs x N = 256
PROTOCOLS = {
    "Table 1 (5 RF-LR rows + 3 matched MLPs, 5 seeds each)": [
        ("RF-LR d=2 W=512 r=8 L=3", "rflr", dict(in_dim=2, width=512, rank=8, depth=3), 5, 2, TABLE1_STEPS),
        ("RF-LR d=3 W=512 r=8 L=3", "rflr", dict(in_dim=3, width=512, rank=8, depth=3), 5, 1, TABLE1_STEPS),
        ("RF-LR d=2 W=512 r=128 L=3", "rflr", dict(in_dim=2, width=512, rank=128, depth=3), 5, 1, TABLE1_STEPS),
        ("RF-LR d=3 W=512 r=128 L=3", "rflr", dict(in_dim=3, width=512, rank=128, depth=3), 5, 1, TABLE1_STEPS),
        ("MLP d=2 W=512 L=3", "mlp", dict(in_dim=2, width=512, depth=3), 5, 2, TABLE1_STEPS),
        ("MLP d=3 W=512 L=3", "mlp", dict(in_dim=3, width=512, depth=3), 5, 1, TABLE1_STEPS),
    ],
    "1D study (2 targets x rank {5, 10} x depth {1, 2, 3}, 13 seeds each)": [
        (f"RF-LR d=1 W=1024 r={r} L={L}", "rflr", dict(in_dim=1, width=1024, rank=r, depth=L), 13, 2, RERUN_STEPS)
        for r in (5, 10) for L in (1, 2, 3)
    ],
}
# seed 002 Table 2 (A6000), ms/step and peak MiB at batch 128 / 256 / 512; None where the paper gives none
PAPER_VISION = {
    ("resnet18", False): ((19.9, 18.6, 18.4), (2096, 3936, 7020)),
    ("resnet18", True): ((20.9, 19.6, 19.2), (None, 4254, None)),
    ("vit", False): ((39, 48, 80), (1574, 2482, 4216)),
    ("vit", True): ((47, 57, 84), (None, None, None)),
}


class Report:
    """Markdown lines, printed as they come and written to --out at the end."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, line: str = "") -> None:
        print(line, flush=True)
        self.lines.append(line)

    def table(self, header: list[str], rows: list[list[str]]) -> None:
        self("| " + " | ".join(header) + " |")
        self("|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|")
        for r in rows:
            self("| " + " | ".join(r) + " |")
        self()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_model(kind: str, shape: dict, K: int, device: torch.device) -> torch.nn.Module:
    cls = RFLR if kind == "rflr" else MLP
    return cls(seeds=range(K), **shape).to(device)


def engine_rate(kind: str, shape: dict, K: int, engine: str, steps: int, min_time: float, repeats: int,
                device: torch.device) -> float:
    """member-steps/s of one engine on a fresh K-member model (Adam 1e-3, one point per member per step)."""
    rate = _engine_rate(kind, shape, K, engine, steps, min_time, repeats, device)
    if device.type == "cuda":
        torch.cuda.empty_cache()  # the model of this row is gone: hand its memory back before the next
    return rate


def _engine_rate(kind, shape, K, engine, steps, min_time, repeats, device) -> float:
    model = make_model(kind, shape, K, device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    eng = AutogradEngine(model, opt) if engine == "autograd" else GraphEngine(model, opt,
                                                                            compile=engine == "graph_compiled")
    g = torch.Generator().manual_seed(1)
    x = (torch.rand(K, steps, shape["in_dim"], generator=g) * 2 - 1).to(device)
    y = target(x)

    def call():
        eng.run(x, y)
        sync(device)

    call()  # graph engine: eager warm-up segment + captures; autograd: allocator and cuBLAS warm-up
    return timed(call, K * steps, min_time, repeats)


# ---------------------------------------------------------------------------------------------- sections
def section_tests(args, rep: Report, device: torch.device) -> None:
    cmd = [sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider", "tests/test_graph_engine.py"]
    rep(f"Command: `python {shlex.join(cmd[1:])}`")
    if args.cpu:
        rep("(--cpu: not run; these tests need a CUDA device)\n")
        return
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=240)
    tail = (proc.stdout + proc.stderr).strip().splitlines()[-15:]
    rep("```")
    for line in tail:
        rep(line)
    rep("```")
    rep()
    if proc.returncode != 0:
        raise RuntimeError(f"the gpu tests failed (exit {proc.returncode})")


def section_rflr(args, rep: Report, device: torch.device) -> None:
    shape = dict(in_dim=2, width=512, rank=8, depth=3) if not args.cpu else dict(in_dim=2, width=32, rank=4, depth=2)
    ks = RFLR_K if not args.cpu else (1, 4)
    steps = 256 if not args.cpu else 8
    min_time, repeats = (1.0, 3) if not args.cpu else (0.0, 1)
    rep(f"RF-LR {shape}, Adam 1e-3, batch 1; chunk S={steps} steps per engine call (graph: segments of "
        f"{min(steps, 64)}); median of {repeats} windows of >= {min_time} s")
    rows = []
    for K in ks:
        eager_steps = min(steps, 32)
        r_eager = engine_rate("rflr", shape, K, "autograd", eager_steps, min_time, repeats, device)
        r_graph = engine_rate("rflr", shape, K, "graph", steps, min_time, repeats, device)
        rows.append([str(K), f"{r_eager:,.0f}", f"{r_graph:,.0f}", f"{r_graph / r_eager:.1f}x",
                     f"{1e6 * K / r_graph:.1f}"])
        print(f"  K={K}: eager {r_eager:,.0f}, graph {r_graph:,.0f}", flush=True)
    rep.table(["K", "eager autograd member-steps/s", "graph engine member-steps/s", "ratio", "graph us/step"], rows)
    compiled = []
    for K in ((5, 4096) if not args.cpu else ()):  # the protocols' K and a large one; compiling takes ~30 s each
        if time.perf_counter() > args.t_end - 200:
            rep(f"graph_compiled K={K}: skipped (time budget)")
            continue
        r = engine_rate("rflr", shape, K, "graph_compiled", steps, min_time, repeats, device)
        compiled.append([str(K), f"{r:,.0f}", f"{1e6 * K / r:.1f}"])
    if compiled:
        rep("`task.engine=graph_compiled` (torch.compile of forward + loss inside the graphs):")
        rep()
        rep.table(["K", "graph_compiled member-steps/s", "us/step"], compiled)
    if not args.cpu:
        best = max(float(r[2].replace(",", "")) for r in rows)
        rep(f"Targets: >= 5M member-steps/s at large K (best here {best / 1e6:.2f}M) and >= 20x eager "
            f"(largest ratio here {max(float(r[3][:-1]) for r in rows):.1f}x).\n")


def section_protocol(args, rep: Report, device: torch.device) -> None:
    steps = 256 if not args.cpu else 4
    min_time, repeats = (0.5, 1) if not args.cpu else (0.0, 1)
    for name, jobs in PROTOCOLS.items():
        if args.cpu:  # exercise the code path on two shrunk networks; these are not the protocol's numbers
            jobs = [(f"{j[0]} (shrunk to W=32 r<=4)", j[1], {**j[2], "width": 32, **({"rank": min(j[2]["rank"], 4)}
                     if "rank" in j[2] else {})}, *j[3:]) for j in jobs[:2]]
        rows, total_graph, total_eager = [], 0.0, 0.0
        for label, kind, shape, K, n_jobs, job_steps in jobs:
            r_graph = engine_rate(kind, shape, K, "graph", steps, min_time, repeats, device)
            r_eager = engine_rate(kind, shape, K, "autograd", min(steps, 32), min_time, repeats, device)
            t_graph, t_eager = n_jobs * job_steps * K / r_graph, n_jobs * job_steps * K / r_eager
            total_graph, total_eager = total_graph + t_graph, total_eager + t_eager
            rows.append([label, str(K), str(n_jobs), f"{r_graph:,.0f}", f"{t_graph / 60:.1f}", f"{r_eager:,.0f}",
                         f"{t_eager / 60:.1f}"])
            print(f"  {label} K={K}: graph {r_graph:,.0f}, eager {r_eager:,.0f} member-steps/s", flush=True)
        rep(f"**{name}**, {jobs[0][5]:,} steps per job, one job after another:")
        rep()
        rep.table(["network", "K per job", "jobs", "graph member-steps/s", "graph min", "eager member-steps/s",
                   "eager min"], rows)
        rep(f"Estimated wall time: **{total_graph / 60:.1f} min** with the graph engine, {total_eager / 60:.1f} min "
            "with eager autograd, one job after another (training steps only; start-up, validation every 50 "
            "epochs and metrics add ~10-20 s per job).")
        rep()
        label, kind, shape, K = jobs[0][:4]
        if args.cpu:
            rep("(--cpu: jobs side by side not measured)\n")
            continue
        single = side_by_side_rate(kind, shape, K, 1, steps)
        rates = {4: side_by_side_rate(kind, shape, K, 4, steps)}
        cells = ", ".join(f"{P} jobs {r:,.0f} ({r / single:.2f}x)" for P, r in rates.items())
        best_p = max(rates, key=rates.get)
        rep(f"Jobs side by side on this GPU (separate processes, no MPS), {label} K={K}, aggregate member-steps/s: "
            f"1 job {single:,.0f}, {cells}; at {best_p} jobs at a time the protocol would take "
            f"~**{total_graph / 60 / max(rates[best_p] / single, 1e-9):.1f} min** (the speed-up of this network "
            "applied to all of the protocol's jobs).\n")


def _worker(spec: dict) -> dict:
    """One side-by-side job: warm up (and capture), wait for the common start, then count member-steps."""
    device = torch.device(spec["device"])
    model = make_model(spec["kind"], spec["shape"], spec["K"], device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    eng = GraphEngine(model, opt)
    x = (torch.rand(spec["K"], spec["steps"], spec["shape"]["in_dim"]) * 2 - 1).to(device)
    y = target(x)
    eng.run(x, y)
    eng.run(x, y)
    sync(device)
    late = time.time() > spec["start_at"]
    time.sleep(max(0.0, spec["start_at"] - time.time()))
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < spec["seconds"]:
        eng.run(x, y)
        sync(device)
        n += spec["K"] * spec["steps"]
    return {"rate": n / (time.perf_counter() - t0), "late": late}


def side_by_side_rate(kind: str, shape: dict, K: int, procs: int, steps: int, seconds: float = 4.0) -> float:
    """Aggregate member-steps/s of `procs` graph-engine jobs running at the same time on the GPU."""
    spec = dict(kind=kind, shape=shape, K=K, steps=steps, device="cuda", seconds=seconds,
                start_at=time.time() + 15.0)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)]
    workers = [subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for _ in range(procs)]
    total = 0.0
    for w in workers:
        out, err = w.communicate(timeout=120)
        if w.returncode != 0:
            raise RuntimeError(f"side-by-side worker failed: {err.strip().splitlines()[-1:] or out}")
        got = json.loads(out.strip().splitlines()[-1])
        if got["late"]:
            print("  (a worker was not ready at the common start: the aggregate is a lower bound)", flush=True)
        total += got["rate"]
    return total


def section_vision(args, rep: Report, device: torch.device) -> None:
    batches = (128, 256, 512) if not args.cpu else (4,)
    steps, warmup = (30, 5) if not args.cpu else (1, 0)
    rep(f"Synthetic CIFAR-shaped batches, SGD 0.01 momentum 0.9 wd 5e-4, syre = static bias sigma0 0.01 "
        f"(anchored); median of {steps} steps after {warmup} warm-up; peak = torch.cuda.max_memory_allocated"
        + (" (--cpu: tiny models, times are not GPU numbers)" if args.cpu else ""))
    rows = []
    for model in ("resnet18", "vit"):
        for i, batch in enumerate(batches):
            v_ms, v_mem = vision_measure(model, batch, False, steps, warmup, args.cpu, device)
            s_ms, s_mem = vision_measure(model, batch, True, steps, warmup, args.cpu, device)
            pv, ps = PAPER_VISION[(model, False)], PAPER_VISION[(model, True)]
            paper_t = f"{pv[0][i]} / {ps[0][i]}" if not args.cpu else "-"
            paper_m = (f"{pv[1][i]} / {ps[1][i] if ps[1][i] is not None else 'n/a'}") if not args.cpu else "-"
            mem = f"{v_mem:.0f} / {s_mem:.0f} ({100 * (s_mem / v_mem - 1):+.1f}%)" if v_mem == v_mem else "n/a"
            rows.append([model, str(batch), f"{v_ms:.1f} / {s_ms:.1f} ({100 * (s_ms / v_ms - 1):+.1f}%)", paper_t,
                         mem, paper_m])
            if device.type == "cuda":
                torch.cuda.empty_cache()
    rep.table(["model", "batch", "ms/step vanilla / syre", "paper ms (A6000)", "peak MiB vanilla / syre",
               "paper MiB"], rows)


def _launch(overrides: list[str], out: Path, timeout: float) -> tuple[int, float, dict | None, str]:
    """One `launch.py` run; (exit code, wall s, results.json or None, last output lines)."""
    cmd = [sys.executable, "launch.py", *overrides, f"paths.output_root={out}", "logger=none", "progress=none"]
    env = dict(os.environ, WANDB_MODE="offline")
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)
        rc, text = proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as exc:
        rc, text = 124, f"timed out after {timeout:.0f} s\n{exc.stdout or ''}{exc.stderr or ''}"
    wall = time.perf_counter() - t0
    found = sorted(out.rglob("results.json"))
    res = json.loads(found[-1].read_text()) if found else None
    tail = "\n".join(str(text).strip().splitlines()[-6:])
    return rc, wall, res, tail


def _metric_summary(res: dict | None, keys: tuple[str, ...]) -> str:
    if res is None:
        return "no results.json"
    m = res.get("metrics", {})
    got = [f"{k}={m[k]:.4g}" for k in keys if isinstance(m.get(k), (int, float))]
    return f"status {res.get('status')}" + (", " + ", ".join(got) if got else "")


def _launch_and_report(rep: Report, overrides: list[str], work: Path, timeout: int, keys: tuple, what: str) -> None:
    rc, wall, res, tail = _launch(overrides, work, timeout=timeout)
    rep(f"exit {rc}, wall {wall:.0f} s, {_metric_summary(res, keys)}\n")
    if rc != 0:
        rep(f"```\n{tail}\n```\n")
        raise RuntimeError(f"{what} failed (exit {rc})")


def section_preset(args, rep: Report, device: torch.device) -> None:
    cifar = (ROOT / "data" / "cifar-10-batches-py").exists()
    data = [] if cifar else ["data.source=synthetic", "data.n_train=10000", "data.n_test=2000"]
    overrides = ["experiment=syre_resnet", "syre=static_bias", "device=gpu", "task.epochs=3", *data]
    rep(f"Command: `python launch.py {' '.join(overrides)}` ({'CIFAR-10' if cifar else 'synthetic CIFAR-shaped data: no CIFAR-10 under data/'})")
    if args.cpu:
        rep("(--cpu: not run)\n")
        return
    _launch_and_report(rep, overrides, args.work / "preset", 240, ("test/acc", "test/loss", "train/loss"), "the vision preset")


def section_ddp(args, rep: Report, device: torch.device) -> None:
    n = torch.cuda.device_count() if not args.cpu else 0
    overrides = ["experiment=syre_resnet", "budget=smoke", "device=ddp", "task.epochs=2"]
    rep(f"Command: `python launch.py {' '.join(overrides)}` on {n} GPU(s)")
    if args.cpu:
        rep("(--cpu: not run)\n")
        return
    _launch_and_report(rep, overrides, args.work / "ddp", 180, ("test/acc",), "the DDP smoke")


def _family_order(names: list[str]) -> list[str]:
    """Round-robin over families (the name's first word: rflr, mlp, syre, gen, mirror, ppo), so a time
    budget that cuts the list short still covers every family."""
    families: dict[str, list[str]] = {}
    for n in names:
        families.setdefault(n.split("_")[0], []).append(n)
    out, queues = [], list(families.values())
    while any(queues):
        for q in queues:
            if q:
                out.append(q.pop(0))
    return out


def section_presets(args, rep: Report, device: torch.device) -> None:
    presets = _family_order(sorted(p.stem for p in (ROOT / "conf" / "experiment").glob("*.yaml")
                                   if not p.stem.startswith("_")))
    rep(f"`python launch.py experiment=<preset> budget=smoke device=gpu` for all {len(presets)} presets, "
        f"{args.parallel} at a time")
    if args.cpu:
        rep("(--cpu: not run)\n")
        return
    deadline = args.t_end - 20

    def one(name: str):
        left = deadline - time.perf_counter()
        if left < 30:
            return name, None
        return name, _launch([f"experiment={name}", "budget=smoke", "device=gpu"], args.work / "presets" / name,
                             timeout=min(150, left))

    with ThreadPoolExecutor(args.parallel) as pool:
        results = list(pool.map(one, presets))
    rows, failed, skipped = [], [], []
    for name, got in results:
        if got is None:
            skipped.append(name)
            continue
        rc, wall, res, tail = got
        status = res.get("status") if res else "no results.json"
        rows.append([name, str(rc), f"{wall:.0f}", str(status)])
        if rc != 0:
            failed.append((name, tail))
    rep.table(["preset", "exit", "wall s", "status"], rows)
    if skipped:
        rep(f"Not run (time budget): {', '.join(skipped)}\n")
    for name, tail in failed:
        rep(f"{name}:\n```\n{tail}\n```\n")
    if failed:
        raise RuntimeError(f"{len(failed)} preset(s) failed on the GPU: {', '.join(n for n, _ in failed)}")


RUNNERS = {"tests": section_tests, "rflr": section_rflr, "protocol": section_protocol, "vision": section_vision,
           "preset": section_preset, "ddp": section_ddp, "presets": section_presets}
# rough seconds each section needs on an H100/H200 class GPU; a section is skipped when less is left
NEEDS = {"tests": 90, "rflr": 150, "protocol": 150, "vision": 60, "preset": 120, "ddp": 60, "presets": 60}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cpu", action="store_true", help="tiny CPU pass of sections 2-4; print the rest")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "gpu_check.md")
    p.add_argument("--work", type=Path, default=None, help="folder for the launch.py runs (default: next to --out)")
    p.add_argument("--only", nargs="*", choices=SECTIONS, default=None)
    p.add_argument("--budget-s", type=float, default=540.0, help="wall-clock budget of this script")
    p.add_argument("--parallel", type=int, default=4, help="preset runs at a time in section 'presets'")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)  # internal: one side-by-side job (JSON)
    args = p.parse_args(argv)
    if args.worker is not None:
        print(json.dumps(_worker(json.loads(args.worker))))
        return 0
    t_start = time.perf_counter()
    args.t_end = t_start + args.budget_s
    args.work = args.work or args.out.parent / "gpu_check_runs"
    if not args.cpu and not torch.cuda.is_available():
        print("gpu_check: no CUDA device visible to torch "
              f"{torch.__version__} (a CPU build?); use --cpu for the CPU exercise", file=sys.stderr)
        return 2
    device = torch.device("cpu" if args.cpu else "cuda")
    if args.cpu:
        torch.set_num_threads(1)  # tiny eager ops: threads only add contention
    rep = Report()
    name = "CPU dry run (no GPU numbers)" if args.cpu else torch.cuda.get_device_name()
    rep(f"# symexp GPU check: {name}")
    rep()
    cuda = torch.version.cuda or "none"
    rep(f"torch {torch.__version__} (CUDA {cuda}), {torch.cuda.device_count()} GPU(s), {os.cpu_count()} CPUs, "
        f"started {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}")
    rep()
    failures = []
    for sec in args.only or SECTIONS:
        left = args.t_end - time.perf_counter()
        rep(f"## {sec}")
        rep()
        if not args.cpu and left < NEEDS[sec]:
            rep(f"skipped: {left:.0f} s left of the budget, the section needs ~{NEEDS[sec]} s\n")
            continue
        t0 = time.perf_counter()
        try:
            RUNNERS[sec](args, rep, device)
        except Exception as exc:  # report and go on: the other sections still measure
            failures.append(sec)
            rep(f"**FAILED**: {type(exc).__name__}: {exc}\n")
            traceback.print_exc()
        rep(f"({sec}: {time.perf_counter() - t0:.0f} s)")
        rep()
    rep(f"Total wall {time.perf_counter() - t_start:.0f} s; failed sections: {', '.join(failures) or 'none'}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(rep.lines) + "\n")
    print(f"gpu_check: tables written to {args.out}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
