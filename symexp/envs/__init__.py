"""Continual reinforcement-learning environments (Slippery Ant, a shifting pendulum) behind the data group.

gymnasium and MuJoCo are an optional extra; ``require_gymnasium`` turns their absence into one clear
message instead of an ImportError deep inside a run.
"""

from __future__ import annotations

INSTALL_HINT = "pip install -e '.[rl]'  (gymnasium[mujoco]>=1.0)"


def require_gymnasium():
    """The gymnasium module, or an ImportError saying how to install the rl extra."""
    try:
        import gymnasium
    except ImportError as exc:  # pragma: no cover - exercised by monkeypatching in tests
        raise ImportError(f"the reinforcement-learning environments need gymnasium: {INSTALL_HINT}") from exc
    return gymnasium


def require_mujoco():
    """The mujoco module, or an ImportError saying how to install the rl extra."""
    try:
        import mujoco
    except ImportError as exc:
        raise ImportError(f"Slippery Ant needs MuJoCo: {INSTALL_HINT}") from exc
    return mujoco
