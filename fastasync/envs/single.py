"""One gymnasium env that returns what a trained policy acts on: ``fastasync.Policy.env()``.

Atari ids: the gymnasium backend's port of envpool's preprocessing (:class:`AtariEnv`),
whole games, unclipped rewards. ViZDoom and CarRacing, which have no gymnasium id of
fastasync's preprocessing: fastasync's own env batch of one (:class:`BatchOfOne`), as eval
plays it. Built-in classic control and MuJoCo: ``gymnasium.make``. The user's envs: as the
learners make them (``custom.prepared``).
"""

from __future__ import annotations

import gymnasium
import numpy as np

from . import atari, custom, default_backend, env_info, make_env
from .base import EnvError, last_frame
from .families import catalog, family_of


def single_env(env_id: str, *, noop_max: int = 30, max_episode_frames: int = 108_000, render_mode=None,
               backend: str = "auto", **options):
    """One gymnasium env for ``env_id`` that returns what a policy trained on it acts on.

    ``options``: the run's view options (``envs.view_options``: CarRacing's frame skip and
    grey-scale, ViZDoom's status bar), so that the env shows what the net learned on.
    """
    if custom.is_custom(env_id, "gymnasium"):
        return custom.prepared(env_id, render_mode)
    if family_of(env_id) in ("doom", "car"):
        return BatchOfOne(env_id, backend, render_mode, options)
    try:
        kind, rom = catalog("gymnasium")[env_id]
    except KeyError:
        raise EnvError(f"unknown env {env_id!r} for backend gymnasium; see `fastasync envs`") from None
    if kind == "atari":
        return AtariEnv(env_id, rom, noop_max, max_episode_frames, render_mode)
    return gymnasium.make(env_id, **({} if render_mode is None else {"render_mode": render_mode}))


class BatchOfOne(gymnasium.Env):
    """A gymnasium env over fastasync's env batch of one (ViZDoom, CarRacing): the observations
    the policy was trained on, the true score's rewards, whole episodes; ``reset`` restarts
    the env (the batch's reset), ``render`` ("rgb_array") the newest frame of the stack."""

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, env_id, backend, render_mode, view_options):
        if render_mode not in (None, "rgb_array"):
            raise EnvError(f"{env_id} renders as 'rgb_array' only (the newest observed frame), not {render_mode!r}")
        self.info = info = env_info(env_id, backend if backend != "auto" else default_backend(env_id), **view_options)
        self.view_options = dict(view_options)
        self.observation_space = gymnasium.spaces.Box(0, 255, info.obs_shape, np.uint8)
        if info.discrete:
            self.action_space = gymnasium.spaces.Discrete(info.num_actions)
        else:
            self.action_space = gymnasium.spaces.Box(np.asarray(info.action_low, np.float32),
                                                     np.asarray(info.action_high, np.float32), dtype=np.float32)
        self.render_mode = render_mode
        self.spec_id = env_id
        self._batch, self._obs = None, None

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        if self._batch is None or seed is not None:
            if self._batch is not None:
                self._batch.close()
            s = int(seed) if seed is not None else int(self.np_random.integers(2**31 - 1))
            self._batch = make_env(self.spec_id, 1, seed=s, backend=self.info.backend, episodic_life=False,
                                   reward_clip=False, **self.view_options)  # (reset's ``options`` is gymnasium's)
        self._obs = self._batch.reset()[0].copy()
        return self._obs, {}

    def step(self, action):
        info = self.info
        a = (np.asarray([action], np.int32) if info.discrete
             else np.asarray(action, np.float32).reshape(1, *info.action_shape))
        st = self._batch.step(a)
        self._obs = st.obs[0].copy()
        return self._obs, float(st.raw_reward[0]), bool(st.terminated[0]), bool(st.truncated[0]), {}

    def render(self):
        if self.render_mode != "rgb_array" or self._obs is None:
            return None
        f = last_frame(self._obs)
        return f if f.ndim == 3 else np.repeat(f[..., None], 3, axis=-1)

    def close(self):
        if self._batch is not None:
            self._batch.close()
            self._batch = None


class AtariEnv(gymnasium.Env):
    """One Atari game preprocessed as fastasync trains it; rewards are the true score's."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 60 // atari.FRAME_SKIP}

    def __init__(self, env_id, rom, noop_max, max_episode_frames, render_mode):
        info = env_info(env_id, "gymnasium")
        self.rom, self.noop_max = rom, max(int(noop_max), 1)
        self.max_steps = int(max_episode_frames) // atari.FRAME_SKIP
        self.observation_space = gymnasium.spaces.Box(0, 255, info.obs_shape, np.uint8)
        self.action_space = gymnasium.spaces.Discrete(info.num_actions)
        self.render_mode = render_mode
        self.spec_id = env_id
        self._game = None

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        if self._game is None or seed is not None:  # ALE is seeded when it is made
            s = int(seed) if seed is not None else int(self.np_random.integers(2**31 - 1))
            self._game = atari.AleGame(self.rom, s, self.noop_max, False, False, self.max_steps)
        self._game.reset()
        return self._game.obs().copy(), {"lives": self._game.lives}

    def step(self, action):
        g = self._game
        _, term, trunc, _, raw = g.step(int(action))
        return g.obs().copy(), raw, term, trunc, {"lives": g.lives}

    def render(self):
        if self.render_mode == "rgb_array" and self._game is not None:
            return self._game.ale.getScreenRGB()
        return None
