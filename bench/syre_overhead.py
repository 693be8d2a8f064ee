"""Step-time and memory overhead of syre (default anchored form) over vanilla training.

For every ensemble model in symexp.models (built by BUILDERS below; add new models there): time
forward + backward + optimizer step with Adam (coupled) and AdamW (decoupled) weight decay, with and
without syre's hooks, interleaved repeats, median. Memory: syre's extra state (theta0) in parameter
copies. Usage: python bench/syre_overhead.py [--steps 200] [--repeats 5] [--out bench/results/syre_overhead.md]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time

import torch

from symexp.models.mlp import MLP
from symexp.models.objectives import ReparamLinear, RidgeSweep, SymmetryBenchmark
from symexp.models.rflr import RFLR
from symexp.models.two_layer import TwoLayerNet
from symexp.syre import StaticBias

K = 4
BUILDERS = {
    "rflr (W512 r8 L3, batch 1)": (lambda: RFLR(2, 512, 8, 3, seeds=range(K)), lambda: torch.randn(K, 1, 2), "mse"),
    "mlp (W512 L3, batch 1)": (lambda: MLP(2, 512, 3, seeds=range(K)), lambda: torch.randn(K, 1, 2), "mse"),
    "two_layer (d20 W300, batch 128)": (lambda: TwoLayerNet(20, 300, 10, seeds=range(K)),
                                        lambda: torch.randn(K, 128, 20), "ce"),
    "reparam_linear (d200, batch 16)": (lambda: ReparamLinear(200, seeds=range(K)), lambda: torch.randn(K, 16, 200),
                                        "mse"),
    "ridge_sweep (D400, 12 problems, N100)": (lambda: RidgeSweep(400, [10, 50, 100, 200, 300, 400] * 2, seeds=range(K)),
                                              lambda: torch.randn(K, 100, 400), "ridge"),
    "symbench (d1000)": (lambda: SymmetryBenchmark(1000, seeds=range(K)), lambda: None, "objective"),
}


def _loss(model, x, kind):
    if kind == "objective":
        return model.loss().sum()
    out = model(x)
    if kind == "ce":
        return out.logsumexp(-1).sum()
    return out.square().sum()


def _time(model, x, kind, opt, syre, steps: int) -> float:
    t0 = time.perf_counter()
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        _loss(model, x, kind).backward()
        if syre is not None:
            syre.before_step(model, opt)
        opt.step()
        if syre is not None:
            syre.after_step(model, opt)
    return (time.perf_counter() - t0) / steps


def bench(steps: int, repeats: int) -> list[dict]:
    rows = []
    for name, (build, data, kind) in BUILDERS.items():
        for opt_cls in (torch.optim.Adam, torch.optim.AdamW):
            x = data()
            setups = {}
            for label in ("vanilla", "syre"):
                model = build()
                opt = opt_cls([p for p in model.parameters() if p.requires_grad], lr=1e-4, weight_decay=1e-2)
                syre = StaticBias(seeds=range(K)) if label == "syre" else None
                if syre is not None:
                    syre.configure(model, opt)
                _time(model, x, kind, opt, syre, max(5, steps // 10))  # warm-up (optimizer state, allocator)
                setups[label] = (model, opt, syre)
            times = {"vanilla": [], "syre": []}
            for _ in range(repeats):  # interleaved, so load drifts hit both
                for label, (model, opt, syre) in setups.items():
                    times[label].append(_time(model, x, kind, opt, syre, steps))
            v, s = statistics.median(times["vanilla"]), statistics.median(times["syre"])
            model, _, syre = setups["syre"]
            p_bytes = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
            extra = sum(t.numel() * t.element_size() for t in syre.theta0.values())
            rows.append({"model": name, "optimizer": opt_cls.__name__, "vanilla_ms": 1e3 * v, "syre_ms": 1e3 * s,
                         "overhead_pct": 100 * (s / v - 1), "extra_param_copies": extra / p_bytes})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    rows = bench(args.steps, args.repeats)
    lines = [
        "# syre overhead (anchored form, autograd path)",
        "",
        f"Command: `python bench/syre_overhead.py --steps {args.steps} --repeats {args.repeats}`  ",
        f"Machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
        f"torch {torch.__version__}, Python {sys.version.split()[0]}; ensembles of K={K} members.  ",
        "Time: median per-step (forward + backward + step) over interleaved repeats. Memory: syre's extra "
        "state (theta0) in copies of the trainable parameters (target <= 1).",
        "",
        "| model | optimizer | vanilla ms/step | syre ms/step | overhead % | extra param copies |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['model']} | {r['optimizer']} | {r['vanilla_ms']:.3f} | {r['syre_ms']:.3f} | "
                     f"{r['overhead_pct']:+.1f} | {r['extra_param_copies']:.2f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
