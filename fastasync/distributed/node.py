"""A node actor: today's threaded Hogwild trainer on a local copy of the parameters.

The node builds a :class:`~fastasync.trainer.Trainer` from the global state the parameter
actor gives it (its learner threads, env batches and pinned CPUs, exactly as on one
machine), and runs its learner threads. Its own loop syncs with the parameter actor every
``sync_every_updates`` local updates or ``sync_every_s`` seconds, whichever comes first:

1. snapshot the local parameters (``snap``); send ``snap - base`` (the change since the last
   sync), the frames played and the games finished since, its RMSProp statistics and
   generator states;
2. get the global parameters ``G`` back (they include this node's change) and the global
   frame count ``F``;
3. ``theta += G - snap``: the global parameters plus what the learners changed during the
   round trip (kept, and sent with the next sync); ``base = G``; the local frame counter
   becomes ``F`` plus the frames played during the round trip.

Vector observations' running statistics (fastasync.obsnorm) go the same way: the moments
merged since the last sync are sent, the global ones come back, plus what the learners merged
during the round trip.

The learners never wait for a sync: like the threads' updates on one machine, the copy in
step 3 races with them (Hogwild). The learning rate and epsilon follow the node's view of
the global frame count (at most one sync interval of the other nodes' frames behind).

Plain Python; the driver wraps it with ``ray.remote`` (a Ray actor, restarted by Ray when
its process or machine is lost: then it starts again from the global parameters).
"""

from __future__ import annotations

import json
import os
import time

import numpy as np

from ..obsnorm import difference
from . import wait_answer

NO_TARGET_COPY = 1 << 62  # the node's learners never copy the target: the parameter actor does
QUIET = ("compiling kernels",)
SYNC_TIMEOUT_S = 60.0  # a sync unanswered this long is reported (and waited for on: Node._wait_sync)


class Node:
    """Node ``index`` of a Ray run; ``cfg`` is the run's TrainConfig as a dict, ``ps_name``
    the parameter actor's name, ``layout`` the net's layout signature."""

    def __init__(self, index, cfg, ps_name, layout, sync_every_updates, sync_every_s):
        self.index = int(index)
        self.cfg_dict = cfg
        self.ps_name = ps_name
        self.layout = json.loads(json.dumps(layout))
        self.sync_every_updates = int(sync_every_updates)
        self.sync_every_s = float(sync_every_s)
        self.messages = []
        self.trainer = None
        self.sync_s = 0.0  # seconds this node spent in syncs (reported with each sync)

    def pid(self):
        return os.getpid()

    def _out(self, msg):
        if not msg.startswith(QUIET):
            self.messages.append(msg)

    def node_config(self):
        """The run's config with this node's seed: its env batches play other games than the
        other nodes' (parameters come from the parameter actor, so the seed changes nothing else)."""
        import dataclasses

        from ..config import TrainConfig

        cfg = TrainConfig.from_dict(self.cfg_dict)
        return dataclasses.replace(cfg, run=dataclasses.replace(cfg.run, seed=cfg.run.seed + 7_919 * self.index))

    def run(self):
        """Train until the parameter actor says stop; returns a summary dict (``error`` set,
        with the traceback, when a learner raised)."""
        from threadpoolctl import threadpool_limits

        from ..perf import load_blas
        from ..trainer import Trainer
        from . import require_ray

        ray = require_ray()
        self.ps = ray.get_actor(self.ps_name)
        host = ray.util.get_node_ip_address()
        where = f"{host} (Ray node {ray.get_runtime_context().get_node_id()[:8]}, pid {os.getpid()})"
        st = self._wait_sync(self.ps.join.remote(self.index, host, where))  # however slow, never twice
        if st["stop"]:
            return dict(node=self.index, frames=0, error=None)
        cfg = self.node_config()
        threads = cfg.run.threads
        resume = dict(
            path=f"the global parameters (node {self.index})",
            theta=np.array(st["theta"], np.float32), rms_g=np.array(st["rms_g"], np.float32),
            frames=st["frames"], wall_s=st["wall_s"], games=0,
            rng_states=np.asarray(st["rng_states"], np.uint64).reshape(-1, 2),
            layout=self.layout,
            extra={k: v for k, v in (("target", st["target"]), ("final_epsilon", st["final_epsilon"])) if v is not None},
        )
        if st["obs"] is not None:  # vector observations: the global statistics to normalise with
            resume["extra"].update(st["obs"])
        load_blas()
        with threadpool_limits(1):
            self.trainer = tr = Trainer(cfg, resume=resume, out=self._out, cpu_offset=st["rank"] * threads)
            s = tr.shared
            s.target_period = NO_TARGET_COPY
            self.target_version = st["target_version"]
            tr.compile()
            self.base = s.theta.copy()
            self.obs_base = st["obs"]  # the global observation statistics as of the last sync
            self.frames_base = s.frames
            self.diag_seen = np.zeros(6)
            self.played = 0
            self._sync()  # the global parameters as they are now (compiling took a while)
            ths = tr.start_learners()
            try:
                self._loop(ths)
            finally:
                s.stop.set()
                stuck = tr.join_learners(ths)  # the one machine's rule: reported with the env, left behind
                for lr, th in zip(tr.learners, ths):
                    if th not in stuck:
                        lr.env.close()
            if s.error is not None:  # the failed state may be diverged: not sent
                return dict(node=self.index, frames=self.played, error=str(s.error), tb=s.error.tb)
            self._sync(last=True)
        return dict(node=self.index, frames=self.played, error=None)

    def _wait_sync(self, ref):
        """The parameter actor's answer to one sync, however slow (``wait_answer``); the wait is
        reported with the node's next sync."""
        return wait_answer(ref, SYNC_TIMEOUT_S, self.messages.append)

    def _loop(self, threads):
        s = self.trainer.shared
        learners = self.trainer.learners
        last_t, last_u = time.monotonic(), 0
        while any(th.is_alive() for th in threads) and s.error is None:
            time.sleep(0.01)
            u = sum(lr.updates for lr in learners)
            now = time.monotonic()
            if u - last_u >= self.sync_every_updates or now - last_t >= self.sync_every_s:
                self._sync()
                last_t, last_u = now, u

    def _sync(self, last=False):
        """One exchange with the parameter actor (the module docstring's steps 1-3)."""
        t_start = time.perf_counter()
        tr = self.trainer
        s = tr.shared
        snap = s.theta.copy()
        with s.lock:
            cur = s.frames
        played = cur - self.frames_base
        T = tr.cfg.run.threads
        now = s.wall_s()
        games = []
        while s.games:
            at, wall, thread, score, length = s.games.popleft()
            games.append((now - wall, self.index * T + thread, score, length, at))
        diag = sum(lr.diag for lr in tr.learners)
        rng = np.stack([lr.rng_state for lr in tr.learners])
        eps = np.array([lr.algo.final_epsilon for lr in tr.learners]) if s.target is not None else None
        msgs, self.messages = self.messages, []
        obs_now = s.obsnorm.state() if self.obs_base is not None else None
        obs_new = difference(obs_now, self.obs_base) if obs_now else None  # merged here since the last sync
        ref = self.ps.sync.remote(self.index, snap - self.base, played, games, diag - self.diag_seen, s.rms_g, rng,
                                  eps, self.target_version, last, msgs, self.sync_s, obs_new)
        theta, frames, target, version, stop, obs = self._wait_sync(ref)
        self.diag_seen = diag
        self.played += played
        s.theta += theta - snap  # keeps what the learners did during the round trip (Hogwild)
        np.copyto(self.base, theta)
        with s.lock:
            s.frames = frames + (s.frames - cur)
        self.frames_base = frames
        if obs_now:  # the global statistics, plus what the learners merged during the round trip
            s.obsnorm.rebase(obs_now, obs)
            self.obs_base = obs
        if target is not None:
            np.copyto(s.target, target)
            self.target_version = version
        if stop:
            s.stop.set()
        self.sync_s += time.perf_counter() - t_start
