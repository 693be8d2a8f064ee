"""Step time and peak memory of ResNet18 and ViT with and without syre (seed 002 Tables 2-3).

Synthetic CIFAR-shaped batches (3x32x32, 10 classes), SGD with weight decay; syre = static bias
(anchored form, the default). On CUDA peak memory is torch.cuda.max_memory_allocated; on CPU it is
reported as n/a. ``--tiny`` shrinks the models and batches so the script runs on a CPU in seconds.

    python bench/vision_step_time.py                 # GPU: batches 128, 256, 512
    python bench/vision_step_time.py --tiny          # CPU smoke
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from symexp.models.resnet18 import ResNet18
from symexp.models.vit import ViT
from symexp.syre import StaticBias


def build(name: str, tiny: bool) -> torch.nn.Module:
    if name == "resnet18":
        return ResNet18(3, 32, 10, width=8 if tiny else 64)
    small = dict(dim=32, depth=1, heads=2, head_dim=16, mlp_dim=32) if tiny else {}
    return ViT(3, 32, 10, **small)


def measure(name: str, batch: int, syre: bool, steps: int, warmup: int, tiny: bool, device: torch.device) -> tuple[float, float]:
    """Median ms per training step and peak MiB."""
    model = build(name, tiny).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    remover = StaticBias(sigma0=0.01) if syre else None
    if remover is not None:
        remover.configure(model, opt)
    x = torch.randn(batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    times = []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        if remover is not None:
            remover.before_step(model, opt)
        opt.step()
        if remover is not None:
            remover.after_step(model, opt)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    peak = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else float("nan")
    return 1000 * sorted(times)[len(times) // 2], peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="small models and batches (CPU)")
    parser.add_argument("--batches", type=int, nargs="*", default=None)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--models", nargs="*", default=["resnet18", "vit"])
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    batches = args.batches or ([8, 16] if args.tiny else [128, 256, 512])
    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    print(f"device: {name}; torch {torch.__version__}; tiny={args.tiny}")
    print("| model | batch | vanilla ms/step | syre ms/step | overhead | vanilla peak MiB | syre peak MiB |")
    print("|---|---|---|---|---|---|---|")
    for model in args.models:
        for batch in batches:
            v_ms, v_mem = measure(model, batch, False, args.steps, args.warmup, args.tiny, device)
            s_ms, s_mem = measure(model, batch, True, args.steps, args.warmup, args.tiny, device)
            print(f"| {model} | {batch} | {v_ms:.1f} | {s_ms:.1f} | {100 * (s_ms / v_ms - 1):+.1f}% | {v_mem:.0f} | {s_mem:.0f} |")


if __name__ == "__main__":
    main()
