"""Your own environments: any gymnasium env, by id or by a function, on the gymnasium backend.

How an env is named (``--env``, ``fastasync.train(env=...)``, stored in config.json):

* ``"my.module:MyEnv-v0"``: ``my.module`` is imported (from the Python path or the working
  directory), which registers the id with ``gymnasium.register``, then
  ``gymnasium.make("MyEnv-v0")``. The part after the colon
  may also name a function of the module that returns an env (``"my.module:make_env"``).
* ``"MyEnv-v0"``: an id already in gymnasium's registry that fastasync does not list itself
  (registered by code that ran before, or by a package gymnasium loads).
* in the API, a function that returns a gymnasium env: it is stored as
  ``"module:qualname"``, so a run of an importable function can be loaded again by
  another process; a lambda or a function of ``__main__`` can be loaded only where it is
  defined (in the same process).

Each learner steps its batch of ``envs_per_thread`` envs through the gymnasium backend
(envpool's auto-reset semantics, see ``fastasync.envs``); the envs' own rewards and time
limits are used as they are (no clipping, no frame skip: one agent step is one frame).

What fastasync can train is decided in one place, :func:`check_spaces`:

* observations: a ``Box``. An image (uint8, ``(H, W, C)`` or ``(C, H, W)`` with C in 1, 3,
  4, or ``(H, W)``) goes to the conv torso as ``(C, H, W)``; anything else is flattened to
  a float32 vector for the MLP torso.
* actions: ``Discrete`` (any ``start``). A ``Box`` passes here and is refused, as for the
  built-in continuous envs, by the methods that act in discrete spaces only.
* ``Dict``, ``Tuple``, ``MultiDiscrete``, ``MultiBinary``, ... are refused with one line
  naming the space.

The one gymnasium env that ``fastasync.Policy.env()`` returns is built in ``single.py``.
"""

from __future__ import annotations

import importlib
import importlib.util

import numpy as np

from ..errors import ConfigError
from .base import EnvError, EnvInfo, PyBatch
from .families import catalog, family_of
from .classic import GymGame

SEP = ":"
_FACTORIES: dict = {}  # env functions given to the API in this process, by the name stored for them


def env_name(env) -> str:
    """The name a run stores for ``env``: an id as it is, a function as ``module:qualname``."""
    if isinstance(env, str):
        return env
    if callable(env):
        module = getattr(env, "__module__", None) or "__main__"
        qual = getattr(env, "__qualname__", None) or type(env).__qualname__
        name = f"{module}{SEP}{qual}"
        _FACTORIES[name] = env
        return name
    raise ConfigError(f"env must be an env id or a function that returns a gymnasium env, got {type(env).__name__}")


def is_custom(env_id: str, backend: str) -> bool:
    """Whether ``env_id`` is one of the user's envs (not one fastasync lists for ``backend``)."""
    if not isinstance(env_id, str):
        return False
    if SEP in env_id or env_id in _FACTORIES:
        return True
    if env_id.startswith("ALE/"):  # ale-py's raw Atari envs: fastasync's own Atari ids are the way
        return False
    if family_of(env_id) in ("classic", "mujoco", "doom", "car"):  # one of fastasync's own families, even
        return False  # where this backend lacks it (its own error says what to install)
    try:
        if env_id in catalog(backend):
            return False
    except EnvError:  # an unknown or missing backend: its own error says so
        return False
    if importlib.util.find_spec("gymnasium") is None:
        return False
    import gymnasium

    return env_id in gymnasium.registry


def _error(msg):
    return EnvError(msg)


def _factory(env_id: str):
    """A function ``f(**make_kwargs)`` that makes one raw env for ``env_id``."""
    if env_id in _FACTORIES:
        fn = _FACTORIES[env_id]
        return lambda **kw: fn()
    import gymnasium

    if SEP not in env_id:
        return lambda **kw: gymnasium.make(env_id, **kw)
    mod_name, _, name = env_id.partition(SEP)
    if not mod_name or not name:
        raise _error(f"--env {env_id!r}: expected module:EnvId (e.g. my_envs:Corridor-v0)")
    _with_working_dir_on_path()
    try:
        module = importlib.import_module(mod_name)
    except ModuleNotFoundError as exc:
        if exc.name and mod_name.startswith(exc.name):
            raise _error(f"--env {env_id}: there is no module {mod_name!r} to import "
                         "(installed, or on PYTHONPATH?)") from None
        raise _error(f"--env {env_id}: importing {mod_name} failed: ModuleNotFoundError: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - the user's module: any failure is a bad --env
        raise _error(f"--env {env_id}: importing {mod_name} failed: {type(exc).__name__}: {exc}") from None
    if name in gymnasium.registry:
        return lambda **kw: gymnasium.make(name, **kw)
    obj = module
    for part in name.split("."):
        obj = getattr(obj, part, None)
    if callable(obj):
        return lambda **kw: obj()
    if "<" in name or mod_name == "__main__":
        raise _error(f"--env {env_id}: a function defined in a script, in another function or as a lambda can be "
                     "loaded only by the process that trained with it; give fastasync.train an importable function "
                     "(module:function) or a registered env id")
    import difflib

    close = difflib.get_close_matches(name, list(gymnasium.registry), n=3, cutoff=0.6)
    raise _error(f"--env {env_id}: module {mod_name} registers no gymnasium id {name!r} and has no function of that "
                 f"name" + (f"; did you mean: {', '.join(close)}?" if close else ""))


def _with_working_dir_on_path():
    """The ``fastasync`` script's sys.path lacks the working directory (``python -m`` has it):
    add it last, so that ``--env my_envs:Id`` finds ``./my_envs.py`` and shadows nothing."""
    import os
    import sys

    cwd = os.getcwd()
    if "" not in sys.path and cwd not in sys.path:
        sys.path.append(cwd)


def _make_raw(env_id: str, render_mode=None):
    kw = {} if render_mode is None else {"render_mode": render_mode}
    factory = _factory(env_id)
    try:
        env = factory(**kw)
    except Exception as exc:  # noqa: BLE001 - the user's code: any failure is a bad --env
        raise _error(f"making {env_id} failed: {type(exc).__name__}: {exc}") from None
    if not all(hasattr(env, a) for a in ("reset", "step", "observation_space", "action_space")):
        raise _error(f"{env_id} made a {type(env).__name__}, not a gymnasium env")
    return env


def _space_name(space) -> str:
    text = str(space)
    return text if len(text) <= 60 else type(space).__name__


def check_spaces(env_id: str, obs_space, act_space) -> dict:
    """What fastasync makes of an env's spaces, or EnvError naming the space it cannot train.

    Returns ``obs_shape``, ``obs_dtype`` (as the learners see them), ``transform`` (raw
    observation -> that, or None), ``discrete``, ``num_actions``, ``action_shape`` and
    ``action_start`` (Discrete's ``start``, added to the net's action index).
    """
    from gymnasium import spaces

    if not isinstance(obs_space, spaces.Box):
        raise _error(f"{env_id} has a {_space_name(obs_space)} observation space; fastasync trains on Box "
                     "observations (a vector or an image) only")
    if isinstance(act_space, spaces.Discrete):
        act = dict(discrete=True, num_actions=int(act_space.n), action_shape=(), action_start=int(act_space.start))
    elif isinstance(act_space, spaces.Box):  # the Gaussian A3C; the Q methods refuse it (algorithms.check_discrete)
        ashape = tuple(act_space.shape)
        if not (np.all(np.isfinite(act_space.low)) and np.all(np.isfinite(act_space.high))):
            raise _error(f"{env_id} has an unbounded {_space_name(act_space)} action space; fastasync clips its "
                         "Gaussian policy's actions to the bounds, so they must be finite")
        low = tuple(float(x) for x in np.broadcast_to(act_space.low, ashape).ravel())
        high = tuple(float(x) for x in np.broadcast_to(act_space.high, ashape).ravel())
        act = dict(discrete=False, num_actions=0, action_shape=ashape, action_start=0, action_low=low, action_high=high)
    else:
        raise _error(f"{env_id} has a {_space_name(act_space)} action space; fastasync trains Discrete actions "
                     "(and Box, with the continuous-control methods) only")
    shape, dtype = tuple(obs_space.shape), np.dtype(obs_space.dtype)
    transform = None
    if dtype == np.uint8 and len(shape) == 3:  # an image: the conv torso reads (C, H, W)
        if shape[-1] in (1, 3, 4) and shape[0] not in (1, 3, 4):
            shape = (shape[2], shape[0], shape[1])
            transform = lambda o: np.ascontiguousarray(np.transpose(o, (2, 0, 1)))  # noqa: E731
        obs = dict(obs_shape=shape, obs_dtype=np.dtype(np.uint8))
    elif dtype == np.uint8 and len(shape) == 2:
        transform = lambda o: np.asarray(o)[None]  # noqa: E731
        obs = dict(obs_shape=(1, *shape), obs_dtype=np.dtype(np.uint8))
    else:  # a vector for the MLP torso
        n = int(np.prod(shape))
        if len(shape) != 1:
            transform = lambda o: np.asarray(o, np.float32).reshape(-1)  # noqa: E731
        obs = dict(obs_shape=(n,), obs_dtype=np.dtype(np.float32))
    return dict(obs, transform=transform, **act)


def prepared(env_id: str, render_mode=None):
    """One env for ``env_id``, its observations and actions as the learners see them."""
    env = _make_raw(env_id, render_mode)
    spec = check_spaces(env_id, env.observation_space, env.action_space)
    if spec["transform"] is None and spec["action_start"] == 0:
        return env
    from .wrappers import Prepared  # (gymnasium, imported when a user's env is first made)

    return Prepared(env, spec)


def env_info(env_id: str, backend: str):
    """EnvInfo of a user's env (EnvError if it cannot be trained)."""
    if backend != "gymnasium":
        raise _error(f"{env_id} is not an envpool env: your own envs run on the gymnasium backend "
                     "(--backend gymnasium, or auto)")
    env = _make_raw(env_id)
    try:
        s = check_spaces(env_id, env.observation_space, env.action_space)
    finally:
        try:
            env.close()
        except Exception:  # noqa: BLE001 - closing is best effort
            pass
    return EnvInfo(env_id, "gymnasium", s["obs_shape"], s["obs_dtype"], s["num_actions"], s["discrete"], 1, False,
                   s["action_shape"], "custom", s.get("action_low", ()), s.get("action_high", ()))


def make_env(env_id: str, num_envs: int, seed: int, backend: str):
    """A batch of ``num_envs`` of the user's envs (env ``i`` seeded ``seed + i``)."""
    info = env_info(env_id, backend)
    return PyBatch([GymGame(prepared(env_id), seed + i) for i in range(num_envs)], info, num_envs)
