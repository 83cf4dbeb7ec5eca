"""Run configuration: one frozen dataclass per concern, paper defaults, validation.

Defaults are those of Mnih et al. (2016) for A3C on Atari: t_max 5, gamma 0.99, entropy
0.01, shared RMSProp (alpha 0.99) with lr 7e-4 annealed linearly to 0, grad-norm clip 40,
rewards clipped to [-1, 1] and end of life as episode end, for training only. RMSProp's eps
is 1e-5 (as in OpenAI baselines' A2C, same lr, alpha and t_max), not 0.1: with eps = 0.1
the steps are proportional to the gradient and a thread averaging its 8 envs moved 8x less
per frame than the paper's one-env threads; Pong did not move in 5-9M frames. With 1e-5
Pong leaves -21 after ~5M frames (README, Defaults; bench/RESULTS.md).
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
    """write TensorBoard event files into the run directory (needs tensorboardX: pip install -e ".[tb]")"""
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
# Where each value comes from is in the README's "Defaults" section.
FAMILY_DEFAULTS: dict[tuple, dict] = {
    # Pixel families: the conv net sees its frames centred on their mean (x/255 - c, c the
    # mean of x/255 over 256 steps of random play; nets.Conv). On the paper's x/255, which is
    # never negative, a conv1 unit's pre-activation is mostly c * sum(W): RMSProp's steps,
    # ~lr per weight whatever the gradient's size, moved the sums of whole rows at once and
    # the units died for every frame. A3C's Pong runs kept 1 of 16 conv1 units alive; the
    # HealthGathering run lost all 16 at ~11M tics and its policy went back to uniform. With
    # centred frames all 16 lived and Pong seed 1 reached +18 at 8.1M frames, not 15.9M
    # (bench/RESULTS.md, 2026-12-02 05:15).
    **{(family, None): {"frame_center": "auto"} for family in ("atari", "other")},
    # ViZDoom: the status bar on screen (--doom-hud). HealthGathering's .cfg hides it, and then
    # nothing the net sees tells the health left, which alone decides when the death comes;
    # the A3C run without the bar settled on turning on the spot (entropy 0.06, every game
    # 284, below random play's ~580; 0% survived through 8M tics; .../no-hud/), with it 90% of
    # 100 games survived at 1.0M tics (docs/learning/HealthGathering-v1-a3c/NOTES.md). Our
    # reading: a value that sees the view only is low for views that come late in a life
    # (walls, reached by walking) and high for the spawn's open floor, so the bootstrapped
    # returns paid not walking. MyWayHome takes the bar unmeasured.
    ("doom", None): {"frame_center": "auto", "doom_hud": True},
    # The maze agent, A3C-LSTM: lr 1e-4 and t_max 20, as the A3C-LSTM baseline of Pathak et
    # al. (2017) that reaches MyWayHome's vest from random spawns (LSTM 256, 20-step returns,
    # lr 1e-4) and sample-factory's Doom agents (lr 1e-4, 32-step returns). At Atari's 7e-4
    # and 5 the MyWayHome run kept a uniform policy through 7.4M tics (entropy ln 18, the vest
    # in 15-28% of games, as random play) while its fc outputs grew ~100x (mean |y| 12, Pong's
    # LSTM 0.12) and saturated the LSTM's gates, so that its output no longer changed with the
    # frame (docs/learning/MyWayHome-v1-a3c-lstm/lr7e-4/). Feed-forward A3C keeps Atari's:
    # HealthGathering's proof learned with them.
    ("doom", "a3c-lstm"): {"lr": 1e-4, "t_max": 20},
    # the Q methods: Atari's Q-method lr, as on CarRacing (not measured on ViZDoom)
    **{("doom", q): {"lr": 3e-4} for q in Q_ALGOS},
    # Q methods on Atari: at lr 7e-4 n-step Q on Pong stayed at -20.9 through 14M frames
    # while its gradient norm rose from ~1 to ~20; at 1e-4 it missed +18 in 40M frames (best
    # 10-game mean -0.2); at 3e-4 it averaged +3.9 over 10-12M frames (1e-4: -14.2) and its
    # best 10-game mean was +15.6 at 17.8M (docs/learning/Pong-v5-nstep-q/NOTES.md). The
    # one-step methods take it without a comparison of rates: their Pong proofs reached a
    # 10-game mean of 0 at 24.4M (Q) and 22.9M (Sarsa) frames. The paper, too, chose the
    # learning rate per method.
    **{("atari", q): {"lr": 3e-4} for q in Q_ALGOS},
    # CartPole & co: A3C with 32 envs per thread, lr 2e-3 and a lighter value loss reaches
    # 500 within 2M frames (14 of 15 runs; bench/RESULTS.md); with the Atari defaults the
    # last 20 games of 500k frames averaged 85-95.
    ("classic", None): {"lr": 2e-3, "envs_per_thread": 32, "value_coef": 0.1, "frames": 2_000_000},
    # the LSTM net and the Q methods, as their CartPole learning tests are tuned
    # (tests/test_algorithms.py): RMSProp eps 0.1, and for the Q methods a faster schedule
    ("classic", "a3c-lstm"): {"lr": 2e-3, "rms_eps": 0.1, "envs_per_thread": 8, "value_coef": 0.5,
                              "frames": 300_000},
    **{("classic", q): {"lr": 1e-3, "rms_eps": 0.1, "envs_per_thread": 8, "value_coef": 0.5, "frames": 400_000,
                        "eps_anneal_frames": 100_000, "target_update_frames": 10_000} for q in Q_ALGOS},
    # Classic control with Box actions (Pendulum-v1, MountainCarContinuous-v0): the Gaussian
    # A3C of MuJoCo below, rewards x0.01, 2M env steps. With the CartPole defaults Pendulum-v1
    # did not learn; with MuJoCo's (rewards x0.1) it ended 1M steps at -1,530 (|g| ~1e4: returns
    # of -160 per unit scale); at x0.01 seeds 1-3 first reached a 20-game mean of -300 at
    # 0.21-0.31M steps and ended 2M steps at -133 to -171 (one thread; bench/RESULTS.md).
    # Measured on Pendulum-v1 only: MountainCarContinuous's sparse goal is not claimed.
    # (A3C's only, as MuJoCo's: the Q methods refuse continuous actions with their own message.)
    **{("classic-box", a): {"entropy": 1e-3, "obs_norm": True, "reward_scale": 0.01, "t_max": 20,
                            "frames": 2_000_000} for a in ("a3c", "a3c-lstm")},
    # MuJoCo (frames = env steps): the paper's Gaussian A3C, running observation normalisation,
    # training rewards x0.1 (returns of ~100 per unit reward made the value loss dominate:
    # InvertedPendulum-v4 stayed below 80 in 300k steps at scale 1, reached 1000 by 200k at
    # 0.1), entropy cost 1e-3, not the paper's 1e-4 (at 1e-4 the variance collapsed on
    # HalfCheetah-v4: entropy -12.9 nats over 6 dims, sigma ~0.03, -140 after 850k steps), and
    # t_max 20: at t_max 5 HalfCheetah-v4 stayed at 500-800 through 1M-5M steps, at 20 it
    # scored 2,765 at 840k and 3,257 at 1.6M (one thread each). The LSTM has the paper's 128
    # cells. README, Defaults per env family and method.
    # (A3C's only: the Q methods refuse continuous actions, and obs-norm is A3C's.)
    ("mujoco", "a3c"): _MUJOCO_A3C,
    ("mujoco", "a3c-lstm"): {**_MUJOCO_A3C, "lstm_size": 128},
    # CarRacing (frames = env steps x the action repeat, car_frame_skip, 4 as Atari's frame
    # skip). NOT validated by a run yet (README, Defaults): the pixel torso keeps Atari A3C's
    # lr, RMSProp, t_max and 8 envs per thread; the summed reward is not clipped (clipping to
    # [-1, 1] pays one tile per agent step at any speed, tiles are ~3.3 each, and makes
    # leaving the playfield, -100, cost what one slow step costs) but scaled by 0.1 as on
    # MuJoCo (returns of hundreds made the value loss dominate there). The Gaussian head takes
    # MuJoCo's entropy cost 1e-3 and t_max 20 (at 5 HalfCheetah stalled, above) and the pixel
    # lr of ViZDoom's A3C-LSTM, 1e-4: at Atari's 7e-4 (t_max 5) 80% of the fc layer's units
    # died within 0.4-0.7M frames (92% alive at init), the policy no longer depended on the
    # frame and its sigma drifted with the entropy bonus to ~4 (4x the action range: random
    # bang-bang driving at random play's score, -80); with entropy 1e-4 sigma collapsed instead
    # and the gradient norm reached 1e5 (docs/learning/CarRacing-v3-a3c/NOTES.md).
    ("car", None): {"reward_clip": False, "reward_scale": 0.1, "frame_center": "auto"},
    # (CarRacingDiscrete-v3's softmax A3C takes them too, unmeasured.)
    ("car", "a3c"): {"entropy": 1e-3, "lr": 1e-4, "t_max": 20},
    ("car", "a3c-lstm"): {"entropy": 1e-3, "lr": 1e-4, "t_max": 20},
    # CarRacing-v3's Gaussian head: a bounded mean (--bounded-mean). On the rest alone the
    # proof's 10-game mean crossed 800 at 4.8M frames but did not hold it (eval of its last
    # checkpoint -61), after a fall to ~0 at 3.5-4M frames while its linear steering mean sat
    # at +2, past the bound: every sample clipped to full right, the car circling. With the
    # bounded mean it crossed 800 at 1.4M frames (eval 697 over 30 games;
    # docs/learning/CarRacing-v3-a3c/linear-mean/NOTES.md).
    **{("car-box", a): {"bounded_mean": True} for a in ("a3c", "a3c-lstm")},
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
        return "  (the default shown is Atari A3C's; it differs per env family and method: README, Defaults)"
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
        if name == "frames" or name.endswith("_frames"):
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
