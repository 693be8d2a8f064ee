"""Environment steps per second of the whole PPO loop: symexp's pipeline (Lightning, manual optimisation,
rank metrics, checkpoints) against a plain single-file PyTorch PPO loop on the same environment, network
sizes, update schedule and thread count. Target: symexp >= 0.9x the plain loop.

    python bench/ppo_throughput.py [--env shifting_pendulum|slippery_ant] [--iterations 6] [--repeats 3]

Runs alternate (plain, symexp, plain, ...) so a busy machine hurts both alike; the table reports the
median of each and the median of the per-pair ratios.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))


def plain_ppo(env: str, iterations: int, seed: int = 0) -> float:
    """A minimal PPO (same sizes and schedule as the ppo task); returns env steps per second."""
    from conftest import compose_cfg
    from hydra.utils import instantiate

    torch.set_num_threads(1)
    cfg = compose_cfg([f"experiment=ppo_{env}_vanilla", "logger=none"])
    dm = instantiate(cfg.data, seeds=[seed])
    t0 = time.perf_counter()  # like symexp's fit time: env creation and the loop
    envs, obs = dm.make_envs()
    n, od, ad = dm.num_envs, dm.obs_dim, dm.act_dim
    rollout, epochs, mbs = cfg.task.rollout_steps, cfg.task.epochs, cfg.task.minibatches
    gamma, lam, clip, scale = cfg.task.gamma, cfg.task.gae_lambda, cfg.task.clip, cfg.task.reward_scale

    def mlp(out):
        return nn.Sequential(nn.Linear(od, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, out))

    actor, critic, log_std = mlp(ad), mlp(1), nn.Parameter(torch.zeros(ad))
    params = [*actor.parameters(), *critic.parameters(), log_std]
    opt = torch.optim.Adam(params, lr=cfg.task.optimizer.lr, betas=tuple(cfg.task.optimizer.betas))
    T = rollout // n
    obs = torch.as_tensor(obs, dtype=torch.float32)
    for _ in range(iterations):
        ob, ac, lp, vl, rw, dn = [], [], [], [], [], []
        with torch.no_grad():
            for _ in range(T):
                mean, v = actor(obs), critic(obs).squeeze(-1)
                a = mean + log_std.exp() * torch.randn_like(mean)
                logp = torch.distributions.Normal(mean, log_std.exp()).log_prob(a).sum(-1)
                nxt, r, term, trunc, info = envs.step(a.numpy())
                r = torch.as_tensor(r, dtype=torch.float32) * scale
                cut = trunc & ~term
                if cut.any():
                    idx = np.flatnonzero(cut)
                    fin = torch.as_tensor(np.stack([info["final_obs"][i] for i in idx]), dtype=torch.float32)
                    r[idx] += gamma * critic(fin).squeeze(-1)
                ob.append(obs), ac.append(a), lp.append(logp), vl.append(v), rw.append(r)
                dn.append(torch.as_tensor(term | trunc, dtype=torch.float32))
                obs = torch.as_tensor(nxt, dtype=torch.float32)
            nv, adv, last = critic(obs).squeeze(-1), [], 0.0
            for t in reversed(range(T)):
                delta = rw[t] + gamma * nv * (1 - dn[t]) - vl[t]
                last = delta + gamma * lam * (1 - dn[t]) * last
                adv.insert(0, last)
                nv = vl[t]
        b_obs, b_act = torch.cat(ob), torch.cat(ac)
        b_lp, b_adv = torch.cat(lp), torch.cat(adv)
        b_ret = b_adv + torch.cat(vl)
        size = rollout // mbs
        for _ in range(epochs):
            perm = torch.randperm(rollout)
            for s in range(0, rollout, size):
                i = perm[s:s + size]
                a_ = (b_adv[i] - b_adv[i].mean()) / (b_adv[i].std() + 1e-8)
                mean = actor(b_obs[i])
                logp = torch.distributions.Normal(mean, log_std.exp()).log_prob(b_act[i]).sum(-1)
                ratio = (logp - b_lp[i]).exp()
                pg = -torch.minimum(ratio * a_, ratio.clamp(1 - clip, 1 + clip) * a_).mean()
                vf = (critic(b_obs[i]).squeeze(-1) - b_ret[i]).square().mean()
                opt.zero_grad()
                (pg + vf).backward()
                opt.step()
    return iterations * rollout / (time.perf_counter() - t0)


def symexp_ppo(env: str, iterations: int, seed: int = 0) -> float:
    """The real pipeline in-process (run()); env steps / fit seconds."""
    from conftest import compose_cfg

    from symexp.run import run

    with tempfile.TemporaryDirectory() as tmp:
        rollout = compose_cfg([f"experiment=ppo_{env}_vanilla"]).task.rollout_steps
        run(compose_cfg([f"experiment=ppo_{env}_vanilla", f"task.total_steps={iterations * rollout}", f"seed={seed}",
                         f"paths.output_root={tmp}", "logger=none", "progress=none"]))
        res = json.loads(next(Path(tmp).rglob("results.json")).read_text())
        if res["status"] != "ok":
            raise RuntimeError(res["error"])
        return res["timing"]["train_steps"] / res["timing"]["fit_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="shifting_pendulum", choices=["shifting_pendulum", "slippery_ant"])
    parser.add_argument("--iterations", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "ppo_throughput.md")
    args = parser.parse_args()
    plain, ours = [], []
    plain_ppo(args.env, 1), symexp_ppo(args.env, 1)  # warm-up (imports, first-call allocations)
    for r in range(args.repeats):
        plain.append(plain_ppo(args.env, args.iterations, seed=r))
        ours.append(symexp_ppo(args.env, args.iterations, seed=r))
        print(f"repeat {r}: plain {plain[-1]:.0f} steps/s, symexp {ours[-1]:.0f} steps/s", flush=True)
    ratios = [o / p for o, p in zip(ours, plain)]
    ratio = statistics.median(ratios)
    lines = [
        f"## {args.env}",
        "",
        f"`python bench/ppo_throughput.py --env {args.env} --iterations {args.iterations} --repeats {args.repeats}`"
        f" on {platform.processor() or platform.machine()}, torch {torch.__version__}, 1 torch thread each;"
        f" {args.iterations} iterations of 2048 env steps (10 epochs x 16 minibatches), runs alternating.",
        "",
        "| loop | env steps/s (median) | runs |",
        "|---|---:|---|",
        f"| plain single-file PyTorch PPO | {statistics.median(plain):.0f} | {', '.join(f'{x:.0f}' for x in plain)} |",
        f"| symexp (`run()`: Lightning, rank metrics, checkpoints) | {statistics.median(ours):.0f} | "
        f"{', '.join(f'{x:.0f}' for x in ours)} |",
        "",
        f"**symexp / plain = {ratio:.2f}x** (median of per-pair ratios {', '.join(f'{x:.2f}' for x in ratios)}; "
        f"target >= 0.9x: {'met' if ratio >= 0.9 else 'NOT met'}).",
        "",
    ]
    sections = {}
    if args.out.exists():  # one section per environment; rerunning one env keeps the others
        for chunk in args.out.read_text().split("\n## ")[1:]:
            sections[chunk.split("\n", 1)[0].strip()] = "## " + chunk.rstrip() + "\n"
    sections[args.env] = "\n".join(lines)
    header = ("# PPO throughput: symexp pipeline vs a plain PyTorch PPO loop\n\nEnv steps per second of the whole"
              " PPO loop (rollout + update) on the same environment and machine (2 shared CPU cores).\n")
    text = header + "\n" + "\n".join(sections[k] for k in sorted(sections))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    assert math.isfinite(ratio)


if __name__ == "__main__":
    main()
