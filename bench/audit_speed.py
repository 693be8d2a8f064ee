"""Speed of ``symexp audit`` (issue 16's targets: weight-only audit of a ResNet18-sized model under 10 s,
activation metrics on 1k samples under 30 s, on the 2-core CPU).

Model: symexp's ResNet18 (CIFAR stem, width 64, 11.2 M parameters, random init). Weight-only: every
weight measurement of all 21 layers (spectra, ranks, duplicate groups, rescaling, mirror counts), no
figures. Activations: the same plus dead units and representation ranks of every layer on n inputs of
3 x 32 x 32 (seed 002's 1000), batches of 250, conv maps subsampled to 4096 rows per layer. Each row is
the median of ``--repeats`` runs in one process (imports and model construction excluded); the header
prints the load average because the machine is shared.

Usage: python bench/audit_speed.py [--repeats 3] [--samples 1000] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch

from symexp.audit import AuditOptions, audit_model
from symexp.models.resnet18 import ResNet18


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = ResNet18().eval()
    x = torch.randn(args.samples, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    load = " / ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"symexp audit speed: ResNet18 ({sum(p.numel() for p in model.parameters()) / 1e6:.1f} M params), "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), load avg {load}")
    wall, cpu = [], []
    for _ in range(args.repeats):  # the floor: the forward passes alone, same batches, no hooks
        t, c = time.perf_counter(), time.process_time()
        with torch.no_grad():
            for i in range(0, args.samples, 250):
                model(x[i : i + 250])
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    print(f"{'forward passes only (no audit)':<40} wall {statistics.median(wall):6.2f} s   cpu {statistics.median(cpu):6.2f} s")
    rows = {"weight-only": None, f"weights + activations on {args.samples} inputs": x}
    for label, inputs in rows.items():
        wall, cpu = [], []
        for _ in range(args.repeats):
            t, c = time.perf_counter(), time.process_time()
            audit_model(model, inputs, AuditOptions(n_samples=args.samples))
            wall.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
        print(f"{label:<40} wall {statistics.median(wall):6.2f} s   cpu {statistics.median(cpu):6.2f} s"
              f"   (runs: {', '.join(f'{w:.2f}' for w in wall)})")


if __name__ == "__main__":
    main()
