"""Shared state, learner threads, schedules, stats, checkpoints, stop and crash handling.

The trainer builds the net and the shared arrays (params, RMSProp statistics), one env
batch and one :class:`~fastasync.learner.Learner` per thread, compiles every kernel before
any thread starts, then runs the threads (Hogwild: no lock on the parameters) while the
main thread logs games, prints progress and writes checkpoints. Ctrl-C stops every thread
within a segment and writes a final checkpoint; a learner that raises stops the run and
its error is raised in the main thread (no silent dead workers).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
import traceback
from collections import deque

import numpy as np

from . import checkpoint as ckpt
from . import placement
from .config import TrainConfig
from .errors import LearnerError, RunIOError
from .state import annealed_lr
from .stats import (
    EpisodeLog,
    OutcomeWindow,
    ScoreWindow,
    learning_summary,
    learning_values,
    progress_line,
    read_episodes,
)




JOIN_TIMEOUT_S = 10.0  # after the stop: a learner's segment takes milliseconds, one still running is stuck


class SharedState:
    """What every learner thread shares: parameters, RMSProp statistics, counters, stop flag."""

    def __init__(self, theta, rms_g, total_frames, frames, lr, target=None, target_period=40_000, lr_warmup_frames=0):
        self.theta = theta
        self.rms_g = rms_g
        self.target = target  # Q methods: the target network's parameters
        self.target_period = int(target_period)
        self.total_frames = int(total_frames)
        self.frames = int(frames)
        self.lr0 = float(lr)
        self.lr_warmup_frames = int(lr_warmup_frames)
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.games = deque()
        self.obsnorm = None  # vector observations: fastasync.obsnorm.ObsNorm, beside theta
        self.error = None
        self.t0 = time.monotonic()
        self.wall_offset = 0.0

    def lr_at(self, frames):
        """Learning rate annealed linearly from lr0 to 0 over the run (paper), after the warm-up
        ramp if the run has one."""
        return annealed_lr(self.lr0, frames, self.total_frames, self.lr_warmup_frames)

    def add_frames(self, n):
        """Add n frames; returns the count before (exact under threads)."""
        with self.lock:
            before = self.frames
            self.frames += n
        return before

    def wall_s(self, now=None):
        return self.wall_offset + ((now if now is not None else time.monotonic()) - self.t0)

    def report_game(self, thread, score, length, now):
        self.games.append((self.frames, self.wall_s(now), thread, score, length))

    def fail(self, index, exc):
        with self.lock:
            if self.error is None:
                self.error = LearnerError(index, exc, traceback.format_exc())
        self.stop.set()


ENV_SEED_MOD = 2**31 - 2**16  # env seeds stay in envpool's range whatever --seed and the frame count


def learner_env(cfg: TrainConfig, i: int, cpus, frames: int = 0):
    """Learner i's env batch: its own seeds (moved on by ``frames`` when a run resumes, so a
    resumed run does not replay its first games) and, when ``cpus`` is a plan, its CPU."""
    from .envs import env_options, make_env

    e, r = cfg.env, cfg.run
    return make_env(
        e.env,
        e.envs_per_thread,
        seed=(r.seed * 10_007 + i * 1_009 + frames) % ENV_SEED_MOD,
        **env_options(e),
        cpu=None if cpus is None else cpus[i],
    )


class Trainer:
    """One training run. ``cfg`` must be resolved (threads, backend, run_dir filled in).

    ``cpu_offset``: pin the learners from this CPU on (a Ray node sharing its machine with
    other nodes of the run; fastasync.distributed)."""

    def __init__(self, cfg: TrainConfig, resume: dict | None = None, out=None, cpu_offset: int = 0):
        from .algorithms import make_algorithm
        from .learner import Learner
        from .state import assemble

        self.out = out or (lambda msg: print(msg, file=sys.stderr, flush=True))
        self.state = st = assemble(cfg, resume)  # the frame centre measured, the budget checked
        self.cfg = cfg = st.cfg
        e, a, r = cfg.env, cfg.algo, cfg.run
        self.info, self.net, self.head = st.info, st.net, st.head
        self.run_dir = r.run_dir
        self.shared = SharedState(st.theta, st.rms_g, r.frames, st.frames, cfg.optim.lr, st.target,
                                  a.target_update_frames, cfg.optim.lr_warmup_frames)
        self.shared.wall_offset = st.wall_s
        self.shared.obsnorm = st.obsnorm
        self.games_before = st.games
        self.learners = []
        self.cpus = placement.cpu_plan(r.threads, r.pin_threads, cpu_offset)
        self.pin_refused = []  # learners whose pinning the OS refused (reports say so)
        rng = st.rng_for(r.threads)
        for i in range(r.threads):
            env = learner_env(cfg, i, self.cpus, st.frames)
            algo = make_algorithm(a.algo, cfg, self.net, self.info)
            self.learners.append(Learner(i, self.shared, self.net, algo, env, cfg, rng[i]))
        if st.final_epsilon is not None:  # Q methods: each thread keeps the final epsilon it drew
            for lr, e_final in zip(self.learners, st.final_epsilon):
                lr.algo.set_final_epsilon(float(e_final))
        self.resume_frames = st.frames if st.resumed else None
        self.resume_path = st.resume_path
        self.interrupted = False
        self.stop_signal = None  # the signal that stopped the run (SIGINT or SIGTERM), if one did
        self.prepared = False  # the run directory made and config.json written (prepare_run_dir)
        self.tb = None  # the TensorBoard writer while the run trains with --tensorboard
        self.videos = None  # --video-every: the recorder (fastasync.video) while the run trains
        self._diag_seen = np.zeros(6)
        self.outcomes = OutcomeWindow.for_env(e.env)  # ViZDoom: goal reached / time survived

    # -- checkpoints ----------------------------------------------------------------------

    def save_checkpoint(self, games, frames: int | None = None):
        """Write checkpoint.npz: the parameters now, ``games`` logged, and ``frames`` (default:
        the count now) as the frame count the run resumes from."""
        from .kernels.optim import all_finite

        s = self.shared
        theta = s.theta.copy()
        if not all_finite(theta):
            self.out("warning: parameters are not finite; the last good checkpoint is kept")
            return False
        ckpt.save(
            os.path.join(self.run_dir, ckpt.CHECKPOINT_NAME),
            theta=theta,
            rms_g=s.rms_g.copy(),
            frames=s.frames if frames is None else int(frames),
            wall_s=s.wall_s(),
            games=games,
            rng_states=np.stack([lr.rng_state for lr in self.learners]),
            config=self.cfg.to_dict(),
            layout_signature=self.net.layout.signature(),
            extra=self.state.extra(s.target, [lr.algo.final_epsilon for lr in self.learners] if s.target is not None else None),
        )
        return True

    # -- the run --------------------------------------------------------------------------

    def compile(self):
        t = time.monotonic()
        self.out("compiling kernels (cached after the first run) ...")
        self.learners[0].warmup()
        self.out(f"kernels ready in {time.monotonic() - t:.1f}s")
        self.out(f"{len(self.learners)} learner thread(s): {placement.describe(self.cpus)}")

    def prepare_run_dir(self):
        """Create the run directory, write config.json and, on resume, splice the episode log
        (``rundir.prepare``; raises OSError on failure). Whether this run may write there is
        ``rundir.claim``'s question (the API asks it first)."""
        self.state.prepare_run_dir()
        self.prepared = True

    def run(self) -> dict:
        """Train to the frame budget (or Ctrl-C / SIGTERM). Returns a summary dict; raises LearnerError."""
        from threadpoolctl import threadpool_limits

        from .perf import load_blas

        load_blas()  # threadpoolctl limits only loaded libraries: load the BLAS numba calls first

        if not self.prepared:
            self.prepare_run_dir()
        with threadpool_limits(1), stop_on_signals(self):
            self.compile()
            try:
                return self._run_threads()
            finally:
                if self.tb is not None:
                    self.tb.close()
                    self.tb = None

    def _run_threads(self) -> dict:
        s, r = self.shared, self.cfg.run
        path = os.path.join(self.run_dir, "episodes.csv")
        window = ScoreWindow(10)
        if self.games_before and os.path.exists(path):  # resumed: the progress line goes on where it was
            done = read_episodes(path)
            for score in done["score"][-10:]:
                window.add(score)
            if self.outcomes is not None:
                for score, length in zip(done["score"][-100:], done["length"][-100:]):
                    self.outcomes.add(score, length)
        window.games = self.games_before
        log = EpisodeLog(path)
        if r.tensorboard:
            from .tb import TBWriter

            self.tb = TBWriter(self.run_dir, self.resume_frames)
        if r.video_every:
            from .video import PeriodicRecorder

            self.videos = PeriodicRecorder(self.cfg, self.net, self.info, self.run_dir, s.frames, self.tb, self.out)
        s.t0 = time.monotonic()
        start_frames = s.frames
        last_ckpt = last_progress = s.t0
        last_frames = s.frames
        io_error = None  # the first write of the episode log that failed
        threads = self.start_learners()
        try:
            # until every learner is done, a stop, or the budget spent (a learner stuck in its env
            # must not hold the run: join_learners leaves it behind)
            while any(th.is_alive() for th in threads) and not s.stop.is_set() and s.frames < s.total_frames:
                s.stop.wait(0.2)
                now = time.monotonic()
                try:
                    self._drain(log, window)
                except OSError as exc:  # disk full: stop, keep the last good checkpoint
                    io_error = exc
                    break
                if self.videos is not None:
                    self.videos.poll(s.frames, s.theta, s.obsnorm)
                if now - last_progress >= r.progress_every_s:
                    fps = (s.frames - last_frames) / (now - last_progress)
                    last_frames, last_progress = s.frames, now
                    self._progress(window, fps, now)
                if now - last_ckpt >= r.checkpoint_every_s:
                    # the frame count first, then every game reported up to it: a game that ended
                    # in between (stamped <= the count) would be kept in episodes.csv on a resume
                    # but missing from the checkpoint's game count (the chaos check saw it, 1 game)
                    frames_now = s.frames
                    try:
                        self._drain(log, window)
                    except OSError as exc:  # disk full: stop, keep the last good checkpoint
                        io_error = exc
                        break
                    try:
                        self.save_checkpoint(window.games, frames_now)
                    except OSError as exc:  # the last good checkpoint is still in place
                        self.out(f"warning: could not write a checkpoint: {exc}")
                    last_ckpt = now
        except KeyboardInterrupt:  # when signals cannot be routed to a flag (not the main thread)
            self.interrupted = True
        finally:
            # whatever happened, every learner is told to stop; one stuck in an env step is left behind
            s.stop.set()
            alive = self.join_learners(threads)
            try:
                if io_error is None:
                    self._drain(log, window)
                log.close()
            except OSError as exc:
                io_error = io_error or exc
            for lr, th in zip(self.learners, threads):
                if th not in alive:  # (closing a batch another thread is stepping is not safe)
                    lr.env.close()
            if self.videos is not None:  # the multiples passed at the end too; a stopped run drops the rest
                finished = not self.interrupted and s.error is None and io_error is None
                if finished:
                    self.videos.poll(s.frames, s.theta, s.obsnorm)
                self.videos.close(wait=finished)
        if self.interrupted:
            self.out("\ninterrupted: learner threads stopped")
        if s.error is not None:  # the last good checkpoint is kept: the failed state may be diverged
            e = s.error
            raise LearnerError(e.index, e.exc, e.tb, self._last_checkpoint_note())
        if io_error is not None:  # games went unlogged: a checkpoint now would skip them in the curve
            raise RunIOError(
                f"could not write {log.path}: {io_error.strerror or io_error}; training stopped at {s.frames:,} "
                f"frames. {self._last_checkpoint_note()}"
            )
        try:
            saved = self.save_checkpoint(window.games)
        except OSError as exc:
            raise RunIOError(
                f"could not write the final checkpoint: {exc.strerror or exc}. {self._last_checkpoint_note()}"
            ) from None
        elapsed = time.monotonic() - s.t0
        summary = dict(
            frames=s.frames,
            train_frames=s.frames - start_frames,
            elapsed_s=elapsed,
            fps=(s.frames - start_frames) / max(elapsed, 1e-9),
            games=window.games,
            mean_score_last10=window.mean(),
            interrupted=self.interrupted,
            stop_signal=self.stop_signal or (int(signal.SIGINT) if self.interrupted else None),
            checkpoint_saved=saved,
            run_dir=self.run_dir,
        )
        self._progress(window, summary["fps"], time.monotonic())
        return summary

    def _last_checkpoint_note(self):
        path = os.path.join(self.run_dir, ckpt.CHECKPOINT_NAME)
        if not os.path.exists(path):
            return "No checkpoint was written."
        return f"The last good checkpoint is kept: resume with fastasync train --resume {self.run_dir}"

    def start_learners(self) -> list:
        """Start one thread per learner (compiled kernels, pinned where the OS lets it); a
        learner's exception is reported through the shared state. Also a Ray node's start."""
        threads = [threading.Thread(target=self._thread_main, args=(lr,), name=f"learner-{lr.index}", daemon=True)
                   for lr in self.learners]
        for th in threads:
            th.start()
        return threads

    def join_learners(self, threads, timeout: float | None = None) -> list:
        """Wait for the learner threads after the stop, ``JOIN_TIMEOUT_S`` at most in all; a learner
        still running then is stuck in a step of its env batch (a learner's segment takes
        milliseconds): it is reported, with its env, and left behind (a daemon thread), so that
        the run still writes its checkpoint and exits. Returns the threads left behind."""
        end = time.monotonic() + (JOIN_TIMEOUT_S if timeout is None else timeout)
        for th in threads:
            while th.is_alive() and time.monotonic() < end:
                try:
                    th.join(min(0.5, max(0.0, end - time.monotonic())))
                except KeyboardInterrupt:  # a second Ctrl-C: the same stop
                    self.interrupted = True
        alive = [th for th in threads if th.is_alive()]
        for lr, th in zip(self.learners, threads):
            if th in alive:
                info = lr.env.info
                self.out(f"learner {lr.index} did not stop within {JOIN_TIMEOUT_S if timeout is None else timeout:.0f}s "
                         f"of the stop: stuck in a step of its {info.env_id} batch ({info.backend}); left behind, "
                         "the run goes on without its last segment")
        return alive

    def _thread_main(self, learner):
        if self.cpus is not None and not placement.pin_current_thread(self.cpus[learner.index]):
            self.pin_refused.append(learner.index)  # list.append: safe across threads
            self.out(f"learner {learner.index}: the OS refused to pin it to CPU {self.cpus[learner.index]}; "
                     "it runs unpinned")
        try:
            learner.run()
        except BaseException as exc:  # noqa: BLE001 - reported to the main thread
            self.shared.fail(learner.index, exc)

    def _drain(self, log, window):
        rows = []
        q = self.shared.games
        while q:
            rows.append(q.popleft())
        if rows:
            log.write(rows)
            for row in rows:
                window.add(row[3])
                if self.outcomes is not None:
                    self.outcomes.add(row[3], row[4])
                if self.tb is not None:
                    self.tb.game(row[0], row[3], row[4])

    def _progress(self, window, fps, now):
        s = self.shared
        elapsed = s.wall_s(now)
        remaining = s.total_frames - s.frames
        eta = remaining / fps if fps > 0 else float("inf")
        diag = sum(lr.diag for lr in self.learners)  # racy reads of running sums: fine for a display
        learning = learning_summary(diag - self._diag_seen, self.head)
        if self.outcomes is not None and self.outcomes.text():
            learning = self.outcomes.text() + (f" | {learning}" if learning else "")
        if self.tb is not None:
            self._tb_scalars(diag - self._diag_seen, fps, window)
        self._diag_seen = diag
        self.out(progress_line(s.frames, s.total_frames, fps, window.games, window.mean(), elapsed, max(eta, 0), learning))

    def _tb_scalars(self, diag, fps, window):
        s = self.shared
        eps = float(np.mean([lr.algo.epsilon(s.frames) for lr in self.learners])) if self.head == "q" else None
        self.tb.progress(s.frames, learning_values(diag, self.head), fps, s.lr_at(s.frames), window.mean(), eps)


@contextlib.contextmanager
def stop_on_signals(trainer, stop=None):
    """Ctrl-C (SIGINT) and SIGTERM set ``trainer.interrupted``, ``trainer.stop_signal`` (the
    first signal's number: the CLI exits 128 + it, 130 or 143, as shells and schedulers expect)
    and the stop flag (``stop``, an Event; default: the learners' ``trainer.shared.stop``):
    threads finish their segment, a final checkpoint is written. No exception is raised at a
    random point of the main loop."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    flag = stop if stop is not None else trainer.shared.stop

    # The handler runs in the main thread between two bytecodes, possibly inside Event.wait
    # while that thread holds the Event's lock, or inside itself (signals in quick succession:
    # a Ray worker's death brought several): so it only sets attributes, and a relay thread
    # sets the Event. (It called flag.set() here; a sweep trial then hung for ever, its main
    # thread blocked on the lock it held itself.)
    def handler(signum, frame):
        if not trainer.interrupted:
            trainer.stop_signal = int(signum)
        trainer.interrupted = True

    done = threading.Event()

    def relay():
        while not done.wait(0.05):
            if trainer.interrupted:
                flag.set()
                return

    th = threading.Thread(target=relay, name="fastasync-signal-relay", daemon=True)
    th.start()
    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)
        done.set()
        th.join()
        if trainer.interrupted:
            flag.set()
