"""What every backend shares: the env spec (EnvInfo), a step (Step), the batch interface
(EnvBatch), envpool's batch (any family envpool ships) and the Python batch (single games
behind envpool's next-step auto-reset). Semantics: the package docstring."""

from __future__ import annotations

import importlib.util
import warnings
from dataclasses import dataclass

import numpy as np

from ..errors import EnvError

BACKENDS = ("envpool", "gymnasium")

_INSTALL = {
    "envpool": "pip install envpool",
    "gymnasium": 'pip install "gymnasium>=1.0" "ale-py>=0.9"',
}




@dataclass(frozen=True)
class EnvInfo:
    env_id: str
    backend: str
    obs_shape: tuple
    obs_dtype: np.dtype
    num_actions: int  # discrete actions; 0 if the action space is not Discrete
    discrete: bool
    frame_skip: int  # 4 for Atari, 1 otherwise
    is_atari: bool
    action_shape: tuple = ()  # per-env action shape: () if discrete, else the Box shape
    family: str = ""  # "atari", "classic", "mujoco", "doom" or "car" (the module of this package that makes it)
    action_low: tuple = ()  # Box actions: per-dimension bounds (the sent action is clipped to them)
    action_high: tuple = ()

    @property
    def vector_obs(self) -> bool:
        """Vector observations (float32): the ones running normalisation and its NaN check
        apply to. Pixel stacks (Atari, ViZDoom, CarRacing: uint8) go to the conv torso as they are."""
        return len(self.obs_shape) == 1

    @property
    def action_dim(self) -> int:
        """Entries of one env's action: 1 for a discrete action, else the Box's size."""
        return int(np.prod(self.action_shape)) if self.action_shape else 1


@dataclass
class Step:
    obs: np.ndarray  # (E, *obs_shape) obs_dtype, C-contiguous
    reward: np.ndarray  # float32 (E,) training reward
    terminated: np.ndarray  # bool (E,) do not bootstrap
    truncated: np.ndarray  # bool (E,) time limit, bootstrap
    game_over: np.ndarray  # bool (E,) the real full game ended this step
    raw_reward: np.ndarray  # float32 (E,) unclipped reward


# --------------------------------------------------------------------------- helpers


def _check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise EnvError(f"unknown backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
    mod = "envpool" if backend == "envpool" else "ale_py"
    if importlib.util.find_spec(mod) is None or (
        backend == "gymnasium" and importlib.util.find_spec("gymnasium") is None
    ):
        raise EnvError(f"backend {backend!r} is not installed: {_INSTALL[backend]}")


def import_backend(backend: str):
    """Import the backend's packages, turning failures into EnvError."""
    _check_backend(backend)
    try:
        if backend == "envpool":
            import envpool

            return envpool
        import ale_py
        import gymnasium

        return gymnasium, ale_py
    except Exception as e:  # noqa: BLE001 - any import failure means unusable
        raise EnvError(
            f"backend {backend!r} failed to import ({type(e).__name__}: {e}); "
            f"try: {_INSTALL[backend]}"
        ) from e


def space_info(space) -> tuple:
    """(discrete, num_actions, action_shape) of a gym(nasium) action space."""
    n = getattr(space, "n", None)
    if n is not None and not getattr(space, "shape", ()):
        return True, int(n), ()
    return False, 0, tuple(space.shape)


def envpool_spaces(env_id: str) -> tuple:
    """(observation_space, action_space) of an envpool id."""
    envpool = import_backend("envpool")
    with warnings.catch_warnings():  # envpool's float64 Box bounds -> float32 warnings
        warnings.simplefilter("ignore", UserWarning)
        spec = envpool.make_spec(env_id)
        return spec.observation_space, spec.action_space


# --------------------------------------------------------------------------- batch API


STACK = 4  # the pixel families stack 4 frames, channels first: (4, H, W) grey or (12, H, W) RGB


def last_frame(obs: np.ndarray) -> np.ndarray:
    """The newest frame of one env's stacked pixel observation: (H, W) grey or (H, W, 3) RGB (a copy)."""
    per_frame = obs.shape[0] // STACK
    if per_frame == 1:
        return obs[-1].copy()
    return np.ascontiguousarray(np.moveaxis(obs[-per_frame:], 0, -1))


class EnvBatch:
    """A synchronous batch of ``num_envs`` environments with envpool auto-reset.

    ``step(actions)`` == ``send(actions)`` then ``recv()``. Arrays returned are
    fresh each call (the caller may keep them).
    """

    info: EnvInfo
    num_envs: int

    def reset(self) -> np.ndarray:
        raise NotImplementedError

    def send(self, actions: np.ndarray) -> None:
        raise NotImplementedError

    def recv(self) -> Step:
        raise NotImplementedError

    def step(self, actions: np.ndarray) -> Step:
        self.send(actions)
        return self.recv()

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _actions(self, actions) -> np.ndarray:
        if self.info.discrete:
            a = np.ascontiguousarray(actions, dtype=np.int32)
            if a.shape != (self.num_envs,):
                raise EnvError(f"actions must have shape ({self.num_envs},), got {a.shape}")
            # one C-level reduction (no ndarray.min/max Python wrappers: this runs every step
            # with the GIL held): as uint32, negative actions are huge
            if a.size and np.maximum.reduce(a.view(np.uint32)) >= self.info.num_actions:
                raise EnvError(
                    f"actions must be in [0, {self.info.num_actions}), got {a.min()}..{a.max()}"
                )
        else:
            a = np.ascontiguousarray(actions, dtype=np.float32)
            want = (self.num_envs, *self.info.action_shape)
            if a.shape != want:
                a = a.reshape(want) if a.size == int(np.prod(want)) else a
            if a.shape != want:
                raise EnvError(f"actions must have shape {want}, got {a.shape}")
        return a


# --------------------------------------------------------------------------- envpool


class EnvpoolBatch(EnvBatch):
    """envpool's batch, stepped through its C++ ``_send``/``_recv`` when it can be.

    envpool's public ``send``/``recv`` wrap the C++ calls in Python that rebuilds a config
    dict, flattens and unflattens the state tree and recomputes ``terminated`` on every
    step: 0.25-0.35 ms of held GIL per step on the development machine, which N learner
    threads must share (``bench/gil_share.py``; bench/RESULTS-history.md, 2026-11-27 10:50). The direct
    path passes the same three action arrays envpool's ``send`` builds (``env_id``,
    ``players.env_id`` = ``env_id`` for one player, ``action``) and reads the flat state list
    by the state keys' positions, computing what envpool's gymnasium wrapper computes
    (``terminated = done & ~trunc``). It is used only when envpool's private API has exactly
    that layout (checked once here; envpool 1.2.x); otherwise the public calls are used.
    ``tests/test_envs.py`` steps both paths side by side and compares every field.
    """

    _STATE = ("obs", "reward", "done", "trunc")
    _ATARI_STATE = ("info:terminated", "info:reward")

    def __init__(self, env, info: EnvInfo, num_envs: int):
        self._env = env
        self.info = info
        self.num_envs = num_envs
        self._pending = False
        self._direct = self._direct_layout(env, info, num_envs)  # None: envpool's public calls

    @classmethod
    def _direct_layout(cls, env, info: EnvInfo, num_envs: int):
        """(env ids, action dtype, state indices) for the direct path, or None."""
        try:
            action_keys = list(env._spec._action_keys)
            action_dtype = np.dtype(env._spec._action_spec[-1][0])
            state_keys = list(env._state_keys)
            one_player = env.config.get("max_num_players", 1) == 1
            callable_ = callable(env._send) and callable(env._recv)
        except Exception:  # noqa: BLE001 - any other envpool: the public path
            return None
        wanted = cls._STATE + (cls._ATARI_STATE if info.is_atari else ())
        if (action_keys != ["env_id", "players.env_id", "action"] or not one_player or not callable_
                or any(k not in state_keys for k in wanted)):
            return None
        ids = np.arange(num_envs, dtype=np.int32)
        return ids, action_dtype, tuple(state_keys.index(k) for k in wanted)

    def reset(self) -> np.ndarray:
        obs, _ = self._env.reset()
        return self._obs(obs)

    def _obs(self, obs) -> np.ndarray:
        return np.ascontiguousarray(obs, dtype=self.info.obs_dtype)

    def send(self, actions) -> None:
        if self._pending:
            raise EnvError("send() called twice without recv()")
        a = self._actions(actions)
        if self._direct is None:
            self._env.send(a)
        else:
            ids, dtype, _ = self._direct
            self._env._send([ids, ids, a if a.dtype == dtype else a.astype(dtype)])
        self._pending = True

    def recv(self) -> Step:
        if not self._pending:
            raise EnvError("recv() called without send()")
        if self._direct is None:
            obs, rew, term, trunc, info = self._env.recv()
            atari = (info["terminated"], info["reward"]) if self.info.is_atari else None
        else:
            state = self._env._recv()
            idx = self._direct[2]
            obs, rew, done, trunc = (state[i] for i in idx[:4])
            term = done & ~trunc  # what envpool's gymnasium wrapper computes
            atari = (state[idx[4]], state[idx[5]]) if self.info.is_atari else None
        self._pending = False
        return self._step(obs, rew, term, trunc, atari)

    def _step(self, obs, rew, term, trunc, atari) -> Step:
        """A Step from envpool's arrays; ``atari``: (info terminated, info reward) or None."""
        term = np.asarray(term, dtype=bool)
        trunc = np.asarray(trunc, dtype=bool)
        rew = np.asarray(rew, dtype=np.float32)
        if atari is not None:
            real_end = np.asarray(atari[0], dtype=bool)
            game_over = (real_end & term) | trunc
            raw = np.asarray(atari[1], dtype=np.float32)
        else:
            game_over = term | trunc
            raw = rew.copy()
        return Step(self._obs(obs), rew, term, trunc, game_over, raw)

    def close(self) -> None:
        env, self._env = self._env, None
        close_quietly(env)


def close_quietly(env) -> None:
    """Close an envpool env (or None) on a best-effort basis: a batch being torn down must not raise."""
    if env is not None and hasattr(env, "close"):
        try:
            env.close()
        except Exception:  # noqa: BLE001 - closing is best effort
            pass



class PyBatch(EnvBatch):
    """A synchronous list of single games with envpool's next-step auto-reset."""

    def __init__(self, games: list, info: EnvInfo, num_envs: int):
        self._games = games
        self.info = info
        self.num_envs = num_envs
        self._pending = None

    def _gather_obs(self) -> np.ndarray:
        out = np.empty((self.num_envs, *self.info.obs_shape), self.info.obs_dtype)
        for i, g in enumerate(self._games):
            out[i] = g.obs()
        return out

    def reset(self) -> np.ndarray:
        for g in self._games:
            g.reset()
        return self._gather_obs()

    def send(self, actions) -> None:
        if self._pending is not None:
            raise EnvError("send() called twice without recv()")
        self._pending = self._actions(actions)

    def recv(self) -> Step:
        if self._pending is None:
            raise EnvError("recv() called without send()")
        actions, self._pending = self._pending, None
        e = self.num_envs
        rew = np.zeros(e, np.float32)
        raw = np.zeros(e, np.float32)
        term = np.zeros(e, bool)
        trunc = np.zeros(e, bool)
        over = np.zeros(e, bool)
        for i, g in enumerate(self._games):
            if g.done:  # auto-reset step: the action is ignored
                r = g.reset()
            else:
                r = g.step(actions[i])
            rew[i], term[i], trunc[i], over[i], raw[i] = r
        return Step(self._gather_obs(), rew, term, trunc, over, raw)

    def close(self) -> None:
        games, self._games = self._games, []
        for g in games:
            g.close()
