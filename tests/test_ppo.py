"""PPO on continual environments: schedule, GAE, clipped loss, rank metrics, resume, the rl-extra message."""

from __future__ import annotations

import builtins
import json
import math

import numpy as np
import pytest
import torch

pytest.importorskip("gymnasium")

from conftest import compose_cfg  # noqa: E402

from symexp.envs.continual import ContinualWrapper, draw_values  # noqa: E402
from symexp.tasks.ppo import clipped_policy_loss, gae, gaussian_log_prob  # noqa: E402

SMOKE = ["experiment=ppo_shifting_pendulum_vanilla", "budget=smoke"]


def _ends_and_changes(wrapper: ContinualWrapper, steps: int, seed: int = 0) -> list[int]:
    """Step with random actions; the steps (1-based) at which episodes ended."""
    rng = np.random.default_rng(seed)
    wrapper.reset(seed=seed)
    ends = []
    for t in range(1, steps + 1):
        _, _, term, trunc, _ = wrapper.step(rng.uniform(-1, 1, wrapper.action_space.shape).astype(np.float32))
        if term or trunc:
            ends.append(t)
            wrapper.reset()
    return ends


def _expected_changes(ends: list[int], change_every: int) -> list[int]:
    out, last = [], 0
    for e in ends:
        if e - last >= change_every:
            out.append(e)
            last = e
    return out


def test_pendulum_mass_changes_at_first_episode_end_after_threshold():
    import gymnasium as gym

    values = draw_values(3, 0.2, 2.0, 10)
    w = ContinualWrapper(gym.make("Pendulum-v1"), "pendulum_mass", values, change_every=250)
    ends = _ends_and_changes(w, 1000)
    assert ends == [200, 400, 600, 800, 1000]
    assert [s for s, _ in w.changes] == [0, 400, 800]  # 400 is the first end >= 250, then 800 >= 400 + 250
    assert [v for _, v in w.changes] == pytest.approx(values[:3].tolist())
    assert w.unwrapped.m == pytest.approx(values[2])


def test_schedule_values_reproducible_from_seed_and_log_uniform():
    a, b, c = draw_values(7, 0.02, 2.0, 2000), draw_values(7, 0.02, 2.0, 2000), draw_values(8, 0.02, 2.0, 2000)
    assert np.array_equal(a, b) and not np.allclose(a, c)
    assert a.min() >= 0.02 and a.max() <= 2.0
    logs = np.log(a)  # log-uniform: uniform in log space, mean at the log-midpoint
    assert abs(logs.mean() - 0.5 * (math.log(0.02) + math.log(2.0))) < 0.15


def test_slippery_ant_friction_changes_at_episode_ends():
    pytest.importorskip("mujoco")
    import gymnasium as gym

    from symexp.envs.continual import get_friction

    values = draw_values(0, 0.02, 2.0, 20)
    w = ContinualWrapper(gym.make("Ant-v5", max_episode_steps=40), "friction", values, change_every=60)
    assert get_friction(w) == pytest.approx(values[0])
    ends = _ends_and_changes(w, 300)
    assert [s for s, _ in w.changes][1:] == _expected_changes(ends, 60)
    assert len(w.changes) >= 3
    assert get_friction(w) == pytest.approx(w.changes[-1][1])
    assert np.all(w.unwrapped.model.geom_friction[:, 0] == w.changes[-1][1])  # every geom, not only the floor


def _ant_final_x(friction: float, steps: int = 150) -> float:
    """x of the ant's torso after the same seed and the same actions at a given friction."""
    import gymnasium as gym

    w = ContinualWrapper(gym.make("Ant-v5", max_episode_steps=1000), "friction", np.array([friction]), change_every=10**9)
    w.reset(seed=0)
    rng = np.random.default_rng(0)
    for _ in range(steps):
        w.step(rng.uniform(-1, 1, 8))
    return float(w.unwrapped.data.qpos[0])


def test_slippery_ant_frictions_below_one_change_the_trajectory():
    """Friction must matter below 1.0: a floor-only setting is a no-op there (MuJoCo takes the larger of the
    two geoms' frictions and the ant's geoms keep 1.0), which left the old Slippery Ant identical at every
    friction <= 1."""
    pytest.importorskip("mujoco")
    xs = {f: _ant_final_x(f) for f in (0.02, 0.2, 1.0)}
    assert len(set(xs.values())) == 3, xs
    assert _ant_final_x(0.2) == xs[0.2]  # and each is reproducible


def test_removed_floor_friction_parameter_says_why():
    import gymnasium as gym

    with pytest.raises(ValueError, match="data.parameter: 'floor_friction' was removed"):
        ContinualWrapper(gym.make("Pendulum-v1"), "floor_friction", np.array([0.5]), change_every=10)


def test_vector_env_is_reproducible_from_seed():
    from symexp.envs.data import ContinualEnvData

    def rollout(seed):
        dm = ContinualEnvData("Pendulum-v1", "pendulum_mass", 0.2, 2.0, 400, 3, 1, num_envs=2, seeds=[seed])
        envs, obs = dm.make_envs()
        out = [obs]
        for _ in range(450):
            out.append(envs.step(np.full((2, 1), 0.5, np.float32))[0])
        return np.stack(out), [w.changes for w in envs.envs]

    a, ca = rollout(1)
    b, cb = rollout(1)
    c, _ = rollout(2)
    assert np.array_equal(a, b) and ca == cb and not np.allclose(a, c)
    assert [s for s, _ in ca[0]] == [0, 200, 400]  # per-env threshold 400 / 2 envs = 200 own steps


def test_gae_hand_computed():
    rewards = torch.tensor([[1.0], [2.0], [3.0]])
    values = torch.tensor([[0.5], [1.0], [1.5]])
    dones = torch.tensor([[False], [True], [False]])
    adv = gae(rewards, values, dones, torch.tensor([2.0]), gamma=0.9, lam=0.8)
    # t=2: 3 + 0.9*2 - 1.5 = 3.3; t=1 ends its episode: 2 - 1 = 1; t=0: (1 + 0.9*1 - 0.5) + 0.9*0.8*1 = 2.12
    assert adv[:, 0].tolist() == pytest.approx([2.12, 1.0, 3.3])


def test_clipped_loss_known_numbers():
    old = torch.zeros(3)
    logp = torch.log(torch.tensor([1.5, 0.5, 1.1]))
    adv = torch.tensor([1.0, -1.0, 2.0])
    # min(1.5, 1.2) = 1.2 ; min(-0.5, -0.8) = -0.8 ; ratio 1.1 inside the clip: 2.2
    assert float(clipped_policy_loss(logp, old, adv, 0.2)) == pytest.approx(-(1.2 - 0.8 + 2.2) / 3)


def test_gaussian_log_prob_matches_torch():
    mean, log_std, a = torch.randn(5, 3), torch.randn(3), torch.randn(5, 3)
    ref = torch.distributions.Normal(mean, log_std.exp()).log_prob(a).sum(-1)
    assert torch.allclose(gaussian_log_prob(a, mean, log_std), ref, atol=1e-5)


def _task(overrides=()):
    from symexp.run import build

    return build(compose_cfg(SMOKE + list(overrides) + ["logger=none"]))["task"]


def test_rank_metrics_on_policy_features():
    from symexp.symmetry.rank import abs_approximate_rank, effective_rank

    task = _task()
    task._ensure_envs()
    states = torch.randn(task.rank_states, task.model.obs_dim)
    task.recent, task.recent_count = states.clone(), task.rank_states
    width = task.model.width
    with torch.no_grad():  # kill half of the last hidden layer: those units are dead, rank at most half
        task.model.actor[-3].bias[: width // 2] = -1e6
    m = task.plasticity_metrics()
    feats = task.model.policy_features(states).detach().double()
    assert m["dead_units"] == int((feats == 0).all(0).sum()) >= width // 2
    assert m["effective_rank_pct"] == pytest.approx(100 * float(effective_rank(feats)) / width)
    assert m["abs_approx_rank_pct"] == pytest.approx(100 * float(abs_approximate_rank(feats)) / width)
    assert 0 < m["abs_approx_rank_pct"] <= 50


def test_model_is_lecun_uniform_with_zero_bias_and_zero_log_std():
    from symexp.models.actor_critic import ActorCritic

    m = ActorCritic(105, 8, seeds=[0])
    w = m.actor[0].weight
    assert w.abs().max() <= math.sqrt(3 / 105) and w.var().item() == pytest.approx(1 / 105, rel=0.05)
    assert all(float(p.detach().abs().max()) == 0 for n, p in m.named_parameters() if n.endswith("bias"))
    assert torch.equal(m.log_std, torch.zeros(8))
    assert torch.equal(ActorCritic(105, 8, seeds=[0]).critic[2].weight, m.critic[2].weight)
    with pytest.raises(ValueError, match=r"^ensemble.size"):
        ActorCritic(3, 1, seeds=[0, 1])


def test_wrong_obs_dim_names_the_key():
    from symexp.envs.data import ContinualEnvData

    dm = ContinualEnvData("Pendulum-v1", "pendulum_mass", 0.2, 2.0, 100, obs_dim=4, act_dim=1)
    with pytest.raises(ValueError, match=r"^data.obs_dim"):
        dm.make_envs()


def test_missing_rl_extra_gives_install_message(monkeypatch):
    import symexp.envs as envs

    real = builtins.__import__

    def fake(name, *args, **kwargs):
        if name.split(".")[0] in ("gymnasium", "mujoco"):
            raise ImportError(f"No module named {name!r}")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake)
    with pytest.raises(ImportError, match=r"pip install -e '\.\[rl\]'"):
        envs.require_gymnasium()
    with pytest.raises(ImportError, match=r"pip install -e '\.\[rl\]'"):
        envs.require_mujoco()
    from symexp.envs.data import ContinualEnvData

    with pytest.raises(ImportError, match=r"\[rl\]"):
        ContinualEnvData("Pendulum-v1", "pendulum_mass", 0.2, 2.0, 100, 3, 1)


def test_resume_mid_run_continues_the_same_trajectory(tmp_path):
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint

    over = ["data.change_every=300", "data.num_envs=2", "task.total_steps=1024", "experiment=ppo_shifting_pendulum_syre"]

    def fit(max_epochs, ckpt_dir, ckpt_path=None):
        task = _task(over)
        trainer = L.Trainer(max_epochs=max_epochs, logger=False, enable_progress_bar=False,
                            enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0,
                            default_root_dir=str(ckpt_dir),
                            callbacks=[ModelCheckpoint(dirpath=ckpt_dir, save_last=True, save_top_k=0)])
        trainer.fit(task, datamodule=task.datamodule, ckpt_path=ckpt_path)
        return task

    full = fit(4, tmp_path / "full")
    fit(2, tmp_path / "part")
    resumed = fit(4, tmp_path / "part", ckpt_path=str(tmp_path / "part" / "last.ckpt"))
    assert len(full.changes) >= 2  # the resumed stretch crosses a mass change
    assert resumed.curves == full.curves or all(
        np.allclose(np.array(full.curves[k]), np.array(resumed.curves[k]), equal_nan=True) for k in full.curves
    )
    assert resumed.changes == full.changes
    for (n, a), (_, b) in zip(full.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), n


def test_smoke_run_writes_results_and_figures(tmp_outputs, tmp_path):
    from symexp.figstyle import DPI
    from symexp.report.ppo_figure import plot_sweep
    from symexp.run import run

    run(compose_cfg(SMOKE + ["data.change_every=400", "data.num_envs=2"] + tmp_outputs))
    (res_path,) = list(tmp_path.rglob("results.json"))
    res = json.loads(res_path.read_text())
    assert res["status"] == "ok", res["error"]
    job = res_path.parent
    assert (job / res["figures"]["ppo_curves"]).is_file()
    assert 0 < res["metrics"]["rank/effective_rank_pct"] <= 100
    assert res["metrics"]["env/parameter_changes"] >= 1
    assert res["timing"]["train_steps"] == 1024
    lines = (job / "curves.csv").read_text().strip().splitlines()
    assert len(lines) == 1 + 4  # header + one row per iteration
    assert plot_sweep(tmp_path).is_file()
    from PIL import Image

    big = Image.open(plot_sweep(tmp_path, tmp_path / "big.png")).size
    small = Image.open(plot_sweep(tmp_path, tmp_path / "small.png", dpi=60)).size
    assert small[0] == pytest.approx(big[0] * 60 / DPI, abs=2)  # --dpi scales the docs copy


def test_slippery_ant_state_roundtrip_is_exact():
    """A checkpointed Ant (simulator, episode clock, RNG, schedule) continues exactly as the original."""
    pytest.importorskip("mujoco")
    import gymnasium as gym

    values = draw_values(1, 0.02, 2.0, 20)
    a = ContinualWrapper(gym.make("Ant-v5", max_episode_steps=30), "friction", values, change_every=40)
    b = ContinualWrapper(gym.make("Ant-v5", max_episode_steps=30), "friction", values, change_every=40)
    a.reset(seed=0)
    b.reset(seed=5)
    rng = np.random.default_rng(0)
    for _ in range(25):
        a.step(rng.uniform(-1, 1, 8))
    b.unwrapped.model.geom_friction[:, 0] = 7.0  # set_state must restore the phase's friction on every geom
    b.set_state(a.get_state())
    for _ in range(60):
        act = rng.uniform(-1, 1, 8)
        oa, ra, ta, tra, _ = a.step(act)
        ob, rb, tb, trb, _ = b.step(act)
        assert np.array_equal(oa, ob) and ra == rb and (ta, tra) == (tb, trb)
        if ta or tra:
            assert np.array_equal(a.reset()[0], b.reset()[0])
    assert a.changes == b.changes and len(a.changes) >= 2
    assert np.all(b.unwrapped.model.geom_friction[:, 0] == b.value)  # the restored phase's friction on every geom


def _rollout_with_taps(task, monkeypatch):
    """One _collect with the env's raw rewards and the rewards GAE sees recorded."""
    import symexp.tasks.ppo as ppo

    seen, raw = {}, []
    real_gae, real_step = ppo.gae, task.envs.step

    def tap_gae(rewards, values, dones, last_values, gamma, lam):
        seen.update(rewards=rewards.clone(), dones=dones.clone())
        return real_gae(rewards, values, dones, last_values, gamma, lam)

    def tap_step(action):
        out = real_step(action)
        raw.append(torch.as_tensor(out[1], dtype=torch.float32))
        return out

    monkeypatch.setattr(ppo, "gae", tap_gae)
    monkeypatch.setattr(task.envs, "step", tap_step)
    task._collect()
    return seen, torch.stack(raw)


def test_time_limit_ends_are_terminal_by_default(monkeypatch):
    """Dohare et al. (and CleanRL) treat a time-limit end as terminal: no V(final obs) in the reward;
    task.bootstrap_truncated=true is the alternative."""
    task = _task(["data.num_envs=2", "task.rollout_steps=512"])
    assert not task.bootstrap_truncated
    for bootstrap in (False, True):
        task.bootstrap_truncated, task.envs = bootstrap, None
        task._ensure_envs()  # fresh envs from the seed: the same episode clock for both readings
        with monkeypatch.context() as mp:
            seen, raw = _rollout_with_taps(task, mp)
        assert seen["dones"][199].all()  # Pendulum's 200-step time limit falls inside the rollout
        scaled = raw * task.reward_scale
        if bootstrap:
            assert not torch.allclose(seen["rewards"][199], scaled[199])
            torch.testing.assert_close(seen["rewards"][:199], scaled[:199])
        else:
            torch.testing.assert_close(seen["rewards"], scaled)


def test_advantages_standardised_once_over_the_batch_by_default(monkeypatch):
    """Dohare et al. standardise the advantages once over the 2048-sample batch; per minibatch is a knob."""
    import symexp.tasks.ppo as ppo

    task = _task()
    assert task.normalize_advantages == "batch"
    task._ensure_envs()
    roll = task._collect()
    used, real = [], ppo.clipped_policy_loss

    def tap(logp, old_logp, adv, clip):
        used.append(adv.detach().clone())
        return real(logp, old_logp, adv, clip)

    monkeypatch.setattr(ppo, "clipped_policy_loss", tap)
    task.optimizers = lambda: torch.optim.SGD(task.model.parameters(), lr=0.0)
    task.manual_backward = lambda loss: loss.backward()
    for scope in ("batch", "minibatch"):
        used.clear()
        task.normalize_advantages = scope
        task._update(roll)
        first_epoch = torch.cat(used[: task.minibatches])
        means = torch.stack([a.mean() for a in used[: task.minibatches]])
        if scope == "batch":
            assert abs(first_epoch.mean()) < 1e-5 and abs(first_epoch.std() - 1) < 1e-4
            assert means.abs().max() > 1e-3  # each minibatch keeps its own offset
            expected = (roll["adv"] - roll["adv"].mean()) / (roll["adv"].std() + 1e-8)
            torch.testing.assert_close(torch.sort(first_epoch).values, torch.sort(expected).values)
        else:
            assert means.abs().max() < 1e-5
    with pytest.raises(ValueError, match="^task.normalize_advantages"):
        ppo.PPOTask(task.model, task.datamodule, optimizer=torch.optim.Adam, normalize_advantages="per_step")
