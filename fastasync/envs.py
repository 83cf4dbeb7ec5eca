"""Environment batches for fastasync: one interface over two backends.

Backends
--------
``envpool`` (default on Linux)
    envpool's C++ Atari and classic-control environments, stepped synchronously
    (``batch_size == num_envs``) with ``num_threads`` worker threads. envpool
    releases the GIL while it steps.
``gymnasium`` (fallback)
    A pure-Python re-implementation of envpool's Atari environment
    (``envpool/atari/atari_env.h``) on top of ``ale_py.ALEInterface``, and plain
    ``gymnasium.make`` environments for classic control, all behind the same
    auto-reset logic. Slower, but it needs no envpool and no OpenCV. ale-py's
    multiplayer-only ROMs (0.12: Combat, Joust, MazeCraze, Warlords) are not offered:
    ALE has no single-player mode for them and would ``exit(1)`` loading one
    (``_ale_roms``). envpool does not ship them; asking either backend for one says so.

    ``ale_py.vector_env.AtariVectorEnv`` (ale-py 0.12) was checked and NOT used:
    with ``episodic_life=True`` it fully resets the game after every life loss
    (lives go back to 5 in Breakout) and it does not report the unclipped reward,
    so the true game score cannot be recovered. gymnasium's ``AtariPreprocessing``
    needs OpenCV and differs from envpool on life loss as well.

Atari preprocessing (both backends, as in the A3C paper)
--------------------------------------------------------
minimal action set; frame skip 4 with a max over the last two frames; gray
scale; area resize 210x160 -> 84x84; 4 stacked frames (oldest first), shape
(4, 84, 84) uint8; no sticky actions (repeat_action_probability = 0); at a game
reset, ``U{1..noop_max}`` no-ops, where one of them is replaced by FIRE for games
that have FIRE in their minimal action set (envpool's fire reset); episodes are
truncated after ``max_episode_frames // 4`` agent steps.

Step semantics (identical in both backends; verified against envpool 1.2.5)
--------------------------------------------------------------------------
* ``terminated``: the training episode ended and must not be bootstrapped:
  the real game ended, or (``episodic_life=True``, Atari) a life was lost.
* ``truncated``: time limit; bootstrap from V(s). envpool reports a step that
  is both a time-limit end and a terminal as truncated only.
* ``game_over``: the real, full game ended this step (real termination or
  truncation); the game's true score is final.
* ``reward``: training reward, sign-clipped to {-1, 0, 1} when ``reward_clip``
  (Atari only; classic-control rewards are never clipped).
* ``raw_reward``: unclipped reward; summed across all lives of a game it is the
  true game score.

Auto-reset: the step AFTER any done (terminated or truncated, including a
life-loss done under ``episodic_life``) is a reset step: the action passed to
it is ignored, and it returns the first observation of the next episode/life
with reward 0, raw_reward 0 and terminated/truncated/game_over all False. The
learner must mask that transition out of its targets.

What a reset step does after a *life loss* (envpool 1.2.5, measured): the game
is NOT reset. The emulator runs ``U{1..noop_max}`` no-op frames (FIRE replaces
one of them in FIRE games) without frame skip, then ONE new frame is pushed onto
the existing frame stack (the stack is not refilled), the lives counter stays
lowered, and envpool's ``elapsed_step`` does not advance. Only after a real game
over or a truncation does the reset step restart the game and fill all 4 stack
slots with the first frame. The gymnasium backend does exactly the same.
Frames counted by the caller are agent steps x ``frame_skip``; reset-step
no-ops are not counted (as in envpool).

Note that ``EnvBatch.reset()`` follows envpool too: it is meant to be called
once, right after ``make_env``; calling it again with ``episodic_life=True`` in
the middle of a game only performs the life-loss style reset described above.

Seeding: env ``i`` of a batch made with ``seed`` is seeded with ``seed + i`` in
both backends (deterministic per (seed, index), but the two backends do not
produce the same trajectories). Give different batches seeds at least
``num_envs`` apart.

The heavy imports (envpool, gymnasium, ale_py) happen inside functions only.
"""

from __future__ import annotations

import difflib
import functools
import importlib.util
import warnings
from dataclasses import dataclass

import numpy as np

__all__ = [
    "EnvError",
    "EnvInfo",
    "Step",
    "EnvBatch",
    "list_envs",
    "default_backend",
    "env_info",
    "make_env",
    "BACKENDS",
]

BACKENDS = ("envpool", "gymnasium")

# Classic-control ids we support, whenever the backend has them.
_CLASSIC = (
    "CartPole-v0",
    "CartPole-v1",
    "Acrobot-v1",
    "MountainCar-v0",
    "MountainCarContinuous-v0",
    "Pendulum-v0",
    "Pendulum-v1",
)

_ATARI_FRAME_SKIP = 4
_STACK = 4
_SIZE = 84

_INSTALL = {
    "envpool": "pip install envpool",
    "gymnasium": 'pip install "gymnasium>=1.0" "ale-py>=0.9"',
}


class EnvError(ValueError):
    """A bad environment request: unknown id/backend, bad argument, missing package."""


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


def _import(backend: str):
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


def default_backend(env_id: str | None = None) -> str:
    """``"envpool"`` if it is installed (and has ``env_id``), else ``"gymnasium"``. Without
    ``env_id`` no heavy import; the user's own envs run on gymnasium (``custom_env``)."""
    if importlib.util.find_spec("envpool") is not None:
        if env_id is None or not _custom().is_custom(env_id, "envpool"):
            return "envpool"
    return "gymnasium"


def _custom():
    from . import custom_env

    return custom_env


@functools.lru_cache(maxsize=None)
def _catalog(backend: str) -> dict:
    """env_id -> ("atari", rom/task name) or ("classic", None)."""
    out: dict = {}
    if backend == "envpool":
        envpool = _import(backend)
        from envpool.registration import registry

        have = set(envpool.list_all_envs())
        for env_id in sorted(have):
            entry = registry.specs.get(env_id)
            if entry is None:
                continue
            if entry[0] == "envpool.atari" and env_id.endswith("-v5"):
                out[env_id] = ("atari", entry[2].get("task"))
        for env_id in _CLASSIC:
            if env_id in have:
                out[env_id] = ("classic", None)
    else:
        gymnasium, _ = _import(backend)
        for env_id, rom in _ale_roms()[0].items():
            out[env_id] = ("atari", rom)
        for env_id in _CLASSIC:
            if env_id in gymnasium.registry:
                out[env_id] = ("classic", None)
    return out


@functools.lru_cache(maxsize=None)
def _ale_roms() -> tuple:
    """ale-py's Atari ROMs split by ALE itself: ``({env_id: rom}, {env_id: rom})``, the
    single-player games and the multiplayer-only ones.

    ``ALEInterface.loadROM`` of a ROM that has no single-player mode in ALE (ale-py 0.12:
    Combat, Joust, MazeCraze, Warlords) prints "Attempt to wrap ROM ... failed" and calls
    ``exit(1)``: no exception, the process is gone. ale-py's own gymnasium registration
    (``register_v5_envs``) skips those four for that reason, and the static
    ``ALEInterface.isSupportedROM(path)`` answers the question loadROM would (ALE's
    single-player game table, looked up by the file's MD5) without loading anything: the
    game's name, or None. ``get_rom_path`` has already checked the file against ale-py's
    MD5 list, so None here means multiplayer only. A ROM that cannot be read (missing or
    altered under ``ALE_ROMS_DIR``) is in neither dict.
    """
    import ale_py
    from ale_py.registration import rom_id_to_name

    single, multi = {}, {}
    for rom in ale_py.roms.get_all_rom_ids():
        try:
            path = ale_py.roms.get_rom_path(rom)
            if path is None:
                continue
            playable = ale_py.ALEInterface.isSupportedROM(str(path)) is not None
        except (OSError, RuntimeError):
            continue
        (single if playable else multi)[f"{rom_id_to_name(rom)}-v5"] = rom
    return single, multi


def _multiplayer_only(env_id: str) -> str | None:
    """The ROM id if ``env_id`` is one of ale-py's multiplayer-only games, else None (also
    without ale-py: envpool has no such games at all)."""
    if importlib.util.find_spec("ale_py") is None:
        return None
    try:
        return _ale_roms()[1].get(env_id)
    except Exception:  # noqa: BLE001 - only a better error message is at stake
        return None


def list_envs(backend: str = "envpool") -> list[str]:
    """Supported ids: Atari ``*-v5`` and classic control, sorted."""
    return sorted(_catalog(backend))


def _lookup(env_id: str, backend: str) -> tuple:
    cat = _catalog(backend)
    if env_id not in cat:
        rom = _multiplayer_only(env_id)
        if rom is not None:
            raise EnvError(
                f"{env_id} is a multiplayer-only Atari game (ALE has no single-player mode for its ROM "
                f"{rom!r}); fastasync trains single-player games only, see `fastasync envs`"
            )
        close = difflib.get_close_matches(env_id, list(cat), n=5, cutoff=0.6)
        hint = f"; did you mean: {', '.join(close)}?" if close else (
            "; see `fastasync envs` for the list"
        )
        raise EnvError(f"unknown env {env_id!r} for backend {backend}{hint}")
    return cat[env_id]


def _space_info(space) -> tuple:
    """(discrete, num_actions, action_shape) of a gym(nasium) action space."""
    n = getattr(space, "n", None)
    if n is not None and not getattr(space, "shape", ()):
        return True, int(n), ()
    return False, 0, tuple(space.shape)


def _envpool_spaces(env_id: str) -> tuple:
    """(observation_space, action_space) of an envpool id."""
    envpool = _import("envpool")
    with warnings.catch_warnings():  # envpool's float64 Box bounds -> float32 warnings
        warnings.simplefilter("ignore", UserWarning)
        spec = envpool.make_spec(env_id)
        return spec.observation_space, spec.action_space


@functools.lru_cache(maxsize=None)
def env_info(env_id: str, backend: str = "envpool") -> EnvInfo:
    """Validate ``env_id`` (EnvError if unknown) and describe it."""
    if _custom().is_custom(env_id, backend):
        return _custom().env_info(env_id, backend)
    kind, rom = _lookup(env_id, backend)
    if kind == "atari":
        if backend == "envpool":
            n = int(_envpool_spaces(env_id)[1].n)
        else:
            n = len(_new_ale(rom, 0).getMinimalActionSet())
        return EnvInfo(
            env_id, backend, (_STACK, _SIZE, _SIZE), np.dtype(np.uint8), n, True,
            _ATARI_FRAME_SKIP, True, (),
        )
    if backend == "envpool":
        obs_space, act_space = _envpool_spaces(env_id)
    else:
        gymnasium, _ = _import(backend)
        env = gymnasium.make(env_id)
        obs_space, act_space = env.observation_space, env.action_space
        env.close()
    discrete, n, ashape = _space_info(act_space)
    return EnvInfo(
        env_id, backend, tuple(obs_space.shape), np.dtype(np.float32), n, discrete, 1,
        False, ashape,
    )


# --------------------------------------------------------------------------- batch API


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


def make_env(
    env_id: str,
    num_envs: int,
    seed: int,
    backend: str = "envpool",
    *,
    episodic_life: bool = True,
    reward_clip: bool = True,
    noop_max: int = 30,
    max_episode_frames: int = 108_000,
    num_threads: int = 1,
    cpu: int | None = None,
) -> EnvBatch:
    """Make a batch of ``num_envs`` envs; see the module docstring for semantics.

    ``episodic_life``, ``reward_clip``, ``noop_max`` and ``max_episode_frames``
    apply to Atari only (classic control uses the env's own time limit). ``cpu``: pin
    envpool's worker threads to CPUs ``cpu .. cpu + num_threads - 1`` (the learner that
    steps this batch is pinned to ``cpu`` too; fastasync.placement); the Python backend
    steps in the caller's thread and ignores it.
    """
    if not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
        raise EnvError(f"num_envs must be an integer >= 1, got {num_envs!r}")
    if not isinstance(num_threads, (int, np.integer)) or num_threads < 1:
        raise EnvError(f"num_threads must be an integer >= 1, got {num_threads!r}")
    if not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**31 - int(num_envs):
        raise EnvError(f"seed must be an integer in [0, 2**31 - num_envs), got {seed!r}")
    if _custom().is_custom(env_id, backend):
        return _custom().make_env(env_id, int(num_envs), int(seed), backend)
    info = env_info(env_id, backend)
    kind, rom = _lookup(env_id, backend)
    if info.is_atari:
        if noop_max < 1:
            raise EnvError(f"noop_max must be >= 1 (reset always runs >= 1 no-op/FIRE), got {noop_max}")
        max_steps = int(max_episode_frames) // _ATARI_FRAME_SKIP
        if max_steps < 1:
            raise EnvError(
                f"max_episode_frames must be >= {_ATARI_FRAME_SKIP}, got {max_episode_frames}"
            )
    num_envs, seed, num_threads = int(num_envs), int(seed), int(num_threads)
    if backend == "envpool":
        envpool = _import(backend)
        kwargs = dict(
            env_type="gymnasium", num_envs=num_envs, batch_size=num_envs, seed=seed,
            num_threads=num_threads,
        )
        if cpu is not None:
            kwargs["thread_affinity_offset"] = int(cpu)
        if info.is_atari:
            kwargs.update(
                episodic_life=bool(episodic_life), reward_clip=bool(reward_clip),
                noop_max=int(noop_max), max_episode_steps=max_steps,
                repeat_action_probability=0.0, full_action_space=False,
                use_fire_reset=True, stack_num=_STACK, frame_skip=_ATARI_FRAME_SKIP,
                img_height=_SIZE, img_width=_SIZE, gray_scale=True,
            )
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                env = envpool.make(env_id, **kwargs)
                _ = (env.observation_space, env.action_space)  # built and cached here, quietly
        except Exception as e:  # noqa: BLE001
            raise EnvError(f"envpool could not make {env_id!r}: {e}") from e
        return _EnvpoolBatch(env, info, num_envs)
    if info.is_atari:
        games = [
            _AleGame(rom, seed + i, int(noop_max), bool(episodic_life), bool(reward_clip), max_steps)
            for i in range(num_envs)
        ]
    else:
        gymnasium, _ = _import(backend)
        games = [_GymGame(gymnasium.make(env_id), seed + i) for i in range(num_envs)]
    return _PyBatch(games, info, num_envs)


# --------------------------------------------------------------------------- envpool


class _EnvpoolBatch(EnvBatch):
    """envpool's batch, stepped through its C++ ``_send``/``_recv`` when it can be.

    envpool's public ``send``/``recv`` wrap the C++ calls in Python that rebuilds a config
    dict, flattens and unflattens the state tree and recomputes ``terminated`` on every
    step: 0.25-0.35 ms of held GIL per step on the development machine, which N learner
    threads must share (``bench/gil_share.py``; bench/RESULTS.md, 2026-11-27 10:50). The direct
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
        if env is not None and hasattr(env, "close"):
            try:
                env.close()
            except Exception:  # noqa: BLE001 - closing is best effort
                pass


# --------------------------------------------------------------------------- gymnasium / ale_py


def _new_ale(rom: str, seed: int):
    import ale_py

    ale_py.ALEInterface.setLoggerMode(ale_py.LoggerMode.Error)
    ale = ale_py.ALEInterface()
    ale.setInt("random_seed", int(seed))
    ale.setFloat("repeat_action_probability", 0.0)
    ale.setInt("max_num_frames_per_episode", 0)
    ale.loadROM(str(ale_py.roms.get_rom_path(rom)))
    return ale


def _area_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) weights of an area (box-filter) downscale, like cv2.INTER_AREA."""
    scale = n_in / n_out
    w = np.zeros((n_out, n_in), np.float64)
    for o in range(n_out):
        lo, hi = o * scale, (o + 1) * scale
        for i in range(int(np.floor(lo)), min(int(np.ceil(hi)), n_in)):
            w[o, i] = max(0.0, min(hi, i + 1) - max(lo, i))
    w /= w.sum(axis=1, keepdims=True)
    return w.astype(np.float32)


@functools.lru_cache(maxsize=None)
def _resize_mats() -> tuple:
    return _area_matrix(210, _SIZE), np.ascontiguousarray(_area_matrix(160, _SIZE).T)


class _AleGame:
    """One Atari game, a line-by-line port of envpool's AtariEnv (atari_env.h)."""

    def __init__(self, rom, seed, noop_max, episodic_life, reward_clip, max_steps):
        self.ale = _new_ale(rom, seed)
        self.actions = list(self.ale.getMinimalActionSet())
        self.fire_reset = any(int(a.value) == 1 for a in self.actions)
        self.rng = np.random.default_rng(seed)
        self.noop_max = noop_max
        self.episodic_life = episodic_life
        self.reward_clip = reward_clip
        self.max_steps = max_steps
        self.elapsed = max_steps + 1
        self.lives = 0
        self.done = True
        self.maxpool = [np.zeros((210, 160), np.uint8), np.zeros((210, 160), np.uint8)]
        self.stack = np.zeros((_STACK, _SIZE, _SIZE), np.uint8)  # oldest first
        self.wy, self.wxt = _resize_mats()

    def _push(self, push_all: bool, maxpool: bool) -> None:
        src = self.maxpool[0]
        if maxpool:
            np.maximum(src, self.maxpool[1], out=src)
        img = self.wy @ src.astype(np.float32) @ self.wxt
        frame = np.clip(np.rint(img), 0, 255).astype(np.uint8)
        if push_all:
            self.stack[:] = frame
        else:
            self.stack[:-1] = self.stack[1:]
            self.stack[-1] = frame

    def reset(self) -> tuple:
        ale = self.ale
        noop = int(self.rng.integers(0, self.noop_max)) + 1 - int(self.fire_reset)
        push_all = False
        if not self.episodic_life or ale.game_over() or self.elapsed >= self.max_steps:
            ale.reset_game()
            self.elapsed = 0
            push_all = True
        for _ in range(noop):
            ale.act(0)
            if ale.game_over():
                ale.reset_game()
                push_all = True
        if self.fire_reset:
            ale.act(1)
        ale.getScreenGrayscale(self.maxpool[0])
        self._push(push_all, False)
        self.done = False
        self.lives = ale.lives()
        return 0.0, False, False, False, 0.0

    def step(self, action: int) -> tuple:
        """-> (reward, terminated, truncated, game_over, raw_reward)."""
        ale = self.ale
        reward = 0.0
        done = False
        skip = _ATARI_FRAME_SKIP
        a = self.actions[action]
        while skip > 0 and not done:
            reward += ale.act(a)
            done = ale.game_over()
            if skip <= 2:
                ale.getScreenGrayscale(self.maxpool[2 - skip])
            skip -= 1
        self._push(False, skip == 0)
        self.elapsed += 1
        real_end = bool(ale.game_over())
        done = done or self.elapsed >= self.max_steps
        lives = ale.lives()
        if self.episodic_life and 0 < lives < self.lives:
            done = True
        self.lives = lives
        self.done = done
        trunc = done and self.elapsed >= self.max_steps
        term = done and not trunc
        raw = float(reward)
        if self.reward_clip:
            reward = float(np.sign(reward))
        return reward, term, trunc, (real_end and term) or trunc, raw

    def obs(self) -> np.ndarray:
        return self.stack

    def close(self) -> None:
        self.ale = None


class _GymGame:
    """One gymnasium env behind the same reset()/step() protocol as _AleGame."""

    def __init__(self, env, seed: int):
        self.env = env
        self.seed = seed
        self.first = True
        self.done = True
        self._obs = None

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
        term, trunc = bool(term), bool(trunc)
        if term and trunc:  # envpool reports such a step as truncated only
            term = False
        self.done = term or trunc
        return float(r), term, trunc, self.done, float(r)

    def obs(self) -> np.ndarray:
        return self._obs

    def close(self) -> None:
        self.env.close()


class _PyBatch(EnvBatch):
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
