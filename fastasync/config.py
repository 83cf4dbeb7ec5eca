"""Run configuration: one frozen dataclass per concern, paper defaults, validation.

Defaults are those of Mnih et al. (2016) for A3C on Atari: t_max 5, gamma 0.99, entropy
0.01, shared RMSProp (alpha 0.99) with lr 7e-4 annealed linearly to 0, grad-norm clip 40,
rewards clipped to [-1, 1] and end of life as episode end, for training only. RMSProp's eps
is 1e-5 (as in OpenAI baselines' A2C, same lr, alpha and t_max), not 0.1: with eps = 0.1
the steps are proportional to the gradient and a thread averaging its 8 envs moved 8x less
per frame than the paper's one-env threads (docs/families.md#rmsprop-epsilon).
Every field's docstring doubles as its ``--help`` text. Derived values (total threads when
0 is given, the run dir name) are computed, not configured.
"""

from __future__ import annotations

import dataclasses
import math
import operator
import os
import re
import time
from dataclasses import dataclass, field, fields

from .errors import CheckpointError, ConfigError

ALGOS = ("a3c", "a3c-lstm", "nstep-q", "onestep-q", "onestep-sarsa")


@dataclass(frozen=True)
class EnvConfig:
    env: str = "Pong-v5"
    """environment id (Atari *-v5 or classic control, e.g. CartPole-v1); see `fastasync envs`"""
    backend: str = "auto"
    """env backend: envpool (fast, Linux), gymnasium (ale-py fallback) or auto"""
    envs_per_thread: int = 8
    """envs each learner thread steps as one batch"""
    episodic_life: bool = True
    """end a training episode at a life loss (scores still count whole games)"""
    reward_clip: bool = True
    """clip training rewards to [-1, 1] (scores are always unclipped)"""
    noop_max: int = 30
    """up to this many no-op actions at the start of every game"""
    max_episode_frames: int = 108_000
    """a game is truncated after this many emulator frames (30 minutes of play)"""
    obs_norm: bool = False
    """vector observations: normalise by running mean and std (all learners' statistics, saved in checkpoints)"""
    reward_scale: float = 1.0
    """multiply training rewards by this (scores stay unscaled)"""
    doom_reward: str = "scenario"
    """ViZDoom: train on the scenario's own reward (scenario) or on envpool's shaping of game variables (envpool)"""
    doom_hud: bool = False
    """ViZDoom: render Doom's status bar (health, armour, the face) at the bottom of the screen, as a player sees it"""
    car_frame_skip: int = 4
    """CarRacing: repeat each action for this many env steps (frames = agent steps x this)"""
    car_grey: bool = True
    """CarRacing: grey-scale frames (4x96x96); false keeps RGB (12x96x96)"""


@dataclass(frozen=True)
class AlgoConfig:
    algo: str = "a3c"
    """learning method: a3c, a3c-lstm, nstep-q, onestep-q or onestep-sarsa"""
    t_max: int = 5
    """agent steps per env between updates (n of the n-step return)"""
    gamma: float = 0.99
    """discount factor"""
    entropy: float = 0.01
    """entropy bonus beta"""
    value_coef: float = 0.5
    """weight of the value loss (R - V)^2"""
    hidden: tuple = (64, 64)
    """hidden layer sizes of the MLP used for vector observations"""
    lstm_size: int = 256
    """LSTM cells of a3c-lstm (after the fc layer, or after the MLP torso)"""
    bounded_mean: bool = False
    """Gaussian policy (Box actions): the mean is b tanh(m / b), b the larger magnitude of each action dimension's bounds: m near 0, and never farther out than b (a symmetric bound itself; within [-1, 1] for a [0, 1] dimension) where a linear mean can run off to any distance past a bound (off: the paper's linear mean)"""
    capg: bool = False
    """Gaussian policy: score a sample the env got clipped to a bound by the probability of that side of the bound, not by its density (clipped action policy gradient, Fujita & Maeda 2018; off: the paper's density)"""
    frame_center: float = 0.0
    """pixel envs: the net sees its frames as x/255 - frame_center, a number in [0, 1] or auto: the mean of x/255 over 256 steps of random play at the start of a run (config.json records the number; 0: the paper's x/255)"""
    target_update_frames: int = 40_000
    """Q methods: copy the shared parameters to the target network every this many frames"""
    eps_anneal_frames: int = 4_000_000
    """Q methods: frames over which epsilon anneals from 1 to each thread's final epsilon"""


@dataclass(frozen=True)
class OptimConfig:
    lr: float = 7e-4
    """initial learning rate, annealed linearly to 0 over the run"""
    lr_warmup_frames: int = 0
    """frames over which the learning rate first ramps linearly from 0 up to its annealed value (0: none, the paper)"""
    rms_alpha: float = 0.99
    """shared RMSProp decay"""
    rms_eps: float = 1e-5
    """shared RMSProp epsilon (inside the square root)"""
    grad_clip: float = 40.0
    """global gradient-norm clip (0 disables)"""


@dataclass(frozen=True)
class RunConfig:
    frames: int = 40_000_000
    """emulator frames to train for (agent steps x frame skip), e.g. 10M, 500k"""
    threads: int = 0
    """actor-learner threads  [default: the CPUs this process may use (affinity, CPU quota)]"""
    seed: int = 0
    """run seed (params, envs, per-thread generators)"""
    run_dir: str = ""
    """run directory  [default: runs/<env>-<algo>-<timestamp>]"""
    checkpoint_every_s: float = 300.0
    """seconds between checkpoints (one is always written at the end)"""
    progress_every_s: float = 2.0
    """seconds between progress lines"""
    pin_threads: bool = True
    """pin each learner thread and its envpool worker to one CPU (Linux, threads <= CPUs)"""
    tensorboard: bool = False
    """write TensorBoard event files into the run directory (needs the tensorboard package: pip install -e ".[tb]")"""
    video_every: int = 0
    """record one game of the current policy every this many frames (e.g. 1M) into RUN_DIR/videos/frames-<N>.mp4, and TensorBoard with --tensorboard; 0: off (needs pip install -e ".[video]")"""
    nodes: int = 1
    """with --ray: node actors, each running --threads learner threads on its own copy of the parameters"""
    sync_every_updates: int = 20
    """with --ray: a node exchanges its parameter change with the parameter actor every this many local updates"""
    sync_every_s: float = 1.0
    """with --ray: a node also exchanges once this many seconds have passed since its last exchange (whichever comes first)"""
    node_restarts: int = 10
    """with --ray: times Ray restarts a node actor that died (its process or machine lost)"""


@dataclass(frozen=True)
class TrainConfig:
    env: EnvConfig = field(default_factory=EnvConfig)
    algo: AlgoConfig = field(default_factory=AlgoConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        """Inverse of to_dict (as stored in config.json / checkpoints); unknown keys are errors."""
        parts = {}
        for f in fields(cls):
            sub = dict(d.get(f.name, {}))
            sub_cls = f.default_factory
            known = {g.name for g in fields(sub_cls)}
            bad = set(sub) - known
            if bad:
                raise ConfigError(f"unknown config keys in [{f.name}]: {', '.join(sorted(bad))}")
            if "hidden" in sub:
                sub["hidden"] = tuple(sub["hidden"])
            parts[f.name] = sub_cls(**sub)
        return cls(**parts)


SECTIONS = {"env": EnvConfig, "algo": AlgoConfig, "optim": OptimConfig, "run": RunConfig}

Q_ALGOS = ("nstep-q", "onestep-q", "onestep-sarsa")

def env_family(env_id: str) -> str:
    """The family whose defaults an env gets (``envs.family_of``): "atari", "classic",
    "mujoco", "doom", "car", or "other" (the dataclass defaults, which are Atari A3C's)."""
    from .envs.families import family_of

    return family_of(env_id)


_MUJOCO_A3C = {"entropy": 1e-3, "obs_norm": True, "reward_scale": 0.1, "t_max": 20, "frames": 5_000_000}

# Defaults per (env family, method), over the dataclass defaults (the paper's A3C on Atari).
# A key (family, None) holds for every method of the family; (family, algo) overrides it.
# Options the user gives (CLI, TOML, API) always win, and config.json records what was used.
# Each entry has one line of why; the evidence is in docs/families.md, at the #anchor named.
FAMILY_DEFAULTS: dict[tuple, dict] = {
    # centred frames: on x/255 RMSProp's steps killed conv1's units (#centred-frames)
    **{(family, None): {"frame_center": "auto"} for family in ("atari", "other")},
    # the status bar: without it nothing on screen tells the health left (#the-status-bar-on-vizdoom)
    ("doom", None): {"frame_center": "auto", "doom_hud": True},
    # at 7e-4 and t_max 5 the maze agent's LSTM saturated; Pathak et al.'s values (#a3c-lstm-on-vizdoom)
    ("doom", "a3c-lstm"): {"lr": 1e-4, "t_max": 20},
    # Atari's Q-method lr, unmeasured on ViZDoom (#q-methods-on-vizdoom)
    **{("doom", q): {"lr": 3e-4} for q in Q_ALGOS},
    # n-step Q on Pong failed at 7e-4, missed at 1e-4, learned at 3e-4 (#q-methods-on-atari)
    **{("atari", q): {"lr": 3e-4} for q in Q_ALGOS},
    # CartPole reaches 500 in 2M frames in 14 of 15 runs with these (#a3c-on-classic-control)
    ("classic", None): {"lr": 2e-3, "envs_per_thread": 32, "value_coef": 0.1, "frames": 2_000_000},
    # as their CartPole learning tests are tuned (#a3c-lstm-and-q-methods-on-classic-control)
    ("classic", "a3c-lstm"): {"lr": 2e-3, "rms_eps": 0.1, "envs_per_thread": 8, "value_coef": 0.5,
                              "frames": 300_000},
    **{("classic", q): {"lr": 1e-3, "rms_eps": 0.1, "envs_per_thread": 8, "value_coef": 0.5, "frames": 400_000,
                        "eps_anneal_frames": 100_000, "target_update_frames": 10_000} for q in Q_ALGOS},
    # Pendulum: MuJoCo's Gaussian A3C with rewards x0.01 (#classic-control-with-box-actions)
    **{("classic-box", a): {"entropy": 1e-3, "obs_norm": True, "reward_scale": 0.01, "t_max": 20,
                            "frames": 2_000_000} for a in ("a3c", "a3c-lstm")},
    # the paper's Gaussian A3C, rewards x0.1, entropy 1e-3, t_max 20; the paper's 128 LSTM cells (#a3c-on-mujoco)
    ("mujoco", "a3c"): _MUJOCO_A3C,
    ("mujoco", "a3c-lstm"): {**_MUJOCO_A3C, "lstm_size": 128},
    # the summed reward unclipped, scaled by 0.1 (#rewards-and-frames-on-carracing)
    ("car", None): {"reward_clip": False, "reward_scale": 0.1, "frame_center": "auto"},
    # at 7e-4 and t_max 5 the fc layer died; ViZDoom's pixel lr, MuJoCo's t_max (#a3c-on-carracing)
    ("car", "a3c"): {"entropy": 1e-3, "lr": 1e-4, "t_max": 20},
    ("car", "a3c-lstm"): {"entropy": 1e-3, "lr": 1e-4, "t_max": 20},
    # the linear steering mean ran past its bound; bounded, the proof crossed 800 at 1.4M (#the-bounded-mean-on-carracing-v3)
    **{("car-box", a): {"bounded_mean": True} for a in ("a3c", "a3c-lstm")},
    # Atari's Q-method lr, unmeasured on CarRacing (#q-methods-on-carracing)
    **{("car", q): {"lr": 3e-4} for q in Q_ALGOS},
}


# The method a family trains when --algo is not given: the paper's Labyrinth agent is A3C-LSTM.
FAMILY_ALGO = {"doom": "a3c-lstm"}


def default_algo(env_id: str) -> str:
    return FAMILY_ALGO.get(env_family(env_id), AlgoConfig.algo)


def defaults_for(env_id: str, algo: str) -> dict:
    """The option values (field name -> value) that differ from the dataclass defaults for
    this env's family and this method."""
    from .envs.families import has_box_actions

    family = env_family(env_id)
    if has_box_actions(env_id):
        family = "classic-box"  # CartPole's discrete-action defaults are not theirs
    out = dict(FAMILY_DEFAULTS.get((family, None), {}))
    out.update(FAMILY_DEFAULTS.get((family, algo), {}))
    if family == "car" and "Discrete" not in str(env_id):  # CarRacing-v3: the Gaussian head's own
        out.update(FAMILY_DEFAULTS.get(("car-box", algo), {}))
    return out


def family_note(name: str) -> str:
    """A --help suffix for an option whose default depends on the env family or method."""
    if any(name in d for d in FAMILY_DEFAULTS.values()):
        return "  (the default shown is Atari A3C's; it differs per env family and method: docs/families.md)"
    return ""


def field_docs(cls) -> dict[str, str]:
    """Field docstrings (the string literal under each field), used as --help texts."""
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(cls))
    body = tree.body[0].body
    docs = {}
    for a, b in zip(body, body[1:]):
        if isinstance(a, ast.AnnAssign) and isinstance(b, ast.Expr) and isinstance(b.value, ast.Constant):
            docs[a.target.id] = b.value.value
    return docs


def flat_fields() -> dict[str, tuple[str, dataclasses.Field]]:
    """Every option name (field name) -> (section, field). Names are unique across sections."""
    out = {}
    for sec, cls in SECTIONS.items():
        for f in fields(cls):
            out[f.name] = (sec, f)
    return out


_SUFFIX = {"": 1, "k": 1_000, "m": 1_000_000, "g": 1_000_000_000, "b": 1_000_000_000}


def parse_count(text) -> int:
    """'10M' -> 10_000_000, '500k' -> 500_000, '2.5m' -> 2_500_000, '1e6' -> 1_000_000."""
    if isinstance(text, int) and not isinstance(text, bool):
        value = text
    else:
        s = str(text).strip().lower().replace("_", "").replace(",", "")
        m = re.fullmatch(r"(\d+(?:\.\d+)?(?:e\d+)?)\s*([kmgb]?)", s)
        if not m:
            raise ConfigError(f"cannot read {text!r} as a number of frames (examples: 10M, 500k, 2000000)")
        value = float(m.group(1)) * _SUFFIX[m.group(2)]
        if not math.isfinite(value):  # '1e400' reads as inf
            raise ConfigError(f"{text!r} is too large a number of frames")
        if value != int(value):
            raise ConfigError(f"{text!r} is not a whole number of frames")
        value = int(value)
    if value <= 0:
        raise ConfigError(f"the number of frames must be positive, got {text!r}")
    return value


def build(overrides: dict) -> TrainConfig:
    """A validated TrainConfig from flat ``{field_name: value}`` overrides (CLI / TOML).

    Options not given take the defaults of the env's family and the method
    (:func:`defaults_for`), then the dataclass defaults."""
    ff = flat_fields()
    per = {sec: {} for sec in SECTIONS}
    given = {key.replace("-", "_") for key in overrides}
    env_id = overrides.get("env", EnvConfig.env)
    algo = overrides.get("algo", default_algo(env_id) if isinstance(env_id, str) else AlgoConfig.algo)
    if "algo" not in given:
        per["algo"]["algo"] = algo
    if isinstance(env_id, str) and isinstance(algo, str):  # (a wrong type is _coerce's error below)
        for name, value in defaults_for(env_id, algo).items():
            if name not in given:
                sec, _f = ff[name]
                per[sec][name] = value
    for key, value in overrides.items():
        name = key.replace("-", "_")
        if name not in ff:
            raise ConfigError(f"unknown option {key!r}")
        sec, f = ff[name]
        per[sec][name] = _coerce(name, f, value)
    if per["run"].get("threads", 1) < 1:  # 0 means "all CPUs" only as the default: leave it out
        raise ConfigError(
            f"--threads must be >= 1, got {per['run']['threads']} (leave it out to use the CPUs this process may use)"
        )
    cfg = TrainConfig(**{sec: cls(**per[sec]) for sec, cls in SECTIONS.items()})
    validate(cfg)
    return cfg


def _coerce(name, f, value):
    """``value`` as the field's type, or ConfigError. Types must match: a TOML ``3`` is not a
    boolean, ``true`` is not a number (bool is an int subclass in Python), 2.5 is not an int."""
    typ = type(f.default) if f.default is not dataclasses.MISSING else None
    expect = ""
    try:
        if name == "frame_center" and isinstance(value, str) and value.strip().lower() == "auto":
            return "auto"  # measured at the run's start (state.measure_frame_center)
        if name in ("video_every", "lr_warmup_frames") and str(value).strip() == "0":
            return 0  # off
        if name == "frames" or name.endswith("_frames") or name == "video_every":
            return parse_count(value)
        if typ is bool:
            expect = " (expected true or false)"
            if isinstance(value, bool):
                return value
            if isinstance(value, str):
                if value.lower() in ("1", "true", "yes", "on"):
                    return True
                if value.lower() in ("0", "false", "no", "off"):
                    return False
            raise ValueError
        if typ is tuple:
            expect = " (expected whole numbers, e.g. 64,64)"
            if isinstance(value, str):
                value = [v for v in value.split(",") if v.strip()]
            return tuple(_whole(v) for v in value)
        if typ is int:
            expect = " (expected a whole number)"
            return _whole(value)
        if typ is float:
            expect = " (expected a number)"
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if typ is str:
            expect = " (expected text)"
            if isinstance(value, os.PathLike):
                value = os.fspath(value)
            if not isinstance(value, str):
                raise ValueError
            return value
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(f"invalid value {value!r} for {name.replace('_', '-')}{expect}") from None
    return value


def _whole(value) -> int:
    """An int from an int, an integral float or a numeral string; never from a bool."""
    if isinstance(value, bool):
        raise ValueError
    if isinstance(value, float):
        if not value.is_integer():  # also false for inf and nan
            raise ValueError
        return int(value)
    if isinstance(value, str):
        return int(value)
    return operator.index(value)


# sanity limits (every learner thread owns an env batch, an envpool worker thread and buffers
# of t_max x E samples): far beyond any useful run, far below what hangs the machine
MAX_THREADS = 1024
MAX_ENVS_PER_THREAD = 1024


def validate(cfg: TrainConfig) -> None:
    """Reject values that would make a silently wrong run."""
    e, a, o, r = cfg.env, cfg.algo, cfg.optim, cfg.run
    for sec in (e, a, o, r):  # inf or nan in any float option: a crash or a silently disabled feature later
        for f in fields(sec):
            v = getattr(sec, f.name)
            if f.name == "frame_center" and v == "auto":
                continue
            if isinstance(f.default, float) and not (isinstance(v, (int, float)) and math.isfinite(v)):
                raise ConfigError(f"{f.name.replace('_', '-')} must be a finite number, got {v}")
    checks = [
        (a.algo in ALGOS, f"unknown algo {a.algo!r}; choose from {', '.join(ALGOS)}"),
        (r.threads >= 0, f"--threads must be >= 1, got {r.threads}"),
        (e.envs_per_thread >= 1, f"--envs-per-thread must be >= 1, got {e.envs_per_thread}"),
        (r.threads <= MAX_THREADS, f"--threads must be <= {MAX_THREADS}, got {r.threads}"),
        (
            e.envs_per_thread <= MAX_ENVS_PER_THREAD,
            f"--envs-per-thread must be <= {MAX_ENVS_PER_THREAD}, got {e.envs_per_thread}",
        ),
        (a.t_max >= 1, f"--t-max must be >= 1, got {a.t_max}"),
        (0.0 <= a.gamma <= 1.0, f"--gamma must be in [0, 1], got {a.gamma}"),
        (a.entropy >= 0.0, f"--entropy must be >= 0, got {a.entropy}"),
        (o.lr > 0.0, f"--lr must be > 0, got {o.lr}"),
        (o.lr_warmup_frames >= 0, f"--lr-warmup-frames must be >= 0, got {o.lr_warmup_frames}"),
        (0.0 <= o.rms_alpha < 1.0, f"rms-alpha must be in [0, 1), got {o.rms_alpha}"),
        (o.rms_eps > 0.0, f"rms-eps must be > 0, got {o.rms_eps}"),
        (o.grad_clip >= 0.0, f"grad-clip must be >= 0, got {o.grad_clip}"),
        (e.doom_reward in ("scenario", "envpool"), f"doom-reward must be scenario or envpool, got {e.doom_reward!r}"),
        (1 <= e.car_frame_skip <= 50, f"car-frame-skip must be in [1, 50], got {e.car_frame_skip}"),
        (e.backend in ("auto", "envpool", "gymnasium"), f"unknown backend {e.backend!r}; choose envpool, gymnasium or auto"),
        (e.noop_max >= 0, f"noop-max must be >= 0, got {e.noop_max}"),
        (r.seed >= 0, f"--seed must be >= 0, got {r.seed}"),
        (all(h >= 1 for h in a.hidden), f"hidden sizes must be >= 1, got {a.hidden}"),
        (a.lstm_size >= 1, f"lstm-size must be >= 1, got {a.lstm_size}"),
        (a.frame_center == "auto" or 0.0 <= a.frame_center <= 1.0,
         f"--frame-center must be auto or in [0, 1], got {a.frame_center}"),
        (r.checkpoint_every_s > 0, f"--checkpoint-every-s must be > 0, got {r.checkpoint_every_s}"),
        (r.progress_every_s > 0, f"--progress-every-s must be > 0, got {r.progress_every_s}"),
        (a.value_coef >= 0.0, f"--value-coef must be >= 0, got {a.value_coef}"),
        (e.reward_scale > 0.0, f"--reward-scale must be > 0, got {e.reward_scale}"),
        (
            not e.obs_norm or a.algo.startswith("a3c"),
            f"--obs-norm is for a3c and a3c-lstm (the Q methods' target network reads raw observations); "
            f"not for {a.algo}",
        ),
        (r.nodes >= 1, f"--nodes must be >= 1, got {r.nodes}"),
        (r.sync_every_updates >= 1, f"--sync-every-updates must be >= 1, got {r.sync_every_updates}"),
        (r.sync_every_s > 0, f"--sync-every-s must be > 0, got {r.sync_every_s}"),
        (r.node_restarts >= 0, f"--node-restarts must be >= 0, got {r.node_restarts}"),
        (r.video_every >= 0, f"--video-every must be >= 0 (0: off), got {r.video_every}"),
    ]
    for ok, msg in checks:
        if not ok:
            raise ConfigError(msg)


def resolve(cfg: TrainConfig) -> TrainConfig:
    """Fill derived values: threads (0 -> the CPUs this process may use, within a CPU quota), backend (auto ->
    installed), run dir name. (``--frame-center auto`` is a measurement of the run's start:
    ``state.measure_frame_center``.)"""
    from .envs import default_backend
    from .placement import default_threads

    threads = cfg.run.threads or default_threads()  # the CPUs this process may use (affinity, CPU quota)
    backend = default_backend(cfg.env.env) if cfg.env.backend == "auto" else cfg.env.backend
    env_name = re.sub(r"[^\w.-]+", "_", cfg.env.env)  # "ALE/x", "my.module:Env-v0": one plain directory name
    run_dir = cfg.run.run_dir or os.path.join("runs", f"{env_name}-{cfg.algo.algo}-{time.strftime('%Y%m%d-%H%M%S')}")
    return dataclasses.replace(
        cfg,
        env=dataclasses.replace(cfg.env, backend=backend),
        run=dataclasses.replace(cfg.run, threads=threads, run_dir=run_dir),
    )


def load_toml(path: str) -> dict:
    """Flat option table from a TOML file (sections [env], [algo], ... are flattened too)."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    flat = {}
    for k, v in data.items():
        if isinstance(v, dict) and k in SECTIONS:
            flat.update(v)
        else:
            flat[k] = v
    return flat


def resume_config(ck: dict, overrides: dict) -> TrainConfig:
    """The checkpoint's config with the explicitly given options applied on top (``ck``: a
    loaded checkpoint, ``checkpoint.load``). Refuses what would change what the weights compute
    (the env, the frame centre, the Gaussian mean)."""
    flat = {}
    ff = flat_fields()
    stored = ck["config"]
    if not isinstance(stored, dict) or not isinstance(stored.get("env"), dict):
        raise CheckpointError(f"checkpoint {ck['path']} has no usable config")
    env = stored["env"].get("env")
    if "env" in overrides and overrides["env"] != env:
        raise ConfigError(
            f"this run trains {env} (env family {env_family(env)}); --resume cannot switch it to {overrides['env']} "
            f"(env family {env_family(overrides['env'])}); start a new run"
        )
    # A key the checkpoint lacks was written before its option existed, when the run did what
    # the option's dataclass default does (x/255 frames, no status bar): that, never a newer
    # family default, which would silently change what the net sees (TrainConfig.from_dict,
    # which eval and fastasync.load use, reads it the same way).
    for name, (sec, f) in ff.items():
        flat[name] = stored.get(sec, {}).get(name, f.default)
    # the weights were learned on frames x/255 - frame_center, and a Gaussian mean through
    # b tanh(m / b) or not: another value changes what they compute
    stored_center = flat["frame_center"]
    stored_bounded = bool(flat["bounded_mean"])
    flat.update(overrides)
    try:
        cfg = build(flat)
    except ConfigError as exc:  # a value an older fastasync accepted (inf timers) or an override
        raise ConfigError(
            f"{exc} (resuming {ck['path']}: from its stored config or the options given; "
            "an option on the command line overrides the stored value)"
        ) from None
    if cfg.algo.frame_center != stored_center:
        raise ConfigError(
            f"this run's net sees its frames as x/255 - {stored_center}; --resume cannot change --frame-center "
            f"(got {overrides['frame_center']}): start a new run"
        )
    if cfg.algo.bounded_mean != stored_bounded:
        raise ConfigError(
            f"this run's Gaussian mean is {'bounded (--bounded-mean)' if stored_bounded else 'linear (--linear-mean)'}; "
            "--resume cannot change it: start a new run"
        )
    return cfg
