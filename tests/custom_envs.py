"""Tiny gymnasium envs of a user's own, for the tests of ``--env module:Id`` (registered on import)."""

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class Corridor(gym.Env):
    """Walk right from cell 0 to the last cell: +1 there, -0.01 a step. Actions are
    Discrete(3, start=-1) (left, stay, right) so that the action offset is exercised too."""

    def __init__(self, length=6):
        self.length = length
        self.observation_space = spaces.Box(0.0, 1.0, (2,), np.float64)
        self.action_space = spaces.Discrete(3, start=-1)
        self.pos = 0

    def _obs(self):
        return np.array([self.pos / (self.length - 1), 1.0])

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.pos = int(self.np_random.integers(0, 2))
        return self._obs(), {}

    def step(self, action):
        assert action in (-1, 0, 1), action
        self.pos = min(max(self.pos + int(action), 0), self.length - 1)
        done = self.pos == self.length - 1
        return self._obs(), (1.0 if done else -0.01), done, False, {}


class Squares(gym.Env):
    """A 36x36 gray image (H, W, 1) with a bright square left or right: act to its side."""

    def __init__(self):
        self.observation_space = spaces.Box(0, 255, (36, 36, 1), np.uint8)
        self.action_space = spaces.Discrete(2)
        self.side = 0
        self.t = 0

    def _obs(self):
        img = np.zeros((36, 36, 1), np.uint8)
        img[10:26, (2 if self.side == 0 else 20):(16 if self.side == 0 else 34)] = 255
        return img

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.side, self.t = int(self.np_random.integers(0, 2)), 0
        return self._obs(), {}

    def step(self, action):
        r = 1.0 if int(action) == self.side else 0.0
        self.side, self.t = int(self.np_random.integers(0, 2)), self.t + 1
        return self._obs(), r, False, self.t >= 10, {}


class DictObs(Corridor):
    def __init__(self):
        super().__init__()
        self.observation_space = spaces.Dict({"pos": spaces.Box(0.0, 1.0, (2,))})


class MultiAction(Corridor):
    def __init__(self):
        super().__init__()
        self.action_space = spaces.MultiDiscrete([2, 3])


def make_corridor():
    """An env function, as ``fastasync.train(env=make_corridor)`` takes it."""
    return gym.wrappers.TimeLimit(Corridor(), max_episode_steps=30)


gym.register("Corridor-v0", entry_point=Corridor, max_episode_steps=30)
gym.register("Squares-v0", entry_point=Squares)
gym.register("DictObs-v0", entry_point=DictObs, max_episode_steps=30)
gym.register("MultiAction-v0", entry_point=MultiAction, max_episode_steps=30)
