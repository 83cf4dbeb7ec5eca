"""MuJoCo physics tasks (continuous actions): envpool's C++ ports, or gymnasium's ``*-v4``
envs on the ``mujoco`` package where envpool is missing.

Both backends use the tasks' own settings (gymnasium's v4 defaults: physics frame skip,
reset noise, the registered time limit: 1000 steps, Reacher-v4 50, Pusher-v4 100). The
observation is the task's float64 vector, handed to the learner as float32; the action is a
float32 vector that each backend receives already clipped to the Box bounds (the learner's
Gaussian head clips its sample; ``EnvInfo.action_low/high``). The physics frame skip
(5 in HalfCheetah) is inside one env step: frames counted for MuJoCo are ENV STEPS
(``EnvInfo.frame_skip == 1``), the unit the continuous-control literature reports.
A MuJoCo task has no lives and its rewards are never clipped: ``episodic_life``,
``reward_clip`` and ``noop_max`` do not apply.
"""

from __future__ import annotations

import importlib.util

MUJOCO = (
    "Ant-v4",
    "HalfCheetah-v4",
    "Hopper-v4",
    "Humanoid-v4",
    "InvertedDoublePendulum-v4",
    "InvertedPendulum-v4",
    "Pusher-v4",
    "Reacher-v4",
    "Swimmer-v4",
    "Walker2d-v4",
)

INSTALL = "pip install mujoco"


def gymnasium_has_mujoco() -> bool:
    """Whether gymnasium's MuJoCo envs can run here (the ``mujoco`` package, no import)."""
    return importlib.util.find_spec("mujoco") is not None
