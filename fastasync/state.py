"""The one assembly of a run's shared state, fresh or resumed.

Both ways of running, the threaded trainer of one machine (:class:`fastasync.trainer.Trainer`)
and the driver of a run on Ray (:class:`fastasync.distributed.driver.RayTrainer`), start
here, so that they cannot drift apart: :func:`assemble` checks the env and the method,
measures what the run's start measures (the frame centre of ``--frame-center auto``), checks
the frame budget, builds the net, and then either initialises or restores from a checkpoint
the state that lives beside the parameters: RMSProp's statistics, the Q methods' target
network and each thread's final epsilon, the running observation statistics of vector
observations, the frame, wall-time and game counters, and the generator state of every
learner thread. Where it runs (threads, nodes) is the caller's business.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from . import checkpoint as ckpt
from .config import TrainConfig


def annealed_lr(lr0: float, frames: int, total_frames: int, warmup_frames: int = 0) -> float:
    """The learning rate after ``frames``: ``lr0`` annealed linearly to 0 over the run (the
    paper's schedule), times a linear ramp from 0 to 1 over the first ``warmup_frames`` (0: no
    ramp). A Ray run's driver reports it as the threads of its nodes use it."""
    lr = lr0 * max(0.0, 1.0 - frames / total_frames)
    if warmup_frames > 0 and frames < warmup_frames:
        lr *= max(frames, 0) / warmup_frames
    return lr


@dataclass
class RunState:
    """What a run starts from. ``cfg``: resolved, with the frame centre measured (what
    config.json records). ``rng_states``: uint64[R, 2], one row per learner thread (a resumed
    run: the checkpoint's rows, however many threads it had). ``final_epsilon``: the Q
    methods' per-thread final epsilon of a resumed run (None: each thread draws its own).
    ``obsnorm``: the running observation statistics of vector observations (None for pixels)."""

    cfg: TrainConfig
    info: object
    net: object
    head: str
    theta: np.ndarray
    rms_g: np.ndarray
    target: np.ndarray | None
    obsnorm: object
    frames: int
    wall_s: float
    games: int
    rng_states: np.ndarray
    final_epsilon: np.ndarray | None
    resume_path: str | None

    @property
    def resumed(self) -> bool:
        return self.resume_path is not None

    def prepare_run_dir(self) -> None:
        """Create the run directory and write config.json; on resume, splice the episode log at
        this state's frame and game counts (``rundir.prepare``; OSError on failure)."""
        from . import rundir

        resumed = self.resumed
        rundir.prepare(self.cfg.run.run_dir, self.cfg.to_dict(), self.resume_path,
                       self.frames if resumed else None, self.games if resumed else None)

    def rng_for(self, threads: int) -> list:
        """One generator state per learner thread: the stored rows first; a resumed run with more
        threads than its checkpoint seeds the rest from the seed and the frame count (so that
        they do not replay a thread's numbers)."""
        rows = [np.array(s, np.uint64) for s in self.rng_states[:threads]]
        return rows + seed_states(self.cfg.run.seed + self.frames, threads, start=len(rows))

    def extra(self, target=None, final_epsilon=None) -> dict:
        """The checkpoint's ``extra`` arrays: the observation statistics as they are now, and
        the target network and the threads' final epsilons the caller gives (the Q methods)."""
        out = self.obsnorm.state() if self.obsnorm is not None else {}
        if target is not None:
            out = {**out, "target": np.array(target, np.float32), "final_epsilon": np.asarray(final_epsilon, np.float64)}
        return out


def seed_states(seed, n, start=0) -> list:
    """Generator states of learner threads ``start .. n - 1`` of a run seeded ``seed``."""
    from .kernels.rng import seed_state

    return [seed_state(seed * 1_000_003 + 7919 * (i + 1)) for i in range(start, n)]


def measure_frame_center(cfg: TrainConfig) -> TrainConfig:
    """``cfg`` with ``--frame-center auto`` replaced by its measurement: the mean of x/255 over
    the frames of 256 steps of random play (``envs.frame_mean``; 0 for vector observations).
    A measurement of the run's start, not a configuration: config.json records the number."""
    if cfg.algo.frame_center != "auto":
        return cfg
    from .envs import frame_mean

    center = frame_mean(cfg.env, cfg.run.seed)
    return dataclasses.replace(cfg, algo=dataclasses.replace(cfg.algo, frame_center=center))


def check_budget(cfg: TrainConfig, frame_skip: int, nodes: int | None = None) -> None:
    """ValueError when one update of every thread already takes more than ``--frames``: every
    thread finishes its segment before it looks at the budget. ``nodes``: a run on Ray."""
    e, a, r = cfg.env, cfg.algo, cfg.run
    per_round = (nodes or 1) * r.threads * e.envs_per_thread * a.t_max * frame_skip
    if per_round > r.frames:
        workers = (f"{nodes} nodes x " if nodes is not None else "") + f"{r.threads} threads"
        raise ValueError(
            f"one update of every thread takes {per_round:,} frames ({workers} x {e.envs_per_thread} envs "
            f"x t_max {a.t_max} x frame skip {frame_skip}), more than --frames {r.frames:,}: "
            "raise --frames or lower the others"
        )


def assemble(cfg: TrainConfig, resume: dict | None = None, nodes: int | None = None) -> RunState:
    """The shared state of the run ``cfg`` (resolved: threads, backend, run_dir filled in) on
    one machine, or on Ray's ``nodes`` of ``cfg.run.threads`` learner threads each: fresh, or restored from
    ``resume`` (a loaded checkpoint, ``checkpoint.load``). Raises ValueError (EnvError,
    CheckpointError, ...) for what cannot run, before anything is written."""
    from .algorithms import build_net, check_discrete, head_for
    from .envs import env_info, view_options

    e, a, r = cfg.env, cfg.algo, cfg.run
    info = env_info(e.env, e.backend, **view_options(e))  # --car-rgb: 12 channels
    check_discrete(info, a.algo, a)
    check_budget(cfg, info.frame_skip, nodes)
    cfg = measure_frame_center(cfg)
    net = build_net(cfg, info)
    head = head_for(a.algo, info)
    if resume is not None:
        ckpt.check_matches(resume, net.layout)
        theta, rms_g = resume["theta"], resume["rms_g"]
        frames, wall, games = int(resume["frames"]), float(resume["wall_s"]), int(resume["games"])
        rng = np.asarray(resume["rng_states"], np.uint64).reshape(-1, 2)
        eps = resume["extra"].get("final_epsilon")
    else:
        theta, rms_g = net.init_params(r.seed), net.layout.zeros()
        frames, wall, games = 0, 0.0, 0
        rng = np.stack(seed_states(r.seed, (nodes or 1) * r.threads))
        eps = None
    target = None
    if head == "q":  # the target network: the checkpoint's, or a copy of the parameters
        stored = resume["extra"].get("target") if resume is not None else None
        target = np.ascontiguousarray(stored if stored is not None else theta, np.float32).copy()
    obsnorm = None
    if info.vector_obs:  # vector observations: running normalisation (or the identity) and a NaN check
        from .obsnorm import ObsNorm

        obsnorm = ObsNorm(int(np.prod(info.obs_shape)), e.obs_norm)
        if resume is not None:
            obsnorm.load(resume["extra"], f"checkpoint {resume['path']}")
    return RunState(cfg, info, net, head, theta, rms_g, target, obsnorm, frames, wall, games, rng,
                    None if eps is None else np.asarray(eps, np.float64), resume["path"] if resume is not None else None)
