"""Environment batches for fastasync: one interface over two backends.

One module per env family behind one small spec (``EnvInfo``: observation shape and dtype,
action space, frames per agent step): ``atari.py`` (ALE ROMs, the Python port of envpool's
Atari env), ``classic.py`` (classic control; one gymnasium env behind the Python batch),
``mujoco.py`` (MuJoCo physics tasks), ``doom.py`` (ViZDoom), ``car.py`` (CarRacing-v3 and its
five-action variant: the action repeat across auto-reset is described there), ``base.py`` (the spec, the batch interface, envpool's
batch and the Python batch). This module finds an id's family and makes its batch;
backends differ in how they step, never in what the learner sees.

Backends
--------
``envpool`` (default on Linux)
    envpool's C++ Atari, classic-control and MuJoCo environments, stepped synchronously
    (``batch_size == num_envs``) with ``num_threads`` worker threads. envpool
    releases the GIL while it steps.
``gymnasium`` (fallback)
    A pure-Python re-implementation of envpool's Atari environment
    (``envpool/atari/atari_env.h``) on top of ``ale_py.ALEInterface``, and plain
    ``gymnasium.make`` environments for classic control and MuJoCo (the ``mujoco``
    package), all behind the same
    auto-reset logic. Slower, but it needs no envpool and no OpenCV. ale-py's
    multiplayer-only ROMs (0.12: Combat, Joust, MazeCraze, Warlords) are not offered:
    ALE has no single-player mode for them and would ``exit(1)`` loading one
    (``ale_roms``). envpool does not ship them; asking either backend for one says so.

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

import functools
import importlib.util
import warnings

import numpy as np

from . import atari, car, classic, custom, doom, mujoco
from .base import (
    BACKENDS,
    EnvBatch,
    EnvError,
    EnvInfo,
    EnvpoolBatch,
    PyBatch,
    Step,
    envpool_spaces,
    import_backend,
    last_frame,
    space_info,
)
from .families import CLASSIC_BOX_TASKS, FAMILIES, Family, catalog, family, family_of, has_box_actions, lookup
from .mujoco import gymnasium_has_mujoco

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
    "view_options",
    "screen_fps",
]


@functools.lru_cache(maxsize=None)
def _doom_actions(env_id: str) -> int:
    """Size of the combined action set of a ViZDoom scenario (the vizdoom package's .cfg)."""
    import os

    import vizdoom as vzd

    g = vzd.DoomGame()
    g.load_config(os.path.join(vzd.scenarios_path, doom.DOOM[env_id].cfg + ".cfg"))
    return len(doom.action_table([int(b) for b in g.get_available_buttons()]))


def list_envs(backend: str = "envpool") -> list[str]:
    """Supported ids: Atari ``*-v5``, classic control, MuJoCo, ViZDoom and CarRacing, sorted."""
    return sorted(catalog(backend))


def default_backend(env_id: str | None = None) -> str:
    """``"envpool"`` if it is installed (and has ``env_id``), else ``"gymnasium"``. Without
    ``env_id`` no heavy import; the user's own envs run on gymnasium (``envs/custom.py``)."""
    if importlib.util.find_spec("envpool") is not None:
        if env_id is None or not custom.is_custom(env_id, "envpool"):
            return "envpool"
    return "gymnasium"


def view_options(env_cfg) -> dict:
    """The options of an EnvConfig that shape what the agent sees, as keyword arguments of
    env_info and make_env: CarRacing's frame skip and grey-scale, ViZDoom's status bar; {}
    for other families. Whatever plays a run's policy (eval, the policy's gymnasium env)
    passes them, so that it sees what the net learned on."""
    if env_cfg.env in car.CAR:
        return dict(car_frame_skip=env_cfg.car_frame_skip, car_grey=env_cfg.car_grey)
    if env_cfg.env in doom.DOOM:
        return dict(doom_hud=env_cfg.doom_hud)
    return {}


def env_options(env_cfg) -> dict:
    """The keyword arguments of ``make_env`` that an EnvConfig sets (every family's)."""
    return dict(
        backend=env_cfg.backend,
        episodic_life=env_cfg.episodic_life,
        reward_clip=env_cfg.reward_clip,
        noop_max=env_cfg.noop_max,
        max_episode_frames=env_cfg.max_episode_frames,
        doom_reward=env_cfg.doom_reward,
        **view_options(env_cfg),
    )


# agent steps of random play over which --frame-center auto averages the frames
FRAME_MEAN_STEPS = 256


def frame_mean(env_cfg, seed: int, steps: int = FRAME_MEAN_STEPS) -> float:
    """The mean of x/255 over the frames of ``steps`` agent steps of one env playing uniformly
    random actions (seeded by ``seed``), to 3 decimals: what ``--frame-center auto`` subtracts
    (config.resolve); 0 for vector observations, which no conv net reads."""
    info = env_info(env_cfg.env, env_cfg.backend, **view_options(env_cfg))
    if info.vector_obs:
        return 0.0
    rng = np.random.default_rng(seed)
    low, high = np.asarray(info.action_low, np.float32), np.asarray(info.action_high, np.float32)
    total = 0.0
    with make_env(env_cfg.env, 1, seed=seed % 2**30, **env_options(env_cfg)) as env:
        obs = env.reset()
        for _ in range(steps):
            total += float(obs.mean())
            if info.discrete:
                action = rng.integers(0, info.num_actions, 1).astype(np.int32)
            else:
                action = rng.uniform(low, high).astype(np.float32).reshape(1, *info.action_shape)
            obs = env.step(action).obs
    return round(total / steps / 255.0, 3)


@functools.lru_cache(maxsize=None)
def env_info(env_id: str, backend: str = "envpool", car_frame_skip: int = car.FRAME_SKIP,
             car_grey: bool = True, doom_hud: bool = False) -> EnvInfo:
    """Validate ``env_id`` (EnvError if unknown) and describe it. ``car_*``: CarRacing's
    action repeat and grey-scale (fastasync/envs/car.py); ``doom_hud``: ViZDoom's status bar,
    which changes no shape (accepted so that ``view_options`` fit both); other envs ignore them."""
    if custom.is_custom(env_id, backend):
        return custom.env_info(env_id, backend)
    kind, rom = lookup(env_id, backend)
    if kind == "car":
        return car.info(env_id, backend, car_frame_skip, car_grey)
    if kind == "atari":
        if backend == "envpool":
            n = int(envpool_spaces(env_id)[1].n)
        else:
            n = len(atari.new_ale(rom, 0).getMinimalActionSet())
        return EnvInfo(
            env_id, backend, (atari.STACK, atari.SIZE, atari.SIZE), np.dtype(np.uint8), n, True,
            atari.FRAME_SKIP, True, (), "atari",
        )
    if kind == "doom":
        if backend == "envpool":
            envpool = import_backend(backend)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                n = int(envpool.make_spec(env_id, **doom.envpool_kwargs()).action_space.n)
        else:
            n = _doom_actions(env_id)
        return EnvInfo(
            env_id, backend, (doom.STACK * 3, doom.SIZE, doom.SIZE), np.dtype(np.uint8), n, True,
            doom.FRAME_SKIP, False, (), "doom",
        )
    if backend == "envpool":
        obs_space, act_space = envpool_spaces(env_id)
    else:
        gymnasium, _ = import_backend(backend)
        try:
            with warnings.catch_warnings():  # gymnasium's "v4 is out of date" for the MuJoCo ids
                warnings.simplefilter("ignore", DeprecationWarning)
                env = gymnasium.make(env_id)
        except Exception as e:  # noqa: BLE001 - e.g. gymnasium's Pusher-v4 refuses mujoco >= 3
            raise EnvError(f"gymnasium could not make {env_id!r}: {e}") from e
        obs_space, act_space = env.observation_space, env.action_space
        env.close()
    discrete, n, ashape = space_info(act_space)
    low = high = ()
    if not discrete:
        low = tuple(float(x) for x in np.broadcast_to(act_space.low, ashape).ravel())
        high = tuple(float(x) for x in np.broadcast_to(act_space.high, ashape).ravel())
    return EnvInfo(
        env_id, backend, tuple(obs_space.shape), np.dtype(np.float32), n, discrete, 1,
        False, ashape, kind, low, high,
    )


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
    doom_reward: str = "scenario",
    doom_hud: bool = False,
    car_frame_skip: int = car.FRAME_SKIP,
    car_grey: bool = True,
    car_max_steps: int = car.MAX_ENV_STEPS,
    screen=None,
) -> EnvBatch:
    """Make a batch of ``num_envs`` envs; see the module docstring for semantics.

    ``episodic_life``, ``reward_clip``, ``noop_max`` and ``max_episode_frames``
    apply to Atari only (classic control and MuJoCo use the env's own time limit). ``cpu``: pin
    envpool's worker threads to CPUs ``cpu .. cpu + num_threads - 1`` (the learner that
    steps this batch is pinned to ``cpu`` too; fastasync.placement); the Python backend
    steps in the caller's thread and ignores it. ``car_frame_skip``, ``car_grey``: CarRacing's
    action repeat and grey-scale; ``car_max_steps``: its time limit in env steps (the env's
    own 1,000; tests shorten it). ``reward_clip`` clips CarRacing's summed reward to [-1, 1].
    ``doom_reward``, ``doom_hud``: ViZDoom's training reward and status bar (fastasync.envs.doom).
    ``screen``: a video's hook (fastasync.video; the gymnasium backend only, fastasync's own
    families): called with env 0's RGB screen, (H, W, 3) uint8, a fresh array, after every frame
    of its agent steps (``screen_fps``: Atari's emulator frames, ViZDoom's tics, CarRacing's env
    steps, one per step elsewhere), never in reset steps; the other envs are made as without it.
    """
    if not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
        raise EnvError(f"num_envs must be an integer >= 1, got {num_envs!r}")
    if not isinstance(num_threads, (int, np.integer)) or num_threads < 1:
        raise EnvError(f"num_threads must be an integer >= 1, got {num_threads!r}")
    if not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**31 - int(num_envs):
        raise EnvError(f"seed must be an integer in [0, 2**31 - num_envs), got {seed!r}")
    if custom.is_custom(env_id, backend):
        if screen is not None:
            raise EnvError(f"videos show the screens of fastasync's own env families; {env_id} is your own env")
        return custom.make_env(env_id, int(num_envs), int(seed), backend)
    if screen is not None and backend != "gymnasium":
        raise EnvError(f"a video's screens come from the gymnasium backend, not {backend}")
    info = env_info(env_id, backend, car_frame_skip, car_grey)
    kind, rom = lookup(env_id, backend)
    if kind == "car" and (isinstance(car_max_steps, bool) or not isinstance(car_max_steps, (int, np.integer))
                          or car_max_steps < 1):
        raise EnvError(f"car_max_steps must be a whole number >= 1, got {car_max_steps!r}")
    if doom_reward not in ("scenario", "envpool"):
        raise EnvError(f"doom_reward must be 'scenario' or 'envpool', got {doom_reward!r}")
    if kind == "doom" and doom_reward == "envpool" and backend != "envpool":
        raise EnvError("doom_reward 'envpool' (envpool's shaping) needs the envpool backend")
    if info.is_atari:
        if noop_max < 1:
            raise EnvError(f"noop_max must be >= 1 (reset always runs >= 1 no-op/FIRE), got {noop_max}")
        max_steps = int(max_episode_frames) // atari.FRAME_SKIP
        if max_steps < 1:
            raise EnvError(
                f"max_episode_frames must be >= {atari.FRAME_SKIP}, got {max_episode_frames}"
            )
    num_envs, seed, num_threads = int(num_envs), int(seed), int(num_threads)
    if backend == "envpool":
        envpool = import_backend(backend)
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
                use_fire_reset=True, stack_num=atari.STACK, frame_skip=atari.FRAME_SKIP,
                img_height=atari.SIZE, img_width=atari.SIZE, gray_scale=True,
            )
        elif kind == "doom":
            kwargs.update(doom.envpool_kwargs(env_id if doom_hud else None))
        elif kind == "car":
            kwargs.update(car.envpool_kwargs(car_max_steps))
            env_id = car.ENV
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                env = doom.make_watched(envpool, env_id, kwargs) if kind == "doom" else envpool.make(env_id, **kwargs)
                _ = (env.observation_space, env.action_space)  # built and cached here, quietly
        except Exception as e:  # noqa: BLE001
            raise EnvError(f"envpool could not make {env_id!r}: {e}") from e
        if kind == "car":
            return car.CarEnvpoolBatch(env, info, num_envs, bool(reward_clip))
        if kind == "doom":
            return doom.envpool_batch(EnvpoolBatch)(
                env, info, num_envs, doom.DOOM[env_id], doom_reward == "envpool", bool(reward_clip)
            )
        return EnvpoolBatch(env, info, num_envs)
    if kind == "car":
        games = [car.CarGame(info, seed + i, bool(reward_clip), int(car_max_steps), render=screen is not None and i == 0)
                 for i in range(num_envs)]
    elif kind == "doom":
        games = [doom.DoomGame(env_id, seed + i, False, bool(reward_clip), bool(doom_hud)) for i in range(num_envs)]
    elif info.is_atari:
        games = [
            atari.AleGame(rom, seed + i, int(noop_max), bool(episodic_life), bool(reward_clip), max_steps)
            for i in range(num_envs)
        ]
    else:
        gymnasium, _ = import_backend(backend)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            games = [classic.GymGame(gymnasium.make(env_id, **({"render_mode": "rgb_array"}
                                                             if screen is not None and i == 0 else {})), seed + i)
                     for i in range(num_envs)]
    if screen is not None:
        games[0].screen = screen
    return PyBatch(games, info, num_envs)


def screen_fps(env_id: str) -> float:
    """Frames per second of the screens ``make_env(screen=...)`` shows, the game's own speed:
    the family's ``fps`` (Atari 60 emulator frames, ViZDoom 35 tics, CarRacing 50 env steps a
    second); classic control and MuJoCo, one screen per env step: the env's
    ``metadata["render_fps"]`` (CartPole 50, HalfCheetah-v4 20, Hopper-v4 125)."""
    fam = family(env_id)
    if fam.name in ("classic", "mujoco"):
        gymnasium, _ = import_backend("gymnasium")
        from gymnasium.envs.registration import load_env_creator

        try:
            fps = getattr(load_env_creator(gymnasium.spec(env_id).entry_point), "metadata", {}).get("render_fps")
        except Exception:  # noqa: BLE001 - not registered or not importable: the family's rate
            fps = None
        if fps:
            return float(fps)
    return float(fam.fps)

