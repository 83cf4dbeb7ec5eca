"""gymnasium wrappers of the user's envs: what a learner's batch and Policy.env() step."""

from __future__ import annotations

import gymnasium
import numpy as np


class Prepared(gymnasium.Wrapper):
    """A user's env with its observations as the net reads them (``spec["transform"]``: an
    image to (C, H, W), a vector flattened) and Discrete actions counted from 0 (``spec``:
    ``custom.check_spaces``)."""

    def __init__(self, inner, spec: dict):
        super().__init__(inner)
        self.spec_ = spec
        low = 0 if spec["obs_dtype"] == np.uint8 else -np.inf
        high = 255 if spec["obs_dtype"] == np.uint8 else np.inf
        self.observation_space = gymnasium.spaces.Box(low, high, spec["obs_shape"], spec["obs_dtype"])
        if spec["discrete"]:
            self.action_space = gymnasium.spaces.Discrete(spec["num_actions"])

    def _obs(self, o):
        return o if self.spec_["transform"] is None else self.spec_["transform"](o)

    def reset(self, **kw):
        o, info = self.env.reset(**kw)
        return self._obs(o), info

    def step(self, action):
        if self.spec_["action_start"]:
            action = int(action) + self.spec_["action_start"]
        o, r, term, trunc, info = self.env.step(action)
        return self._obs(o), r, term, trunc, info
