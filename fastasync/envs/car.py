"""CarRacing-v3: top-down driving from pixels with continuous steering, gas and brake (the
``box2d`` physics), the usual stand-in for the paper's TORCS. envpool's batched C++ port, or
gymnasium's own env (which needs the ``box2d`` package) behind the Python batch.

Ids
---
``CarRacing-v3``
    the env's own continuous action ``(steer, gas, brake)`` in ``[-1, 1] x [0, 1] x [0, 1]``:
    A3C's Gaussian head (conv torso on the pixels). The learner clips each sampled dimension
    to these bounds before it is sent (``EnvInfo.action_low/high``); the batch clips again
    (envpool's C++ asserts the bounds) so that no caller can send an out-of-range action.
``CarRacingDiscrete-v3``
    the same env with five discrete actions, for the Q methods (A3C takes it too). The table
    is gymnasium's own ``continuous=False`` mapping (``car_racing.py``: ``steer(-0.6 * (a == 1)
    + 0.6 * (a == 2))``, ``gas(0.2 * (a == 3))``, ``brake(0.8 * (a == 4))``; the continuous
    path steers by ``-action[0]``), written as the continuous action it equals:

    ======  ===================  =================
    action  (steer, gas, brake)  gymnasium's name
    ======  ===================  =================
    0       ( 0.0, 0.0, 0.0)     do nothing
    1       (+0.6, 0.0, 0.0)     steer right
    2       (-0.6, 0.0, 0.0)     steer left
    3       ( 0.0, 0.2, 0.0)     gas
    4       ( 0.0, 0.0, 0.8)     brake
    ======  ===================  =================

    (gymnasium's docstring names them in this order: 1 right, 2 left.) envpool has no
    discrete CarRacing: both backends step the continuous env with the table's row.

Action repeat ("frame skip") across envpool's auto-reset
--------------------------------------------------------
envpool's CarRacing has no frame skip, so the batch repeats each agent action for
``frame_skip`` env steps (default 4) and sums their rewards. An episode that ends at
sub-step ``k < frame_skip`` must end the agent step there: the next episode must not start
inside it. A synchronous envpool batch steps every env together, so it cannot stop one env
early. The batch therefore runs envpool **asynchronously** (``batch_size = 1``):

* one ``send`` of the agent's actions for all E envs, then one ``recv`` per env sub-step;
  an env whose repeat is not over and whose episode has not ended is sent its action again
  at once (the envs do not wait for each other between sub-steps);
* an env whose sub-step reports done is not sent again in this agent step: its summed
  reward, its terminated/truncated flags and its last frame are the agent step's;
* the NEXT agent step sends that env once: envpool's auto-reset step, whose action is
  ignored and which returns the first frame of a new episode, reward 0, no flags. That is
  the reset step the learner masks out (package docstring), exactly as for Atari.

The Python backend does the same per game (``CarGame``): it repeats the action and breaks
at the sub-step that ends the episode. ``tests/test_carracing.py`` checks both against the
raw env stepped by hand, with episodes that end at every sub-step position.

Frames: as everywhere in fastasync, frames = agent steps x frame skip (``EnvInfo.frame_skip``
is the repeat); the last agent step of an episode is counted in full although the env may
have run only ``k`` of its sub-steps (at most ``frame_skip - 1`` frames over per episode;
``env_steps`` counts the env steps exactly, reset steps excluded). The episode's time limit
is the env's own: 1,000 env steps (250 agent steps at repeat 4), a truncation (bootstrap).
envpool reports a step that is both off the playfield and at the time limit as truncated
only; the Python backend does the same.

Reward and score: the env's own, unclipped: -0.1 per env step, +1000/N per new track tile
(N tiles, about 240-300), -100 and termination when the car leaves the playfield; finishing
the lap ends the episode (terminated: nothing is left to earn). Summed over the repeat. The
training reward is the same sum, clipped to [-1, 1] only when ``reward_clip`` is set (the
CarRacing defaults do not clip: clipping would pay one tile per agent step at any speed,
config.FAMILY_DEFAULTS).

Observation
-----------
The 96x96 frame is kept at full size (the conv torso takes any size: 8x8/4 -> 23x23,
4x4/2 -> 10x10, 3,200 features into fc 256). Resizing to 84x84 would blur the dashboard
strip at the bottom (speed, ABS, steering and gyro bars), which is the only place the
speed is shown. Grey-scale by default (``grey=True``): road, grass and kerbs keep distinct
luminances (ITU-R 601 weights, as OpenCV's RGB2GRAY: 0.299 R + 0.587 G + 0.114 B, rounded),
the stack is 3x smaller and the first conv 3x cheaper; ``grey=False`` keeps RGB. The last
frame of each agent step (no max over the last two: nothing flickers here) goes onto a
stack of 4, oldest first, channels first, uint8: (4, 96, 96) grey or (12, 96, 96) RGB
(R, G, B of each frame). A new episode fills the stack with its first frame.
"""

from __future__ import annotations

import importlib.util

import numpy as np

from .base import EnvBatch, EnvError, EnvInfo, Step, close_quietly

ENV = "CarRacing-v3"  # the env both ids step
CAR = {"CarRacing-v3": False, "CarRacingDiscrete-v3": True}  # id -> discrete
FRAME_SKIP = 4
STACK = 4
SIZE = 96
MAX_ENV_STEPS = 1000  # the env's own time limit (gymnasium's registration, envpool's default)
MAX_FRAME_SKIP = 50
LOW = (-1.0, 0.0, 0.0)
HIGH = (1.0, 1.0, 1.0)
INSTALL = "pip install box2d pygame-ce"  # gymnasium's CarRacing: Box2D physics, pygame drawing

# the discrete actions as the continuous actions they equal (module docstring)
ACTIONS = np.array(
    [[0.0, 0.0, 0.0], [0.6, 0.0, 0.0], [-0.6, 0.0, 0.0], [0.0, 0.2, 0.0], [0.0, 0.0, 0.8]], np.float64
)
ACTION_NAMES = ("do nothing", "steer right", "steer left", "gas", "brake")


def has_box2d() -> bool:
    """Whether gymnasium's CarRacing can run here (``box2d`` and ``pygame``, no import)."""
    return importlib.util.find_spec("Box2D") is not None and importlib.util.find_spec("pygame") is not None


def check_options(frame_skip, grey) -> None:
    if isinstance(frame_skip, bool) or not isinstance(frame_skip, (int, np.integer)) \
            or not 1 <= frame_skip <= MAX_FRAME_SKIP:
        raise EnvError(f"car-frame-skip must be a whole number in [1, {MAX_FRAME_SKIP}], got {frame_skip!r}")
    if not isinstance(grey, (bool, np.bool_)):
        raise EnvError(f"car-grey must be true or false, got {grey!r}")


def info(env_id: str, backend: str, frame_skip: int = FRAME_SKIP, grey: bool = True) -> EnvInfo:
    check_options(frame_skip, grey)
    c = 1 if grey else 3
    shape = (STACK * c, SIZE, SIZE)
    if CAR[env_id]:
        return EnvInfo(env_id, backend, shape, np.dtype(np.uint8), len(ACTIONS), True, int(frame_skip), False,
                       (), "car")
    return EnvInfo(env_id, backend, shape, np.dtype(np.uint8), 0, False, int(frame_skip), False, (3,), "car",
                   LOW, HIGH)


def grey_frames(rgb: np.ndarray) -> np.ndarray:
    """(..., H, W, 3) uint8 RGB -> (..., H, W) uint8: round(0.299 R + 0.587 G + 0.114 B)."""
    x = rgb.astype(np.uint32)
    return ((x[..., 0] * 299 + x[..., 1] * 587 + x[..., 2] * 114 + 500) // 1000).astype(np.uint8)


def channels_first(rgb: np.ndarray, grey: bool) -> np.ndarray:
    """(n, H, W, 3) uint8 -> (n, C, H, W) uint8 (C = 1 grey, 3 RGB)."""
    if grey:
        return grey_frames(rgb)[:, None]
    return np.ascontiguousarray(rgb.transpose(0, 3, 1, 2))


class _Stacks:
    """The stacks of E envs: (E, STACK, C, H, W) uint8, oldest frame first."""

    def __init__(self, n: int, grey: bool):
        self.grey = grey
        self.c = 1 if grey else 3
        self.s = np.zeros((n, STACK, self.c, SIZE, SIZE), np.uint8)

    def push(self, idx: np.ndarray, rgb: np.ndarray, fill: np.ndarray) -> None:
        """Frames ``rgb`` (len(idx), H, W, 3) onto envs ``idx``; ``fill``: new episodes (whole stack)."""
        f = channels_first(rgb, self.grey)
        s = self.s
        s[idx, :-1] = s[idx, 1:]
        s[idx, -1] = f
        if fill.any():
            s[idx[fill]] = f[fill][:, None]

    def obs(self) -> np.ndarray:
        return self.s.reshape(self.s.shape[0], STACK * self.c, SIZE, SIZE).copy()


def to_continuous(info_: EnvInfo, actions: np.ndarray) -> np.ndarray:
    """The (E, 3) float32 actions the env is sent: a discrete action's row of ACTIONS, or the
    continuous action clipped to its bounds."""
    if info_.discrete:
        return ACTIONS.astype(np.float32)[actions]
    return np.clip(actions.reshape(-1, 3), LOW, HIGH).astype(np.float32)


# ---------------------------------------------------------------- envpool


def envpool_kwargs(max_steps: int = MAX_ENV_STEPS) -> dict:
    """envpool's asynchronous layout (``batch_size = 1``, module docstring) and time limit."""
    return dict(batch_size=1, max_episode_steps=int(max_steps))


class CarEnvpoolBatch(EnvBatch):
    """envpool's CarRacing stepped asynchronously: the action repeat stops at an episode's
    end for that env alone (module docstring)."""

    def __init__(self, env, info_: EnvInfo, num_envs: int, reward_clip: bool):
        self._env = env
        self.info = info_
        self.num_envs = num_envs
        self.repeat = info_.frame_skip
        self.reward_clip = bool(reward_clip)
        self._ids = np.arange(num_envs, dtype=np.int32)
        self._stacks = _Stacks(num_envs, info_.obs_shape[0] == STACK)
        self._rgb = np.zeros((num_envs, SIZE, SIZE, 3), np.uint8)
        self._needs_reset = np.zeros(num_envs, bool)  # done last agent step: this one is its reset step
        self._pending = None
        self.env_steps = 0  # env steps run (reset steps excluded), for tests and benchmarks
        self._direct = self._layout(env)

    @staticmethod
    def _layout(env):
        """Indices of (env id, obs, reward, done, trunc) in envpool's raw state list, or None
        (then envpool's public send/recv are used)."""
        try:
            keys = list(env._state_keys)
            ok = list(env._spec._action_keys) == ["env_id", "players.env_id", "action"] and callable(env._send)
            return tuple(keys.index(k) for k in ("info:env_id", "obs", "reward", "done", "trunc")) if ok else None
        except Exception:  # noqa: BLE001 - another envpool: the public calls
            return None

    def _send(self, ids: np.ndarray, a: np.ndarray) -> None:
        if self._direct is None:
            self._env.send(a, ids)
        else:
            self._env._send([ids, ids, a])

    def _recv(self) -> tuple:
        """(env id, obs (1, 96, 96, 3), reward, done, trunc) of one env's step."""
        if self._direct is None:
            obs, rew, term, trunc, inf = self._env.recv()
            return int(inf["env_id"][0]), obs, float(rew[0]), bool(term[0] or trunc[0]), bool(trunc[0])
        st = self._env._recv()
        i, o, r, d, t = self._direct
        return int(st[i][0]), st[o], float(st[r][0]), bool(st[d][0]), bool(st[t][0])

    def reset(self) -> np.ndarray:
        self._env.async_reset()
        for _ in range(self.num_envs):
            j, obs, _r, _d, _t = self._recv()
            self._rgb[j] = obs[0]
        self._stacks.push(self._ids, self._rgb, np.ones(self.num_envs, bool))
        self._needs_reset[:] = False
        return self._stacks.obs()

    def send(self, actions) -> None:
        if self._pending is not None:
            raise EnvError("send() called twice without recv()")
        a = to_continuous(self.info, self._actions(actions))
        self._pending = a
        self._send(self._ids, a)

    def recv(self) -> Step:
        if self._pending is None:
            raise EnvError("recv() called without send()")
        a, self._pending = self._pending, None
        e = self.num_envs
        first = self._needs_reset.copy()  # reset steps: one env step each, action ignored
        left = np.where(first, 1, self.repeat)
        raw = np.zeros(e, np.float64)
        term = np.zeros(e, bool)
        trunc = np.zeros(e, bool)
        outstanding = e
        steps = 0
        while outstanding:
            j, obs, r, done, tr = self._recv()
            raw[j] += r
            left[j] -= 1
            if not first[j]:
                steps += 1
            if done:
                term[j], trunc[j] = not tr, tr
                left[j] = 0
            if left[j] > 0:
                self._send(self._ids[j : j + 1], a[j : j + 1])
            else:
                self._rgb[j] = obs[0]
                outstanding -= 1
        self.env_steps += steps
        self._stacks.push(self._ids, self._rgb, first)
        self._needs_reset = term | trunc
        raw32 = raw.astype(np.float32)
        rew = np.clip(raw32, -1.0, 1.0) if self.reward_clip else raw32.copy()
        return Step(self._stacks.obs(), rew, term, trunc, term | trunc, raw32)

    def close(self) -> None:
        env, self._env = self._env, None
        close_quietly(env)


# ---------------------------------------------------------------- gymnasium


class CarGame:
    """One gymnasium CarRacing-v3 behind the Python batch's protocol (``reset``/``step``/
    ``obs``/``done``), with the same repeat, stacking and reward as ``CarEnvpoolBatch``."""

    def __init__(self, info_: EnvInfo, seed: int, reward_clip: bool, max_steps: int = MAX_ENV_STEPS,
                 render: bool = False):
        import gymnasium

        # render: made with render_mode="rgb_array" for a video (the observation is drawn apart from
        # it: the same game either way)
        self.env = gymnasium.make(ENV, max_episode_steps=int(max_steps), **({"render_mode": "rgb_array"} if render else {}))
        self.info = info_
        self.seed = int(seed)
        self.repeat = info_.frame_skip
        self.reward_clip = bool(reward_clip)
        self._stacks = _Stacks(1, info_.obs_shape[0] == STACK)
        self._idx = np.zeros(1, np.intp)
        self.first = True
        self.done = True
        self.env_steps = 0
        # a video's hook (make_env's ``screen``, ``render``): called with gymnasium's (400, 600, 3) RGB
        # render after every env step of the action repeat
        self.screen = None

    def reset(self) -> tuple:
        o, _ = self.env.reset(seed=self.seed) if self.first else self.env.reset()
        self.first = False
        self._stacks.push(self._idx, o[None], np.ones(1, bool))
        self.done = False
        return 0.0, False, False, False, 0.0

    def step(self, action) -> tuple:
        if self.info.discrete:
            a = ACTIONS[int(action)]  # float64: exactly gymnasium's discrete path
        else:
            a = np.clip(np.asarray(action, np.float32).reshape(3), LOW, HIGH).astype(np.float32)
        total, term, trunc = 0.0, False, False
        for _ in range(self.repeat):
            o, r, term, trunc, _ = self.env.step(a)
            if self.screen is not None:
                self.screen(self.env.render())
            total += float(r)
            self.env_steps += 1
            if term or trunc:
                break
        term, trunc = bool(term) and not trunc, bool(trunc)  # envpool: a time-limit end is truncated only
        self._stacks.push(self._idx, o[None], np.zeros(1, bool))
        self.done = term or trunc
        raw = float(np.float32(total))
        r = float(np.clip(raw, -1.0, 1.0)) if self.reward_clip else raw
        return r, term, trunc, self.done, raw

    def obs(self) -> np.ndarray:
        return self._stacks.obs()[0]

    def close(self) -> None:
        self.env.close()
