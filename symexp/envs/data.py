"""The data-group object of reinforcement learning: a seeded, vectorised continual environment.

It is a LightningDataModule only so that ``trainer.fit(task, datamodule=...)`` works unchanged: its
dataloader yields ``iterations_per_epoch`` placeholders (one per PPO iteration, i.e. one rollout plus
its update); the task owns the rollouts. Episodes of every sub-environment run on gymnasium's
SyncVectorEnv with same-step autoreset (the final observation of an episode comes in ``info``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import lightning as L
import numpy as np
import torch

from symexp.data.sampling import quiet_generator
from symexp.envs import require_gymnasium


class ContinualEnvData(L.LightningDataModule):
    """A continual environment: ``env_id`` whose ``parameter`` changes every ``change_every`` env steps.

    ``change_every`` counts the steps of all ``num_envs`` sub-environments together: each sub-environment
    changes after ``change_every / num_envs`` of its own steps, at its first episode end after that, and
    all draw from the same value sequence (so with one env this is exactly the reference schedule).
    """

    def __init__(
        self,
        env_id: str,
        parameter: str,
        low: float,
        high: float,
        change_every: int,
        obs_dim: int,
        act_dim: int,
        num_envs: int = 1,
        max_changes: int = 1000,
        env_kwargs: dict | None = None,
        name: str | None = None,
        seeds: Sequence[int] = (0,),
    ) -> None:
        super().__init__()
        if len(seeds) > 1:
            raise ValueError("ensemble.size: reinforcement-learning environments run one member; set ensemble.size=1")
        if num_envs < 1:
            raise ValueError(f"data.num_envs: must be >= 1, got {num_envs}")
        if change_every < num_envs:
            raise ValueError(f"data.change_every: must be >= data.num_envs ({num_envs}), got {change_every}")
        if not 0 < low <= high:
            raise ValueError(f"data.low: need 0 < low <= high, got low={low}, high={high}")
        self.env_id, self.parameter, self.low, self.high = env_id, parameter, float(low), float(high)
        self.change_every, self.num_envs, self.max_changes = int(change_every), int(num_envs), int(max_changes)
        self.obs_dim, self.act_dim = int(obs_dim), int(act_dim)
        self.env_kwargs = dict(env_kwargs or {})
        self.name = name or env_id
        self.seed = int(seeds[0])
        self.iterations_per_epoch = 1
        self._gym = require_gymnasium()
        from symexp.envs.continual import draw_values

        self.values = draw_values(self.seed, self.low, self.high, self.max_changes + 1)

    # ---------------------------------------------------------------- environments
    def _make_one(self):
        from symexp.envs.continual import ContinualWrapper

        env = self._gym.make(self.env_id, **self.env_kwargs)
        per_env = math.ceil(self.change_every / self.num_envs)
        return ContinualWrapper(env, self.parameter, self.values, per_env)

    def make_envs(self):
        """A fresh SyncVectorEnv reset with the run's seed, and its first observations (num_envs, obs_dim);
        checks the declared obs/act dimensions."""
        gym = self._gym
        try:
            envs = gym.vector.SyncVectorEnv(
                [self._make_one for _ in range(self.num_envs)], autoreset_mode=gym.vector.AutoresetMode.SAME_STEP
            )
        except gym.error.Error as exc:
            raise ValueError(f"data.env_id: cannot make {self.env_id!r}: {exc}") from exc
        obs_shape, act_shape = envs.single_observation_space.shape, envs.single_action_space.shape
        if obs_shape != (self.obs_dim,):
            raise ValueError(f"data.obs_dim: {self.env_id} observations have shape {obs_shape}, config says {self.obs_dim}")
        if act_shape != (self.act_dim,):
            raise ValueError(f"data.act_dim: {self.env_id} actions have shape {act_shape}, config says {self.act_dim}")
        ss = np.random.SeedSequence(self.seed)
        seeds = [int(s.generate_state(1)[0]) for s in ss.spawn(self.num_envs)]
        obs, _ = envs.reset(seed=seeds)
        return envs, obs

    @staticmethod
    def wrappers(envs) -> list:
        return list(envs.envs)

    # ---------------------------------------------------------------- Lightning plumbing
    def train_dataloader(self):
        return torch.utils.data.DataLoader(range(self.iterations_per_epoch), batch_size=None, generator=quiet_generator())
