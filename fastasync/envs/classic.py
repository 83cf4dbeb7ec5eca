"""Classic control (gymnasium's ids, stepped by envpool or by gymnasium itself) and the one
gymnasium env behind the Python batch's protocol (also MuJoCo's fallback)."""

from __future__ import annotations

import numpy as np

# Classic-control ids we support, whenever the backend has them.
CLASSIC = (
    "CartPole-v0",
    "CartPole-v1",
    "Acrobot-v1",
    "MountainCar-v0",
    "MountainCarContinuous-v0",
    "Pendulum-v0",
    "Pendulum-v1",
)


class GymGame:
    """One gymnasium env behind the same reset()/step() protocol as AleGame."""

    def __init__(self, env, seed: int):
        self.env = env
        self.seed = seed
        self.first = True
        self.done = True
        self._obs = None
        # a video's hook (make_env's ``screen``; the env made with render_mode="rgb_array"): called
        # with the env's RGB render after every step
        self.screen = None

    def reset(self) -> tuple:
        if self.first:
            o, _ = self.env.reset(seed=self.seed)
            self.env.action_space.seed(self.seed)
            self.first = False
        else:
            o, _ = self.env.reset()
        self._obs = o
        self.done = False
        return 0.0, False, False, False, 0.0

    def step(self, action) -> tuple:
        if np.ndim(action) == 0:
            action = int(action)
        o, r, term, trunc, _ = self.env.step(action)
        self._obs = o
        if self.screen is not None:
            self.screen(self.env.render())
        term, trunc = bool(term), bool(trunc)
        if term and trunc:  # envpool reports such a step as truncated only
            term = False
        self.done = term or trunc
        return float(r), term, trunc, self.done, float(r)

    def obs(self) -> np.ndarray:
        return self._obs

    def close(self) -> None:
        self.env.close()

