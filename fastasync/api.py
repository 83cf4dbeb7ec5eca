"""fastasync from Python: ``train``, ``load``, ``Run`` and ``Policy``.

The ``fastasync train`` and ``fastasync eval`` commands are thin wrappers over this module:
the same options, the same validation, the same messages. ::

    import fastasync

    run = fastasync.train(env="CartPole-v1", frames="200k", threads=1)
    policy = run.policy()                      # or fastasync.load(run.run_dir)
    env = policy.env()                         # one gymnasium env, preprocessed as in training
    obs, info = env.reset(seed=0)
    done = False
    while not done:
        obs, reward, term, trunc, info = env.step(policy.act(obs))
        done = term or trunc

Errors are exceptions with the one-line messages the CLI prints: bad input is a
``ValueError`` (``ConfigError``, ``EnvError``, ``CheckpointError``, ``RunDirError``,
:class:`StartError`), a learner that raised is a ``LearnerError`` (``.tb`` holds its
traceback), a run that could not write its log or final checkpoint a ``RunIOError``.
Ctrl-C (or SIGTERM) while ``train`` runs stops every learner within a segment and writes a
checkpoint, as in the CLI; ``train`` then returns a :class:`Run` whose ``interrupted`` is
True (resume with ``fastasync.train(resume=run.run_dir, frames=...)``).

Importing this module is cheap: numba, envpool and gymnasium are imported when a function
needs them.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from dataclasses import dataclass

from . import config as C
from .errors import StartError

__all__ = ["train", "load", "sweep", "Run", "Policy", "StartError"]




def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


RAY_OPTIONS = ("nodes", "sync_every_updates", "sync_every_s", "node_restarts")


def train(env=None, algo: str | None = None, frames=None, *, config: str | None = None, resume: str | None = None,
          ray: str | None = None, quiet: bool = False, out=None, **options) -> "Run":
    """Train an agent, blocking until the frame budget is spent (or Ctrl-C); returns the :class:`Run`.

    ``env``: an env id (``"Pong-v5"``, ``"CartPole-v1"``, ``"my.module:MyEnv-v0"``: the
    module is imported, which registers the id, then ``gymnasium.make``) or a function
    that returns a gymnasium env. ``frames``: emulator frames, e.g. ``"10M"``, ``500_000``.
    ``options``: every other option of ``fastasync train``, by its field name
    (``threads=1``, ``lr=1e-3``, ``run_dir="runs/x"``, ``tensorboard=True``, ...); see
    ``fastasync train --help``. An option left out (None) takes its value from ``config``
    (a TOML file, as ``--config``), the checkpoint being resumed (``resume``: a run
    directory or checkpoint.npz) or the defaults, as on the command line. ``ray``: train on
    Ray (``"local"``: a local instance; ``"auto"`` or ``"HOST:PORT"``: a running cluster),
    ``nodes`` node actors of ``threads`` learner threads each (``fastasync.distributed``).
    Progress lines go to stderr unless ``quiet``; ``out``: a function taking each line instead.
    """
    say = (lambda msg: None) if quiet else (out or _stderr)
    given = dict(options)
    if env is not None:
        from .envs.custom import env_name

        given["env"] = env_name(env)
    if algo is not None:
        given["algo"] = algo
    if frames is not None:
        given["frames"] = frames
    given = {k.replace("-", "_"): v for k, v in given.items() if v is not None}
    flat = C.load_toml(config) if config else {}
    flat.update(given)
    cfg = None
    try:
        ck = None
        if resume:
            from . import checkpoint
            ck = checkpoint.load(resume)
            cfg = C.resume_config(ck, flat)
            if "run_dir" not in flat:
                cfg = _with_run_dir(cfg, os.path.dirname(os.path.abspath(ck["path"])))
            if cfg.run.frames <= ck["frames"]:
                raise C.ConfigError(
                    f"the run already has {ck['frames']:,} frames of --frames {cfg.run.frames:,}; "
                    "pass a larger --frames to continue"
                )
        else:
            cfg = C.build(flat)
        if ray is None:
            ray_only = [k for k in RAY_OPTIONS if k in given]
            if ray_only:
                raise C.ConfigError(f"--{ray_only[0].replace('_', '-')} applies to runs on Ray: add --ray")
        else:
            from .distributed.driver import connect_run

            cfg = connect_run(cfg, ray)
        if cfg.run.tensorboard:
            from .tb import check_installed

            check_installed()
        if cfg.run.video_every:
            from .video import check

            check(cfg.env.env, "--video-every")
        cfg = C.resolve(cfg)
        from . import rundir

        # checked and locked before anything is built or written: two runs never mix
        claim = rundir.claim(cfg.run.run_dir, ck["path"] if ck else None, auto_named=ck is None and "run_dir" not in flat)
        cfg = _with_run_dir(cfg, claim.path)
        from .trainer import Trainer

        try:
            if ray is None:
                trainer = Trainer(cfg, resume=ck, out=say)
            else:
                from .distributed.driver import RayTrainer

                trainer = RayTrainer(cfg, resume=ck, out=say)
        except BaseException:
            claim.abandon()  # bad input leaves nothing behind
            raise
        cfg = trainer.cfg  # as the run's start measured it (the frame centre)
        trainer.prepare_run_dir()
    except MemoryError as exc:
        raise StartError(f"not enough memory for {cfg.run.threads} threads x {cfg.env.envs_per_thread} envs x t_max "
                         f"{cfg.algo.t_max}: {exc}") from None
    except OSError as exc:
        where = cfg.run.run_dir if cfg is not None else "its directory"
        raise StartError(f"cannot start the run in {where}: {exc.strerror or exc}"
                         + (f" ({exc.filename})" if exc.filename else "")) from None
    say(f"run dir: {cfg.run.run_dir}")
    say(
        f"{cfg.algo.algo} on {cfg.env.env} ({cfg.env.backend}): "
        + ("" if ray is None else f"{cfg.run.nodes} nodes x ")
        + f"{cfg.run.threads} threads x "
        f"{cfg.env.envs_per_thread} envs, {trainer.net.num_params:,} params, {cfg.run.frames:,} frames"
    )
    try:
        summary = trainer.run()
    finally:
        claim.release()  # the run directory is free for the next run
        if ray is not None:
            from .distributed.driver import disconnect

            disconnect()  # a local Ray instance this run started stops with it
    run = Run(cfg.run.run_dir, cfg, summary)
    ck_note = "checkpoint written" if summary["checkpoint_saved"] else "NO checkpoint written"
    if run.interrupted:
        say(f"stopped at {summary['frames']:,} frames; {ck_note}. "
            f"Resume with: fastasync train --resume {cfg.run.run_dir}" + ("" if ray is None else " --ray ..."))
    else:
        last10 = summary["mean_score_last10"]
        say(
            f"done: {summary['frames']:,} frames, {summary['games']} games, "
            + (f"mean score of the last 10 games {last10:.2f}" if summary["games"] else "no game finished")
            + f"; {ck_note} in {cfg.run.run_dir}"
        )
    return run


def _with_run_dir(cfg, run_dir):
    return dataclasses.replace(cfg, run=dataclasses.replace(cfg.run, run_dir=run_dir))


def sweep(env=None, algo: str | None = None, frames=None, *, trials: int | None = None, sweep_seed: int | None = None,
          parallel: int | None = None, threads: int | None = None, run_dir: str | None = None, target=None,
          space: dict | None = None, config: str | None = None, resume: str | None = None, ray: str | None = None,
          eval_episodes: int | None = None, only=None, quiet: bool = False, out=None, **options):
    """Run ``trials`` trials of :func:`train` that differ in sampled or listed options, each a
    plain run directory inside the sweep directory ``run_dir`` (default
    ``runs/sweep-<env>-<algo>-<time>``), and summarise them; blocks, returns a
    :class:`fastasync.sweep.SweepResult` (``sweep_dir``, ``rows``, ``summary``, ``interrupted``).

    An option given as a distribution is swept: ``lr="loguniform:1e-4:1e-2"``,
    ``seed="range:0:100"``, ``entropy="choice:0.01,0.001"``, ``t_max="list:5,20"`` (or in
    ``space={"lr": "loguniform:1e-4:1e-2"}``); every other option of :func:`train` is passed
    to every trial. ``sweep_seed`` makes the sampled values reproducible. ``config``: a TOML
    file of options, its ``[sweep]`` table the distributions (and ``trials``, ``sweep_seed``,
    ``parallel``, ``target``, ``eval_episodes``). ``threads``: learner threads per trial (default: the CPUs
    split between the ``parallel`` trials run side by side; 1 on Ray); ``ray``: spread the
    trials over a Ray cluster ("local", "auto" or "HOST:PORT"; the sweep directory must be
    on a file system every node shares). ``target``: a score (or several) the summary counts
    the trials that reached. ``eval_episodes``: after each trial, play that many games with
    its final checkpoint (as ``fastasync eval --save``) for the eval columns of sweep.csv and
    the summary. ``only``: run (or evaluate) only these trials this time ("trial-011,trial-014",
    "11,14" or a list), the others left as they are. The same call again skips finished trials and resumes stopped
    ones (``resume=SWEEP_DIR`` continues a sweep as it was started); a sweep directory that
    holds another search space is refused. Ctrl-C stops the running trials with a
    checkpoint each. Bad input raises a ``ValueError`` with a one-line message before any
    trial runs. ``fastasync.sweep(...)`` is this function (:mod:`fastasync.sweep` holds the parts).
    """
    from .sweep import run_sweep

    return run_sweep(env, algo, frames, trials=trials, sweep_seed=sweep_seed, parallel=parallel, threads=threads,
                     run_dir=run_dir, target=target, space=space, config=config, resume=resume, ray=ray,
                     eval_episodes=eval_episodes, only=only, quiet=quiet, out=out or _stderr, **options)

@dataclass(frozen=True)
class Run:
    """A finished (or interrupted) training run.

    ``run_dir``: its directory (checkpoint.npz, episodes.csv, config.json, TensorBoard
    events); ``config``: the resolved :class:`~fastasync.config.TrainConfig`; ``summary``:
    the final statistics (``frames``, ``train_frames``, ``elapsed_s``, ``fps``, ``games``,
    ``mean_score_last10``, ``interrupted``, ``checkpoint_saved``).
    """

    run_dir: str
    config: C.TrainConfig
    summary: dict

    @property
    def interrupted(self) -> bool:
        """Stopped by Ctrl-C or SIGTERM before the frame budget (a checkpoint was written)."""
        return bool(self.summary["interrupted"])

    @property
    def frames(self) -> int:
        return int(self.summary["frames"])

    @property
    def mean_score(self) -> float:
        """Mean true score of the last 10 games (nan when no game finished)."""
        return float(self.summary["mean_score_last10"])

    def episodes(self) -> dict:
        """Every finished game: lists ``frames``, ``wall_s``, ``thread``, ``score``, ``length``."""
        from .stats import read_episodes

        return read_episodes(os.path.join(self.run_dir, "episodes.csv"))

    def policy(self, backend: str = "auto") -> "Policy":
        """The trained policy, from the run's checkpoint."""
        return load(self.run_dir, backend=backend)


def load(path: str, backend: str = "auto") -> "Policy":
    """The policy of a run directory or checkpoint.npz. Raises ``CheckpointError`` (a
    ``ValueError``) for what ``fastasync eval`` refuses, with the same message.

    ``backend``: the env backend of :meth:`Policy.evaluate` (``auto``: the one trained on).
    """
    from .evaluate import load_agent

    return Policy(load_agent(path, backend=backend))


class Policy:
    """A trained agent: ``act`` on preprocessed observations, ``env`` to get them.

    ``act(obs)`` takes ONE observation (shape ``observation_shape``; returns an int, or for
    continuous actions a float32 vector) or a BATCH (shape ``(B, *observation_shape)``;
    returns an int32 array of B actions, or a (B, action size) float32 array). Continuous
    actions come clipped to the env's bounds, as training sent them; vector observations
    are normalised with the run's frozen statistics, as in training.
    ``greedy=None`` acts as ``fastasync eval`` does by default: A3C samples its policy (a
    Gaussian policy: greedy takes its mean), the Q methods take the argmax
    (``greedy=False``: epsilon-greedy, epsilon 0.05). Sampling
    uses the policy's own generator (``seed``). An LSTM policy (a3c-lstm) carries its state
    from call to call, per batch size: call ``reset()`` when new episodes start.
    """

    def __init__(self, agent, seed: int = 12345):
        from .algorithms import make_algorithm
        from .evaluate import frozen_obsnorm
        from .kernels.rng import seed_state

        self._agent = agent
        self.config = agent.cfg
        self.info = agent.info
        self.frames = agent.frames
        self._algo = make_algorithm(agent.cfg.algo.algo, agent.cfg, agent.net, agent.info)
        self._rng = seed_state(seed)  # one generator, shared by the actors of every batch size
        self._obsnorm = frozen_obsnorm(agent)  # vector observations: the training run's statistics
        self._actors = {}  # batch size -> its acting.Actor (workspace, frozen obs-norm, buffers)
        self._fresh = set()  # batch sizes whose recurrent state restarts at the next act

    @property
    def observation_shape(self) -> tuple:
        return tuple(self.info.obs_shape)

    @property
    def num_actions(self) -> int:
        return int(self.info.num_actions)

    def __repr__(self):
        c = self.config
        return f"Policy({c.algo.algo} on {c.env.env}, {self.frames:,} frames)"

    def reset(self) -> None:
        """Start the recurrent state afresh (LSTM policies; a no-op otherwise)."""
        self._fresh = set(self._actors)

    def _actor(self, B: int):
        """The actor of batch size B, made at its first call (the one acting path, as eval's)."""
        actor = self._actors.get(B)
        if actor is None:
            from .evaluate import agent_actor

            actor = self._actors[B] = agent_actor(self._agent, self._algo, B, self._rng, self._obsnorm,
                                                  self._nonfinite)
        return actor

    @staticmethod
    def _nonfinite(obs, env, t, frames):
        return ValueError("act got a non-finite observation")

    def act(self, obs, greedy: bool | None = None):
        import numpy as np

        x = np.asarray(obs)
        shape = self.observation_shape
        single = x.shape == shape
        if single:
            x = x[None]
        elif x.ndim != len(shape) + 1 or x.shape[1:] != shape or len(x) == 0:
            raise ValueError(f"act takes one observation of shape {shape} or a batch of shape (B, {', '.join(map(str, shape))}); "
                             f"got shape {x.shape}")
        x = np.ascontiguousarray(x, dtype=self.info.obs_dtype)
        B = len(x)
        if greedy is None:
            greedy = self._algo.head == "q"
        fresh = B in self._fresh
        self._fresh.discard(B)
        # the actor's buffer is overwritten by its next act: the caller gets a copy
        sent = self._actor(B).act(x, fresh, greedy).copy()
        if not self.info.discrete:
            sent = sent.reshape(B, *self.info.action_shape)
            return sent[0] if single else sent
        return int(sent[0]) if single else sent

    def env(self, render_mode: str | None = None):
        """One gymnasium env with the preprocessing the policy was trained on.

        Atari: envpool's preprocessing (the gymnasium backend's port of it: 4 stacked
        84x84 gray frames, frame skip 4, no-op starts), whole games (no end at a life loss)
        and unclipped rewards, so that the rewards of a game sum to its true score. ViZDoom
        and CarRacing: fastasync's own env of one, as ``eval`` plays it (render_mode
        "rgb_array" gives the newest observed frame). Other envs: the env itself (your own:
        as ``--env`` builds it).
        """
        from .envs.single import single_env
        from .envs import view_options

        e = self.config.env
        return single_env(e.env, noop_max=e.noop_max, max_episode_frames=e.max_episode_frames, render_mode=render_mode,
                          backend=self._agent.backend, **view_options(e))

    def evaluate(self, episodes: int = 10, greedy: bool | None = None, seed: int = 12345, gif: str | None = None,
                 video: str | None = None) -> dict:
        """Play ``episodes`` full games, as ``fastasync eval``; returns ``scores``, ``lengths``,
        ``greedy`` and ``policy`` (how the actions were picked). ``video``: record the games
        into this .mp4, as ``--video`` (one after another on the gymnasium backend); then
        ``video`` says what was written (``path``, ``frames``, ``fps``, per game ``scores``
        and ``game_frames``)."""
        from .evaluate import evaluate

        if episodes < 1:
            raise ValueError(f"--episodes must be >= 1, got {episodes}")
        recorder = None
        if video:
            from .video import recorder_for

            recorder = recorder_for(self._agent, video)  # checked before anything is played
        return evaluate(self._agent, episodes=episodes, greedy=greedy, seed=seed, gif=gif, recorder=recorder)
