"""``fastasync train --ray``: the driver process of a run on Ray.

The driver connects to Ray (or starts a local instance), starts the parameter actor on its
own machine and ``--nodes`` node actors (one per Ray node where the CPUs allow: SPREAD),
and then does what a one-machine run's main thread does: writes the games the nodes report
to episodes.csv (and TensorBoard with ``--tensorboard``), prints progress, writes
checkpoint.npz (atomically, from the parameter actor's state), records the videos of
``--video-every`` (on its own machine, from the global parameters), and stops everything on
Ctrl-C or SIGTERM with a final checkpoint.

Faults:

- a node actor that dies (its process killed, its machine gone) is restarted by Ray (up to
  ``--node-restarts`` times) and the driver gives it its work again: it starts from the
  global parameters; the other nodes train on meanwhile. What it had not synced (at most one
  sync interval of updates and games) is lost; every game it synced is logged;
- a learner that raises stops the run with its traceback, as on one machine (no checkpoint
  of the possibly diverged state);
- the parameter actor dying stops the run with a message; the last checkpoint is kept
  and ``--resume`` continues from it (with or without ``--ray``, any number of nodes).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import sys
import threading
import time

import numpy as np

from .. import checkpoint as ckpt
from ..errors import LearnerError, RayRunError, RunIOError
from ..state import annealed_lr
from ..stats import EpisodeLog, ScoreWindow, learning_summary, learning_values, progress_line, read_episodes
from ..trainer import stop_on_signals
from . import require_ray, wait_answer
from .node import Node
from .server import ParamServer

STOP_GRACE_S = 30.0  # after a stop, how long nodes get to finish their segment and sync
COLLECT_TIMEOUT_S = 600.0  # the parameter actor not answering for this long: it is gone
START_TIMEOUT_S = 120.0  # the parameter actor placed and answering
COLLECT_WAIT_S = 60.0  # a slower answer is reported (a loaded machine has kept it waiting 120 s: node.py)




def connect(address: str | None, out=None):
    """``ray.init`` for ``--ray ADDRESS``: None or "local" starts a local Ray instance (no
    dashboard: start one with ``ray start --head`` to get it); "auto" or "HOST:PORT" joins
    a running cluster. Returns the ``ray`` module; raises ValueError when it cannot connect."""
    ray = require_ray()
    import logging

    if ray.is_initialized():
        return ray
    local = address in (None, "", "local")
    if not local:
        _probe(address)
    kw = dict(log_to_driver=False, logging_level=logging.WARNING)
    try:
        if local:
            ray.init(include_dashboard=False, **kw)
        else:
            ray.init(address=address, **kw)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
        where = "start a local Ray instance" if local else f"connect to the Ray cluster at {address}"
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"cannot {where}: {msg}") from None
    return ray


def _probe(address, timeout=10.0):
    """A HOST:PORT that nothing answers on fails here, in seconds (``ray.init`` retries for
    minutes); "auto" and ``ray://`` addresses are left to Ray."""
    import socket

    if "://" in address or ":" not in address:
        return
    host, _, port = address.rpartition(":")
    try:
        port = int(port)
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except ValueError:
        raise ValueError(f"--ray {address}: expected HOST:PORT (e.g. 10.0.0.1:6379), auto or local") from None
    except OSError as exc:
        raise ValueError(f"cannot connect to the Ray cluster at {address}: {exc.strerror or exc} "
                         "(is it running? ray start --head prints its address)") from None


def disconnect():
    """``ray.shutdown()``: leave the cluster (a local instance started by :func:`connect` stops)."""
    require_ray().shutdown()


def cluster_cpus(ray) -> int:
    return int(ray.cluster_resources().get("CPU", 0))


def head_node_id(ray) -> str | None:
    """The Ray head node's id (None if Ray does not say which node is the head)."""
    for n in ray.nodes():
        if n.get("Alive") and "node:__internal_head__" in n.get("Resources", {}):
            return n["NodeID"]
    return None


class RayTrainer:
    """One training run on Ray; the same interface as :class:`~fastasync.trainer.Trainer`
    (``net``, ``prepare_run_dir()``, ``run()`` -> summary). ``cfg`` must be resolved; Ray
    must be connected (:func:`connect`)."""

    def __init__(self, cfg, resume: dict | None = None, out=None):
        from ..state import assemble

        self.ray = require_ray()
        self.out = out or (lambda msg: print(msg, file=sys.stderr, flush=True))
        r = cfg.run
        have = cluster_cpus(self.ray)
        if r.nodes * r.threads > have:
            raise ValueError(
                f"--nodes {r.nodes} x --threads {r.threads} need {r.nodes * r.threads} CPUs; the Ray cluster has {have}: "
                "lower them, or add machines (ray start --address ...)"
            )
        self.state = st = assemble(cfg, resume, nodes=r.nodes)  # the same assembly as one machine's Trainer
        self.cfg = st.cfg
        self.info, self.net, self.head = st.info, st.net, st.head
        self.run_dir = r.run_dir
        self.resume_frames = st.frames if resume is not None else None
        self.resume_path = resume["path"] if resume is not None else None
        self.interrupted = False
        self.stop_signal = None  # the signal that stopped the run (SIGINT or SIGTERM), if one did
        self.prepared = False
        self._stop = threading.Event()
        self.last_collect = None
        self.tb = None  # the TensorBoard writer while the run trains with --tensorboard
        self.videos = None  # --video-every: the recorder (fastasync.video) while the run trains

    def prepare_run_dir(self):
        """The same run directory as a one-machine run (``RunState.prepare_run_dir``)."""
        self.state.prepare_run_dir()
        self.prepared = True

    # -- the run --------------------------------------------------------------------------

    def _start_actors(self):
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        ray, r, st = self.ray, self.cfg.run, self.state
        here = head_node_id(ray) or ray.get_runtime_context().get_node_id()
        self.ps_name = f"fastasync-params-{os.getpid()}-{time.time_ns()}"
        self.ps = ray.remote(ParamServer).options(
            name=self.ps_name, num_cpus=0, max_restarts=0,
            # on the head node: the cluster does not outlive it anyway (machines that come and
            # go take node actors with them, never the global state)
            scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=here, soft=False),
        ).remote(st.theta, st.rms_g, st.target, st.frames, r.frames, self.cfg.algo.target_update_frames,
                 st.wall_s, r.nodes, r.threads, st.rng_states, st.final_epsilon, self._obs())
        # a node that dies is restarted by Ray and its run() retried there (from the global
        # parameters); its handle of the parameter actor is looked up by name, so that the
        # constructor's arguments are plain values Ray can always restart it with
        node_cls = ray.remote(Node).options(
            num_cpus=r.threads, max_restarts=r.node_restarts, max_task_retries=-1, scheduling_strategy="SPREAD")
        cfg = self.cfg.to_dict()
        sig = self.net.layout.signature()
        self.actors = [node_cls.remote(k, cfg, self.ps_name, sig, r.sync_every_updates, r.sync_every_s)
                       for k in range(r.nodes)]
        self.refs = {a.run.remote(): k for k, a in enumerate(self.actors)}

    def _obs(self):
        """The observation statistics to start from (vector observations normalised), else None."""
        norm = self.state.obsnorm
        stats = norm.state() if norm is not None else {}  # empty where obs-norm is off
        return stats or None

    def _norm(self, st):
        """The driver's ObsNorm holding the statistics of the state ``st`` (a video's agent)."""
        norm = self.state.obsnorm
        if norm is not None and norm.enabled:
            norm.load(st["extra"], "the parameter actor's state")
        return norm

    def run(self) -> dict:
        """Train to the frame budget (or Ctrl-C / SIGTERM). Returns a summary dict; raises
        LearnerError (a learner raised) or RayRunError (the parameter actor died, or every node)."""
        if not self.prepared:
            self.prepare_run_dir()
        try:
            with stop_on_signals(self, self._stop):  # the nodes stop at their next sync
                return self._run()
        finally:
            self.close()
            if self.tb is not None:
                self.tb.close()
                self.tb = None

    def close(self):
        """Stop every actor of this run (the connection to Ray stays: ``ray.shutdown()``)."""
        ray = self.ray
        for a in getattr(self, "actors", []):
            with contextlib.suppress(Exception):
                ray.kill(a, no_restart=True)
        if getattr(self, "ps", None) is not None:
            with contextlib.suppress(Exception):
                ray.kill(self.ps, no_restart=True)
        self.actors, self.ps = [], None

    def stop(self):
        """Stop the run from another thread (as Ctrl-C does)."""
        self.interrupted = True
        self._stop.set()

    def _run(self) -> dict:
        ray, r = self.ray, self.cfg.run
        from ray.exceptions import GetTimeoutError, RayActorError, RayTaskError

        path = os.path.join(self.run_dir, "episodes.csv")
        window = ScoreWindow(10)
        if self.state.games and os.path.exists(path):
            for score in read_episodes(path)["score"][-10:]:
                window.add(score)
        window.games = self.state.games
        self.out(f"starting the parameter actor and {r.nodes} node actor(s) ...")
        self._start_actors()
        try:
            self.out(f"parameter actor on {ray.get(self.ps.where.remote(), timeout=START_TIMEOUT_S)}")
        except (RayActorError, GetTimeoutError) as exc:
            raise RayRunError(f"the parameter actor did not start: {exc}") from None
        log = EpisodeLog(path)
        if r.tensorboard:
            from ..tb import TBWriter

            self.tb = TBWriter(self.run_dir, self.resume_frames)
        if r.video_every:
            from ..video import PeriodicRecorder

            self.videos = PeriodicRecorder(self.cfg, self.net, self.info, self.run_dir, self.state.frames, self.tb,
                                           self.out)
        t0 = time.monotonic()
        start_frames = frames = last_frames = self.state.frames
        wall = self.state.wall_s
        last_ckpt = last_progress = t0
        diag_seen = np.zeros(6)
        error = None  # (message, traceback) of a learner or node that failed
        stop_at = None  # when stopping: the deadline for the nodes' last syncs
        ps_dead = None
        c, st = {"stop": None}, None  # the last answer of the parameter actor (and its state)

        def fetch(with_state=False):
            # a slow answer is waited for (and said); none in COLLECT_TIMEOUT_S: the actor is gone
            c = wait_answer(self.ps.collect.remote(with_state), COLLECT_WAIT_S, self.out, COLLECT_TIMEOUT_S)
            st = c.pop("state")
            if c["games"]:
                log.write(c["games"])
                for g in c["games"]:
                    window.add(g[3])
                    if self.tb is not None:
                        self.tb.game(g[0], g[3], g[4])
            for ev in c["events"]:
                self.out(ev)
            return c, st

        try:
            while True:
                self._stop.wait(0.25)
                now = time.monotonic()
                try:
                    c, _ = fetch()
                except (RayActorError, GetTimeoutError) as exc:
                    ps_dead = exc
                    break
                frames, wall = c["frames"], c["wall_s"]
                self.last_collect = c  # for fastasync bench
                if now - last_progress >= r.progress_every_s:
                    fps = (frames - last_frames) / (now - last_progress)
                    last_frames, last_progress = frames, now
                    learning = learning_summary(c["diag"] - diag_seen, self.head)
                    if self.tb is not None:
                        self._tb_progress(c, c["diag"] - diag_seen, fps, window)
                    diag_seen = c["diag"]
                    self.out(progress_line(frames, r.frames, fps, window.games, window.mean(), wall,
                                           max((r.frames - frames) / fps, 0) if fps > 0 else float("inf"), learning))
                if now - last_ckpt >= r.checkpoint_every_s and error is None:
                    try:
                        self._checkpoint(fetch, window)
                    except (RayActorError, GetTimeoutError) as exc:
                        ps_dead = exc
                        break
                    except OSError as exc:
                        self.out(f"warning: could not write a checkpoint: {exc}")
                    last_ckpt = now
                if self.videos is not None and self.videos.due(frames) and error is None:
                    try:  # the global parameters as they are now (as a checkpoint takes them)
                        _c, st = fetch(with_state=True)
                    except (RayActorError, GetTimeoutError) as exc:
                        ps_dead = exc
                        break
                    self.videos.poll(st["frames"], st["theta"], self._norm(st))
                ready, _ = ray.wait(list(self.refs), num_returns=len(self.refs), timeout=0) if self.refs else ([], [])
                for ref in ready:
                    k = self.refs.pop(ref)
                    try:
                        res = ray.get(ref)
                    except RayActorError as exc:  # restarts used up (Ray restarts it until then)
                        why = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
                        self.out(f"node {k}: lost for good (--node-restarts {r.node_restarts} used up): {why}")
                        self.ps.node_lost.remote(k, why)
                    except RayTaskError as exc:  # the node's own code raised (an env missing there, ...)
                        error = error or (f"node {k} failed: {exc.cause if exc.cause is not None else exc}", str(exc))
                    else:
                        if res.get("error"):
                            error = error or (f"node {k}: {res['error']}", res.get("tb", ""))
                if error is not None or self.interrupted or c["stop"]:
                    if stop_at is None:
                        self.ps.request_stop.remote("stopped" if error is None else "error")
                        grace = max(STOP_GRACE_S, 3 * r.sync_every_s)
                        stop_at = time.monotonic() + grace
                if not self.refs:
                    break
                if stop_at is not None and time.monotonic() > stop_at:
                    left = sorted(self.refs.values())
                    states = ", ".join(f"node {k} {c['states'].get(k, 'not started')}" for k in left)
                    self.out(f"node(s) {', '.join(map(str, left))} did not stop within {grace:.0f}s of the stop "
                             f"({states}: restarting, or waiting for CPUs); their unsynced games are lost")
                    break
            if ps_dead is None and error is None:
                try:
                    c, st = fetch(with_state=True)
                except (RayActorError, GetTimeoutError) as exc:
                    ps_dead = exc
        finally:
            log.close()
            if self.videos is not None:  # the multiples passed at the end too; a stopped run drops the rest
                finished = (st is not None and c["stop"] == "budget" and ps_dead is None and error is None
                            and not self.interrupted)
                if finished:
                    self.videos.poll(st["frames"], st["theta"], self._norm(st))
                self.videos.close(wait=finished)
        if ps_dead is not None:
            why = " ".join(str(ps_dead).split())[:300] or type(ps_dead).__name__
            note = self._last_checkpoint_note()
            raise RayRunError(
                f"the parameter actor died ({why}); training stopped at about {frames:,} frames. {note}", note)
        if error is not None:
            raise LearnerError(-1, RuntimeError(error[0]), error[1], self._last_checkpoint_note(), message=error[0])
        if not self.interrupted and c["stop"] is None:
            self._save(st, window.games)  # what was trained is kept
            note = f"the checkpoint is written: resume with fastasync train --resume {self.run_dir} --ray ..."
            raise RayRunError(f"every node was lost (restarts used up) at {c['frames']:,} frames; {note}", note)
        saved = self._save(st, window.games)
        elapsed = time.monotonic() - t0
        summary = dict(
            frames=st["frames"], train_frames=st["frames"] - start_frames, elapsed_s=elapsed,
            fps=(st["frames"] - start_frames) / max(elapsed, 1e-9), games=window.games,
            mean_score_last10=window.mean(), interrupted=self.interrupted, checkpoint_saved=saved,
            stop_signal=self.stop_signal or (int(signal.SIGINT) if self.interrupted else None),
            run_dir=self.run_dir, games_synced=c["games_in"],
        )
        self.out(progress_line(st["frames"], r.frames, summary["fps"], window.games, window.mean(), st["wall_s"], 0))
        syncs = sum(c["syncs"].values())
        if syncs:
            self.out(f"parameter exchange: {syncs:,} syncs, {1000 * c['sync_s'] / syncs:.1f} ms each on average "
                     f"(the node's sync loop; its learners go on meanwhile)")
        return summary

    def _tb_progress(self, c, diag, fps, window):
        frames, eps = c["frames"], None
        if self.head == "q" and c["final_epsilons"]:  # the threads' mean epsilon, as on one machine
            from ..algorithms import epsilon_at

            eps = epsilon_at(float(np.mean(c["final_epsilons"])), frames, self.cfg.algo.eps_anneal_frames)
        lr = annealed_lr(self.cfg.optim.lr, frames, self.cfg.run.frames, self.cfg.optim.lr_warmup_frames)
        self.tb.progress(frames, learning_values(diag, self.head), fps, lr, window.mean(), eps)

    def _checkpoint(self, fetch, window):
        _c, st = fetch(with_state=True)
        self._save(st, window.games)

    def _save(self, st, games) -> bool:
        if not np.isfinite(st["theta"]).all():
            self.out("warning: parameters are not finite; the last good checkpoint is kept")
            return False
        try:
            ckpt.save(
                os.path.join(self.run_dir, ckpt.CHECKPOINT_NAME),
                theta=st["theta"], rms_g=st["rms_g"], frames=st["frames"], wall_s=st["wall_s"], games=games,
                rng_states=st["rng_states"], config=self.cfg.to_dict(),
                layout_signature=self.net.layout.signature(), extra=st["extra"],
            )
        except OSError as exc:
            raise RunIOError(
                f"could not write the checkpoint: {exc.strerror or exc}. {self._last_checkpoint_note()}") from None
        return True

    def _last_checkpoint_note(self):
        path = os.path.join(self.run_dir, ckpt.CHECKPOINT_NAME)
        if not os.path.exists(path):
            return "No checkpoint was written."
        return (f"The last good checkpoint is kept: resume with fastasync train --resume {self.run_dir} "
                "(add --ray to continue on Ray)")


def with_threads(cfg, threads):
    return dataclasses.replace(cfg, run=dataclasses.replace(cfg.run, threads=threads))


def connect_run(cfg, address):
    """Connect to Ray for the run ``cfg`` (a ConfigError with the install command when Ray is
    missing); --threads left out: each node gets the cluster's CPUs / --nodes."""
    from ..errors import ConfigError, RayMissing

    try:
        ray = connect(address)
    except RayMissing as exc:
        raise ConfigError(str(exc)) from None
    if cfg.run.threads == 0:
        cfg = with_threads(cfg, max(1, cluster_cpus(ray) // cfg.run.nodes))
    return cfg
