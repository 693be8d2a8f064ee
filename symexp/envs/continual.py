"""The continual part of a continual environment: a physical parameter that changes on a schedule.

Slippery Ant (Dohare et al.) changes the sliding friction of every geom (Dohare et al. edit the
``<default><geom friction=...>`` element of ant.xml) at the first episode end after
``change_every`` environment steps since the last change; the values are log-uniform in [low, high]
and drawn in advance from the run's seed, so every run with that seed sees the same sequence. The
same wrapper drives any other parameter (the pendulum's mass for the cheap environment).
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Callable

import numpy as np

from symexp.envs import require_gymnasium

gym = require_gymnasium()


def draw_values(seed: int, low: float, high: float, count: int) -> np.ndarray:
    """``count`` values log-uniform in [low, high], reproducible from ``seed`` alone."""
    rng = np.random.default_rng([int(seed), 0x5117])
    return np.exp(rng.uniform(math.log(low), math.log(high), size=count))


# ---------------------------------------------------------------- parameter setters (on the unwrapped env)
def set_friction(env, value: float) -> None:
    """Sliding friction of EVERY geom of a MuJoCo env (Slippery Ant), as Dohare et al.'s default-geom edit.

    Setting only the floor would change nothing below 1.0: MuJoCo gives a contact the larger of its two
    geoms' frictions, and the ant's own geoms keep 1.0. MuJoCo reads ``geom_friction`` when it builds the
    contacts of each step, so the change takes effect at the next step without rebuilding the model.
    """
    env.unwrapped.model.geom_friction[:, 0] = value


def get_friction(env) -> float:
    """The sliding friction every geom shares (set by :func:`set_friction`)."""
    sliding = env.unwrapped.model.geom_friction[:, 0]
    if not (sliding == sliding[0]).all():
        raise RuntimeError(f"geoms have different sliding frictions {sorted(set(sliding.tolist()))}; set_friction was not applied")
    return float(sliding[0])


def set_pendulum_mass(env, value: float) -> None:
    env.unwrapped.m = float(value)


def get_pendulum_mass(env) -> float:
    return float(env.unwrapped.m)


PARAMETERS: dict[str, tuple[Callable, Callable]] = {
    "friction": (set_friction, get_friction),
    "pendulum_mass": (set_pendulum_mass, get_pendulum_mass),
}


# ---------------------------------------------------------------- the schedule
class ContinualWrapper(gym.Wrapper):
    """Applies ``values[phase]`` to the env; advances the phase at the first episode end (termination or
    truncation) once ``change_every`` of this env's steps have passed since the last change.

    ``changes`` records (step of this env, new value) for every change, the initial value at step 0.
    """

    def __init__(self, env, parameter: str, values: np.ndarray, change_every: int) -> None:
        super().__init__(env)
        if parameter == "floor_friction":
            raise ValueError(
                "data.parameter: 'floor_friction' was removed (it set only the floor geom, a no-op for values <= 1 "
                "because MuJoCo takes the larger friction of the two geoms); use 'friction' (every geom)"
            )
        if parameter not in PARAMETERS:
            raise ValueError(f"data.parameter: unknown parameter {parameter!r}; choose one of {sorted(PARAMETERS)}")
        self.setter, self.getter = PARAMETERS[parameter]
        self.values, self.change_every = np.asarray(values, dtype=np.float64), int(change_every)
        self.phase, self.steps, self.since_change = 0, 0, 0
        self.changes: list[tuple[int, float]] = [(0, float(self.values[0]))]
        self.setter(self.env, self.values[0])

    @property
    def value(self) -> float:
        return float(self.values[self.phase % len(self.values)])

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.steps += 1
        self.since_change += 1
        if (terminated or truncated) and self.since_change >= self.change_every:
            self.phase += 1
            self.since_change = 0
            self.setter(self.env, self.value)
            self.changes.append((self.steps, self.value))
            info = {**info, "parameter_change": self.value}
        return obs, reward, terminated, truncated, info

    # ------------------------------------------------------------ exact save / restore
    def get_state(self) -> dict:
        return {
            "phase": self.phase, "steps": self.steps, "since_change": self.since_change,
            "changes": list(self.changes), "env": physics_state(self.env),
        }

    def set_state(self, state: dict) -> None:
        self.phase, self.steps, self.since_change = state["phase"], state["steps"], state["since_change"]
        self.changes = [tuple(c) for c in state["changes"]]
        self.setter(self.env, self.value)
        set_physics_state(self.env, state["env"])


def _time_limit(env):
    w = env
    while isinstance(w, gym.Wrapper):
        if hasattr(w, "_elapsed_steps"):
            return w
        w = w.env
    return None


_CLASSIC_FIELDS = ("state", "last_u")


def physics_state(env) -> dict:
    """Everything that determines the env's next transitions: simulator state, episode clock, RNG."""
    u = env.unwrapped
    out: dict = {"rng": u.np_random.bit_generator.state}
    tl = _time_limit(env)
    out["elapsed"] = None if tl is None else tl._elapsed_steps
    if hasattr(u, "model") and hasattr(u, "data"):  # MuJoCo: all of MjData, derived quantities included
        out["mujoco_data"] = pickle.dumps(u.data)  # (rewards read body positions left over from the last step)
    else:
        out["fields"] = {k: np.array(getattr(u, k), copy=True) for k in _CLASSIC_FIELDS if getattr(u, k, None) is not None}
    return out


def set_physics_state(env, state: dict) -> None:
    u = env.unwrapped
    u.np_random.bit_generator.state = state["rng"]
    tl = _time_limit(env)
    if tl is not None:
        tl._elapsed_steps = state["elapsed"]
    if "mujoco_data" in state:
        mujoco = __import__("mujoco")
        mujoco.mj_copyData(u.data, u.model, pickle.loads(state["mujoco_data"]))
    for k, v in state.get("fields", {}).items():
        setattr(u, k, np.array(v, copy=True))
