"""PPO on a continual environment (seed 002 Fig. 6; Dohare et al.'s Slippery Ant protocol).

One Lightning training_step is one PPO iteration: collect ``rollout_steps`` environment steps (all
sub-environments together), compute GAE advantages, then ``epochs`` passes of ``minibatches``
minibatches of the clipped objective, each an optimizer step wrapped in the syre hooks (manual
optimisation). One Lightning epoch is ``iterations_per_epoch`` iterations: the checkpoint granularity;
a checkpoint holds the environments' exact state and every RNG, so a resumed run continues the same
trajectory.

Logged per iteration: episode returns, the effective rank and abs approximate rank of the last policy
hidden layer over the last ``rank_states`` states (% of its width), dead units, mean |weight|, the
changing parameter (friction) and an ``event/parameter_change`` at every change.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from symexp.checkpointing import pack, unpack
from symexp.seeding import generator
from symexp.tasks.base import SymexpTask

CURVE_KEYS = (
    "env_step", "return", "episodes", "effective_rank_pct", "abs_approx_rank_pct", "approx_rank_pct",
    "dead_units", "weight_magnitude", "parameter", "policy_loss", "value_loss", "approx_kl",
)


# ---------------------------------------------------------------- the algorithm's pure parts
def gae(
    rewards: torch.Tensor, values: torch.Tensor, dones: torch.Tensor, last_values: torch.Tensor,
    gamma: float, lam: float,
) -> torch.Tensor:
    """Generalised advantage estimates, (T, N) from (T, N) rewards/values/dones and (N,) bootstrap values.

    ``dones[t]`` marks that the episode ended after step t (the next value is then not bootstrapped). A
    time-limit end is terminal too unless ``bootstrap_truncated``, which adds gamma * V(final obs) to its
    reward beforehand.
    """
    T = rewards.shape[0]
    adv = torch.zeros_like(rewards)
    running = torch.zeros_like(last_values)
    next_values = last_values
    for t in reversed(range(T)):
        live = 1.0 - dones[t].to(rewards.dtype)
        delta = rewards[t] + gamma * next_values * live - values[t]
        running = delta + gamma * lam * live * running
        adv[t] = running
        next_values = values[t]
    return adv


def clipped_policy_loss(logp: torch.Tensor, old_logp: torch.Tensor, adv: torch.Tensor, clip: float) -> torch.Tensor:
    """PPO's clipped surrogate, as a loss to minimise: -mean(min(r A, clip(r, 1-c, 1+c) A))."""
    ratio = torch.exp(logp - old_logp)
    return -torch.minimum(ratio * adv, ratio.clamp(1 - clip, 1 + clip) * adv).mean()


def gaussian_log_prob(actions: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """Log density of a diagonal Gaussian, summed over action dimensions."""
    z = (actions - mean) * torch.exp(-log_std)
    return (-0.5 * z.square() - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)


# ---------------------------------------------------------------- the task
class PPOTask(SymexpTask):
    def __init__(
        self,
        model: torch.nn.Module,
        datamodule,
        optimizer: Callable[..., torch.optim.Optimizer],
        total_steps: int = 20_000_000,
        rollout_steps: int = 2048,
        epochs: int = 10,
        minibatches: int = 16,
        gamma: float = 0.99,
        gae_lambda: float = 0.95,
        clip: float = 0.2,
        value_coef: float = 1.0,
        entropy_coef: float = 0.0,
        max_grad_norm: float | None = None,
        normalize_advantages: str | bool = "batch",
        bootstrap_truncated: bool = False,
        reward_scale: float = 1.0,
        iterations_per_epoch: int = 10,
        num_threads: int | None = 1,
        rank_states: int = 1000,
        metrics_every: int = 1,
        final_window: float = 0.1,
        seeds: Sequence[int] = (0,),
        syre=None,
    ) -> None:
        super().__init__(model, datamodule, seeds, syre)
        if len(self.seeds) > 1:
            raise ValueError("ensemble.size: PPO trains one member per run; set ensemble.size=1")
        n = datamodule.num_envs
        for key, value in (("total_steps", total_steps), ("rollout_steps", rollout_steps), ("epochs", epochs),
                           ("minibatches", minibatches), ("iterations_per_epoch", iterations_per_epoch),
                           ("rank_states", rank_states)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"task.{key}: must be a positive integer, got {value!r}")
        if rollout_steps % n:
            raise ValueError(f"task.rollout_steps: {rollout_steps} is not a multiple of data.num_envs={n}")
        if rollout_steps % minibatches:
            raise ValueError(f"task.minibatches: {minibatches} does not divide task.rollout_steps={rollout_steps}")
        if model.obs_dim != datamodule.obs_dim or model.act_dim != datamodule.act_dim:
            raise ValueError(f"model.obs_dim: model is {model.obs_dim}->{model.act_dim}, "
                             f"data is {datamodule.obs_dim}->{datamodule.act_dim}")
        self.automatic_optimization = False
        self.optimizer_factory = optimizer
        self.total_steps, self.rollout_steps, self.epochs, self.minibatches = total_steps, rollout_steps, epochs, minibatches
        self.gamma, self.lam, self.clip = gamma, gae_lambda, clip
        self.value_coef, self.entropy_coef, self.max_grad_norm = value_coef, entropy_coef, max_grad_norm
        scope = {True: "batch", False: "none"}.get(normalize_advantages, normalize_advantages)
        if scope not in ("batch", "minibatch", "none"):
            raise ValueError(f"task.normalize_advantages: {normalize_advantages!r} is not batch, minibatch or none")
        self.normalize_advantages, self.bootstrap_truncated = scope, bool(bootstrap_truncated)
        self.reward_scale = float(reward_scale)
        self.num_threads = num_threads
        self.iterations = math.ceil(total_steps / rollout_steps)
        self.iterations_per_epoch = min(iterations_per_epoch, self.iterations)
        datamodule.iterations_per_epoch = self.iterations_per_epoch
        self.rank_states, self.metrics_every, self.final_window = rank_states, metrics_every, final_window
        self.register_buffer("data_step", torch.zeros((), dtype=torch.long))  # env steps so far (run.py reads it)
        self.action_gen = generator(self.seeds[0], "noise")
        self.order_gen = generator(self.seeds[0], "order")
        self.curves: dict[str, list[float]] = {k: [] for k in CURVE_KEYS}
        self.changes: list[tuple[int, float]] = []  # (env step, new value), initial value at step 0
        self.episode_returns: list[tuple[int, float]] = []  # (env step at episode end, return)
        self.envs = None
        self._pending_state: dict | None = None

    # ---------------------------------------------------------------- Lightning plumbing
    def configure_optimizers(self):
        return self.attach_syre(self.optimizer_factory(params=[p for p in self.model.parameters() if p.requires_grad]))

    def headline_metrics(self) -> tuple[str, ...]:
        return ("train/return_final", "train/return_mean", "rank/effective_rank_pct", "rank/effective_rank_pct_min",
                "model/weight_magnitude", "env/parameter_changes")

    def progress(self) -> tuple[str, int, int]:
        return "env step", int(self.data_step), self.iterations * self.rollout_steps

    def trainer_defaults(self) -> dict:
        return {
            "max_epochs": math.ceil(self.iterations / self.iterations_per_epoch),
            "num_sanity_val_steps": 0,
            "limit_val_batches": 0,
            "log_every_n_steps": 1,
        }

    def on_fit_start(self) -> None:
        if self.num_threads and self.device.type == "cpu":  # small matmuls: extra threads only contend
            torch.set_num_threads(int(self.num_threads))
        self._ensure_envs()

    def _ensure_envs(self) -> None:
        if self.envs is None:
            self.envs, obs = self.datamodule.make_envs()
            n = self.datamodule.num_envs
            self.obs = torch.as_tensor(obs, dtype=torch.float32)
            self.ep_return = np.zeros(n)
            self.recent = torch.zeros(self.rank_states, self.model.obs_dim)  # ring of the last states
            self.recent_count = 0
            if not self.changes:
                self.changes = [(0, float(self.envs.envs[0].value))]
        if self._pending_state is not None:
            self._apply_state(self._pending_state)
            self._pending_state = None

    # ---------------------------------------------------------------- one PPO iteration
    def training_step(self, batch, batch_idx):
        if int(self.data_step) >= self.iterations * self.rollout_steps:
            return None
        roll = self._collect()
        stats = self._update(roll)
        self.data_step += self.rollout_steps
        # before _record's rank metrics (an SVD of NaN features raises) and the next rollout
        self.check_divergence(torch.tensor([stats["policy_loss"] + stats["value_loss"]]))
        self._record(roll, stats)
        if int(self.data_step) >= self.iterations * self.rollout_steps:
            self.trainer.should_stop = True
        return None

    @torch.no_grad()
    def _collect(self) -> dict:
        n = self.datamodule.num_envs
        T = self.rollout_steps // n
        model, dev = self.model, self.device
        obs_b = torch.zeros(T, n, model.obs_dim)
        act_b = torch.zeros(T, n, model.act_dim)
        logp_b, val_b, rew_b = torch.zeros(T, n), torch.zeros(T, n), torch.zeros(T, n)
        done_b = torch.zeros(T, n, dtype=torch.bool)
        episodes, new_changes = [], []
        obs = self.obs
        phase = self.envs.envs[0].phase
        for t in range(T):
            mean, value = model(obs.to(dev))
            std = torch.exp(model.log_std)
            noise = torch.randn(mean.shape, generator=self.action_gen).to(dev)
            action = mean + std * noise
            logp = gaussian_log_prob(action, mean, model.log_std)
            next_obs, reward, term, trunc, info = self.envs.step(action.cpu().numpy())
            reward = torch.as_tensor(reward, dtype=torch.float32)
            obs_b[t], act_b[t], logp_b[t], val_b[t] = obs, action.cpu(), logp.cpu(), value.cpu()
            ended = np.logical_or(term, trunc)
            self.ep_return += reward.numpy()
            reward = reward * self.reward_scale  # what the critic learns; returns are logged unscaled
            if ended.any():
                step0 = int(self.data_step) + (t + 1) * n
                if self.bootstrap_truncated and (trunc & ~term).any():
                    idx = np.flatnonzero(trunc & ~term)
                    final = torch.as_tensor(np.stack([info["final_obs"][i] for i in idx]), dtype=torch.float32)
                    reward[idx] = reward[idx] + self.gamma * model(final.to(dev))[1].cpu()
                for i in np.flatnonzero(ended):
                    episodes.append((step0, float(self.ep_return[i])))
                    self.ep_return[i] = 0.0
                first = self.envs.envs[0]  # the recorded schedule is sub-environment 0's
                if first.phase != phase:
                    phase = first.phase
                    new_changes.append((step0, first.value))
            rew_b[t] = reward
            done_b[t] = torch.as_tensor(ended)
            obs = torch.as_tensor(next_obs, dtype=torch.float32)
        self.obs = obs
        last_values = model(obs.to(dev))[1].cpu()
        adv = gae(rew_b, val_b, done_b, last_values, self.gamma, self.lam)
        self._remember(obs_b.reshape(-1, model.obs_dim))
        return {
            "obs": obs_b.reshape(T * n, -1), "actions": act_b.reshape(T * n, -1), "logp": logp_b.reshape(-1),
            "adv": adv.reshape(-1), "returns": (adv + val_b).reshape(-1), "episodes": episodes, "changes": new_changes,
        }

    def _remember(self, states: torch.Tensor) -> None:
        """Keep the last ``rank_states`` states in a ring (order is irrelevant to the rank metrics)."""
        states = states[-self.rank_states:]
        k = states.shape[0]
        idx = (self.recent_count + torch.arange(k)) % self.rank_states
        self.recent[idx] = states
        self.recent_count += k

    def _update(self, roll: dict) -> dict:
        model, dev = self.model, self.device
        opt = self.optimizers()
        data = {k: roll[k].to(dev) for k in ("obs", "actions", "logp", "adv", "returns")}
        if self.normalize_advantages == "batch":  # once over the whole rollout, as Dohare et al.'s ppo.py
            data["adv"] = _standardise(data["adv"])
        size = self.rollout_steps // self.minibatches
        sums = torch.zeros(3)
        for _ in range(self.epochs):
            order = torch.randperm(self.rollout_steps, generator=self.order_gen).to(dev)
            for start in range(0, self.rollout_steps, size):
                idx = order[start:start + size]
                obs, adv = data["obs"][idx], data["adv"][idx]
                if self.normalize_advantages == "minibatch":
                    adv = _standardise(adv)
                mean, value = model(obs)
                logp = gaussian_log_prob(data["actions"][idx], mean, model.log_std)
                pg = clipped_policy_loss(logp, data["logp"][idx], adv, self.clip)
                vf = (value - data["returns"][idx]).square().mean()
                loss = pg + self.value_coef * vf
                if self.entropy_coef:
                    loss = loss - self.entropy_coef * (model.log_std.sum() + 0.5 * model.act_dim * math.log(2 * math.pi * math.e))
                opt.zero_grad(set_to_none=True)
                self.manual_backward(loss)
                if self.max_grad_norm:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), self.max_grad_norm)
                self.syre_before_step(opt)
                opt.step()
                self.syre_after_step(opt)
                with torch.no_grad():
                    sums += torch.stack([pg.detach(), vf.detach(), (data["logp"][idx] - logp).mean().detach()]).cpu()
        sums /= self.epochs * self.minibatches
        return {"policy_loss": float(sums[0]), "value_loss": float(sums[1]), "approx_kl": float(sums[2])}

    # ---------------------------------------------------------------- metrics
    @torch.no_grad()
    def plasticity_metrics(self) -> dict[str, float]:
        """Rank metrics of the last policy hidden layer on the last ``rank_states`` states, and |w|."""
        from symexp.symmetry.rank import abs_approximate_rank, approximate_rank, dead_units, effective_rank

        states = self.recent[: min(self.recent_count, self.rank_states)].to(self.device)
        width = self.model.width
        out = {"weight_magnitude": float(weight_magnitude(self.model))}
        if states.shape[0] == 0:
            return {**out, "effective_rank_pct": math.nan, "abs_approx_rank_pct": math.nan,
                    "approx_rank_pct": math.nan, "dead_units": math.nan}
        feats = self.model.policy_features(states).double()
        out["effective_rank_pct"] = 100.0 * float(effective_rank(feats)) / width
        out["abs_approx_rank_pct"] = 100.0 * float(abs_approximate_rank(feats)) / width
        out["approx_rank_pct"] = 100.0 * float(approximate_rank(feats)) / width
        out["dead_units"] = float(dead_units(feats))
        return out

    def _record(self, roll: dict, stats: dict) -> None:
        step = int(self.data_step)
        self.episode_returns.extend(roll["episodes"])
        rets = [r for _, r in roll["episodes"]]
        iteration = step // self.rollout_steps
        metrics = {k: math.nan for k in ("effective_rank_pct", "abs_approx_rank_pct", "approx_rank_pct", "dead_units",
                                         "weight_magnitude")}
        if self.metrics_every > 0 and (iteration % self.metrics_every == 0 or iteration == self.iterations):
            metrics = self.plasticity_metrics()
        row = {"env_step": step, "return": float(np.mean(rets)) if rets else math.nan, "episodes": len(rets),
               "parameter": float(self.envs.envs[0].value), **metrics, **stats}
        for k in CURVE_KEYS:
            self.curves[k].append(float(row[k]))
        logged = {"env/steps": float(step), "env/parameter": row["parameter"], **{f"train/{k}": v for k, v in stats.items()}}
        if rets:
            logged["train/episode_return"] = row["return"]
        for k, v in metrics.items():
            if not math.isnan(v):
                logged[f"rank/{k}" if k != "weight_magnitude" else "model/weight_magnitude"] = v
        for k, v in logged.items():
            self.log(k, v, on_step=True, on_epoch=False, prog_bar=k in ("train/episode_return", "rank/effective_rank_pct"),
                     batch_size=1)
        for at, value in roll["changes"]:
            self.changes.append((at, value))
            if self.logger is not None:  # one event per change, at its env step (a W&B point / CSV row)
                self.logger.log_metrics({"event/parameter_change": value, "event/env_step": float(at)},
                                        step=self.global_step)

    def on_train_epoch_end(self) -> None:
        root = getattr(self.trainer, "default_root_dir", None)
        if root:
            self.write_curves(Path(root))

    def write_curves(self, folder: Path) -> dict[str, Path]:
        """curves.csv (one row per iteration) and parameter_changes.csv in the job folder (the sweep figure
        reads these)."""
        folder.mkdir(parents=True, exist_ok=True)
        paths = {"curves": folder / "curves.csv", "changes": folder / "parameter_changes.csv"}
        rows = list(zip(*[self.curves[k] for k in CURVE_KEYS]))
        _write_csv(paths["curves"], CURVE_KEYS, rows)
        _write_csv(paths["changes"], ("env_step", "value"), self.changes)
        return paths

    # ---------------------------------------------------------------- exact resume
    def _state(self) -> dict:
        return {
            "envs": [w.get_state() for w in self.envs.envs], "obs": self.obs.clone(), "ep_return": self.ep_return.copy(),
            "recent": self.recent.clone(), "recent_count": self.recent_count,
            "action_gen": self.action_gen.get_state(), "order_gen": self.order_gen.get_state(),
            "curves": {k: list(v) for k, v in self.curves.items()}, "changes": list(self.changes),
            "episode_returns": list(self.episode_returns),
        }

    def _apply_state(self, st: dict) -> None:
        for w, s in zip(self.envs.envs, st["envs"]):
            w.set_state(s)
        self.obs, self.ep_return = st["obs"].clone(), st["ep_return"].copy()
        self.recent, self.recent_count = st["recent"].clone(), st["recent_count"]
        self.action_gen.set_state(st["action_gen"])
        self.order_gen.set_state(st["order_gen"])
        self.curves = {k: list(v) for k, v in st["curves"].items()}
        self.changes = [tuple(c) for c in st["changes"]]
        self.episode_returns = [tuple(e) for e in st["episode_returns"]]

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        if self.envs is not None:  # pickled bytes as a uint8 tensor: loads under weights_only
            checkpoint["ppo_state"] = pack(self._state())

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        if "ppo_state" in checkpoint:
            self._pending_state = unpack(checkpoint["ppo_state"])
            if self.envs is not None:
                self._ensure_envs()

    # ---------------------------------------------------------------- after training
    @torch.no_grad()
    def final_metrics(self) -> dict[str, torch.Tensor]:
        out = {}
        rets = [r for _, r in self.episode_returns]
        if rets:
            tail = max(1, int(math.ceil(len(rets) * self.final_window)))
            out["train/return_final"] = float(np.mean(rets[-tail:]))
            out["train/return_mean"] = float(np.mean(rets))
            out["train/episodes"] = float(len(rets))
        if self.envs is not None:
            for k, v in self.plasticity_metrics().items():
                out[f"rank/{k}" if k != "weight_magnitude" else "model/weight_magnitude"] = v
        eff = [v for v in self.curves["effective_rank_pct"] if not math.isnan(v)]
        if eff:
            out["rank/effective_rank_pct_min"] = min(eff)
        out["env/parameter_changes"] = float(len(self.changes) - 1)
        out["env/steps"] = float(int(self.data_step))
        return {k: torch.tensor([float(v)]) for k, v in out.items()}

    def figures(self, fig_dir: Path) -> dict[str, Path]:
        self.write_curves(fig_dir.parent)
        from symexp.report.ppo_figure import plot_single_run

        return {"ppo_curves": plot_single_run(self.curves, self.changes, fig_dir / "ppo_curves.png",
                                              title=f"PPO on {self.datamodule.name}, {self.syre_note()}")}

    def objective(self, metrics: dict) -> float | None:
        value = metrics.get("train/return_final")
        return -float(value) if isinstance(value, (int, float)) else None


def _standardise(adv: torch.Tensor) -> torch.Tensor:
    """Zero mean, unit (unbiased) standard deviation."""
    return (adv - adv.mean()) / (adv.std() + 1e-8)


@torch.no_grad()
def weight_magnitude(model: torch.nn.Module) -> torch.Tensor:
    """Mean absolute value over all weight matrices (biases and log_std excluded)."""
    ws = [p.abs().flatten() for n, p in model.named_parameters() if n.endswith("weight")]
    return torch.cat(ws).mean()


def _write_csv(path: Path, header: Sequence[str], rows) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(header)
    writer.writerows(rows)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(buf.getvalue())
    tmp.replace(path)
