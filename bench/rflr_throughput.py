"""RF-LR batch-size-1 training throughput: plain PyTorch loop vs symexp engines.

    .venv/bin/python bench/rflr_throughput.py                      # Table 1 network, ~1 min
    .venv/bin/python bench/rflr_throughput.py --width 1024 --rank 10 --depth 3 --dim 1

Every row trains with Adam(lr=1e-3) on one point per step per member and reports member-steps/s (one
optimizer step of one network = 1); the ratio column is relative to the plain loop measured in the same
run. Each row is timed in --repeats windows of at least --min-time seconds; the median is printed.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from symexp.engines import AutogradEngine, build_engine  # noqa: E402
from symexp.models.rflr import RFLR  # noqa: E402


class PlainRFLR(nn.Module):
    """One RF-LR network written the obvious way: frozen (A, b) buffers, trained mixers, batch (n, d)."""

    def __init__(self, d: int, width: int, rank: int, depth: int) -> None:
        super().__init__()
        self.dims = [d] + [rank] * depth + [1]
        self.mixers = nn.ParameterList()
        for l in range(depth + 1):
            r_in, r_out = self.dims[l], self.dims[l + 1]
            self.register_buffer(f"A{l}", (torch.rand(width, r_in) * 2 - 1) / r_in**0.5)
            self.register_buffer(f"b{l}", (torch.rand(width) * 2 - 1) / r_in**0.5)
            self.mixers.append(nn.Parameter((torch.rand(r_out, width) * 2 - 1) / width**0.5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = x
        for l, B in enumerate(self.mixers):
            u = torch.relu(z @ getattr(self, f"A{l}").T + getattr(self, f"b{l}"))
            z = u @ B.T
        return z[:, 0]


def target(x: torch.Tensor) -> torch.Tensor:
    return torch.sin(3 * x.sum(-1)) + 0.5 * torch.cos(2 * x[..., 0])


def timed(step_fn, work_per_call: int, min_time: float, repeats: int) -> float:
    """Median over `repeats` windows of work units per second; step_fn does work_per_call units."""
    step_fn()  # warm-up (and kernel build / load)
    rates = []
    for _ in range(repeats):
        n, t0 = 0, time.perf_counter()
        while True:
            step_fn()
            n += work_per_call
            dt = time.perf_counter() - t0
            if dt >= min_time:
                break
        rates.append(n / dt)
    return statistics.median(rates)


def plain_loop(args, threads: int) -> float:
    prev = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _plain_loop(args)
    finally:
        torch.set_num_threads(prev)


def _plain_loop(args) -> float:
    torch.manual_seed(0)
    model = PlainRFLR(args.dim, args.width, args.rank, args.depth)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    n, chunk = 256, 32
    x = torch.rand(n, args.dim) * 2 - 1
    y = target(x)
    pos = [0]

    def run():
        for _ in range(chunk):
            s = pos[0] = (pos[0] + 1) % n
            opt.zero_grad(set_to_none=True)
            loss = (model(x[s : s + 1]) - y[s : s + 1]).square().sum()
            loss.backward()
            opt.step()

    return timed(run, chunk, args.min_time, args.repeats)


def engine_rate(args, K: int, kind: str, steps: int) -> tuple[float, str]:
    model = RFLR(args.dim, width=args.width, rank=args.rank, depth=args.depth, seeds=range(K))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    engine = AutogradEngine(model, opt) if kind == "autograd" else build_engine(kind, model, opt)
    g = torch.Generator().manual_seed(1)
    x = torch.rand(K, steps, args.dim, generator=g) * 2 - 1
    y = target(x)
    rate = timed(lambda: engine.run(x, y), K * steps, args.min_time, args.repeats)
    return rate, type(engine).__name__


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--width", type=int, default=512)
    p.add_argument("--rank", type=int, default=8)
    p.add_argument("--depth", type=int, default=3)
    p.add_argument("--dim", type=int, default=2)
    p.add_argument("--steps", type=int, default=256, help="optimizer steps per engine call (chunk S)")
    p.add_argument("--members", default="1,16,64,256,1024", help="ensemble sizes K, comma separated")
    p.add_argument("--autograd-members", type=int, default=64, help="K of the autograd reference row (0: skip)")
    p.add_argument("--min-time", type=float, default=1.0, help="seconds per timing window")
    p.add_argument("--repeats", type=int, default=3, help="timing windows per row (median reported)")
    args = p.parse_args(argv)
    members = [int(k) for k in args.members.split(",") if k.strip()]

    rows: list[tuple[str, str, float]] = []
    t_start = time.perf_counter()
    # The plain loop is timed with torch's default thread count and single-threaded; the faster one is the
    # baseline (tiny eager ops gain nothing from threads and lose a lot on a busy machine).
    threads = torch.get_num_threads()
    plain = {t: plain_loop(args, t) for t in sorted({threads, 1}, reverse=True)}
    best_t = max(plain, key=plain.get)
    base = plain[best_t]
    others = ", ".join(f"{t} thr: {r:,.0f}" for t, r in plain.items() if t != best_t)
    rows.append(("plain loop", f"nn.Module + Adam, {best_t} thr" + (f" ({others})" if others else ""), base))
    rate, eng = engine_rate(args, 1, "auto", max(args.steps, 1024))
    rows.append(("symexp solo", f"auto -> {eng}", rate))
    for K in members:
        rate, eng = engine_rate(args, K, "auto", args.steps)
        rows.append((f"symexp ensemble K={K}", f"auto -> {eng}", rate))
    if args.autograd_members > 0:
        prev = torch.get_num_threads()
        torch.set_num_threads(best_t)  # same thread count as the plain-loop baseline
        try:
            rate, eng = engine_rate(args, args.autograd_members, "autograd", min(args.steps, 16))
        finally:
            torch.set_num_threads(prev)
        rows.append((f"autograd engine K={args.autograd_members}", f"{eng}, {best_t} thr", rate))
    elapsed = time.perf_counter() - t_start

    try:
        load = " / ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        load = "n/a"
    print(f"RF-LR batch-1 throughput: d={args.dim} W={args.width} r={args.rank} depth={args.depth} Adam, "
          f"chunk S={args.steps}")
    print(f"CPU: {cpu_model()}, {os.cpu_count()} logical CPUs, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), load avg {load}, bench wall {elapsed:.0f} s")
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    header = f"{'row':<{w0}}  {'engine':<{w1}}  {'member-steps/s':>14}  {'x plain':>8}"
    print(header)
    print("-" * len(header))
    for name, eng, rate in rows:
        print(f"{name:<{w0}}  {eng:<{w1}}  {rate:>14,.0f}  {rate / base:>8.1f}")


if __name__ == "__main__":
    main()
