"""The parameter actor: the run's global state, changed only by the nodes' syncs.

It holds the global parameters theta, the global frame counter (which drives the learning
rate and epsilon schedules and the frame budget), the target network of the Q methods,
the RMSProp statistics and generator states the nodes last reported (for the checkpoint and
for nodes that start later), and the finished games waiting for the driver's episode log.

A node's sync adds the change of its parameters since its previous sync to theta (no lock
across nodes is needed: a Ray actor runs one call at a time) and gets the current theta
back. No node ever waits for another: a sync costs one round trip to this actor.

Plain Python (no Ray import): the driver wraps it with ``ray.remote``; tests can call it
directly.
"""

from __future__ import annotations

import time

import numpy as np

from ..obsnorm import combine


class ParamServer:
    """Global state of a Ray run.

    ``theta``, ``rms_g``: float32[P] to start from; ``target``: float32[P] (Q methods) or
    None; ``frames``, ``wall_s``: the counters to continue from (0 for a new run);
    ``rng_states``: uint64[R, 2] of the checkpoint's learners (node k's learner i takes row
    ``k * threads + i``; rows missing are seeded by the node); ``final_epsilon``: float[R] or None;
    ``obs``: the observation statistics of vector observations (fastasync.obsnorm, ``KEYS``)
    or None where the run does not normalise them.
    """

    def __init__(self, theta, rms_g, target, frames, total_frames, target_period, wall_s, nodes, threads,
                 rng_states, final_epsilon=None, obs=None):
        self.theta = np.array(theta, np.float32)
        self.rms_start = np.array(rms_g, np.float32)
        self.target = None if target is None else np.array(target, np.float32)
        self.target_version = 0
        self.frames = int(frames)
        self.total_frames = int(total_frames)
        self.target_period = int(target_period)
        self.wall_offset = float(wall_s)
        self.t0 = time.monotonic()
        self.nodes, self.threads = int(nodes), int(threads)
        self.rng_start = np.asarray(rng_states, np.uint64)
        self.eps_start = None if final_epsilon is None else np.asarray(final_epsilon, np.float64)
        self.node_rms = {}  # node -> its last reported RMSProp statistics
        self.node_rng = {}  # node -> uint64[threads, 2]
        self.node_eps = {}  # node -> float[threads]
        self.info = {}  # node -> dict(host, pid, rank, joins, syncs, state)
        self.games = []  # (frames, wall_s, thread, score, length), for the driver
        self.last_stamp = self.frames  # the frames of the last game logged (they never decrease)
        self.games_in = 0
        self.events = []  # lines for the driver's output
        self.diag = np.zeros(6, np.float64)  # the learners' running sums (progress line)
        self.stop_reason = None
        self.obs = None if not obs else {k: np.array(v, np.float64) for k, v in obs.items()}

    # -- node side ------------------------------------------------------------------------

    def wall_s(self):
        return self.wall_offset + time.monotonic() - self.t0

    def join(self, node, host, where):
        """A node (new or restarted) starts on machine ``host`` (``where`` says more, for the
        output): its CPU rank on its host and the state to start from."""
        info = self.info.get(node)
        taken = {v["rank"] for k, v in self.info.items() if k != node and v["host"] == host}
        rank = next(r for r in range(len(self.info) + 1) if r not in taken)
        joins = 1 if info is None else info["joins"] + 1
        before = 0.0 if info is None else info["sync_s_total"]
        self.info[node] = dict(host=host, where=where, rank=rank, joins=joins, syncs=0, state="running",
                               syncs_total=0 if info is None else info["syncs_total"],
                               sync_s_before=before, sync_s_total=before)
        what = "started" if joins == 1 else f"restarted (start {joins}) from the global parameters"
        self.events.append(f"node {node}: {what} on {where}")
        lo = node * self.threads
        return dict(
            theta=self.theta, rms_g=self.rms_g(), target=self.target, target_version=self.target_version,
            frames=self.frames, wall_s=self.wall_s(), rank=rank, stop=self.stop_reason is not None,
            rng_states=self.node_rng.get(node, self.rng_start[lo : lo + self.threads]),
            final_epsilon=self.node_eps.get(node, None if self.eps_start is None else self.eps_start[lo : lo + self.threads]),
            obs=self.obs,
        )

    def sync(self, node, delta, frames, games, diag, rms_g, rng_states, final_epsilon, target_version, last=False,
             messages=(), sync_s=0.0, obs=None):
        """Apply a node's change since its last sync; returns (theta, frames, target or None,
        target version, stop, observation statistics or None).

        ``delta``: float32[P], its parameters' change; ``frames``: the frames it played since;
        ``games``: (age_s, thread, score, length, frames) of the games it finished since (thread
        is the run-wide learner index; frames, the node's view of the global count at the end
        of the game); ``diag``: its learners' running sums since; ``rms_g``, ``rng_states``,
        ``final_epsilon``: its current ones; ``target_version``: the target network version it
        holds (the target is sent only when it changed); ``last``: the node is done;
        ``messages``: lines for the driver's output; ``sync_s``: the seconds this node has spent
        in syncs so far (its learners do not wait for them, but they take its CPUs' time);
        ``obs``: the moments of the observations its learners merged since (obsnorm.difference).
        """
        self.theta += delta
        if self.obs is not None and obs is not None:
            self.obs = combine(self.obs, obs)
        before = self.frames
        self.frames += int(frames)
        if self.target is not None and self.frames // self.target_period != before // self.target_period:
            self.target[:] = self.theta
            self.target_version += 1
        now = self.wall_s()
        for age, thread, score, length, at in sorted(games, key=lambda g: g[4]):
            # stamped no later than the global count that includes them (a checkpoint written
            # after this sync counts every game logged so far) and no earlier than the game
            # logged before (a node's count lags the others' syncs since its own): episodes.csv
            # stays in frame order, as a one-machine run's
            self.last_stamp = max(self.last_stamp, min(int(at), self.frames))
            self.games.append((self.last_stamp, now - age, thread, score, length))
        self.games_in += len(games)
        self.diag += diag
        self.node_rms[node] = np.array(rms_g, np.float32)
        self.node_rng[node] = np.array(rng_states, np.uint64)
        if final_epsilon is not None:
            self.node_eps[node] = np.array(final_epsilon, np.float64)
        for m in messages:
            self.events.append(f"node {node}: {m}")
        info = self.info.get(node)
        if info is not None:
            info["syncs"] += 1
            info["syncs_total"] += 1
            info["sync_s_total"] = info["sync_s_before"] + sync_s
            if last:
                info["state"] = "done"
        if self.stop_reason is None and self.frames >= self.total_frames:
            self.stop_reason = "budget"
        target = self.target if self.target is not None and target_version != self.target_version else None
        return self.theta, self.frames, target, self.target_version, self.stop_reason is not None, self.obs

    # -- driver side ----------------------------------------------------------------------

    def where(self):
        """Where this actor runs (for the driver's output)."""
        import os
        import socket

        import ray

        return f"{socket.gethostname()} (Ray node {ray.get_runtime_context().get_node_id()[:8]}, pid {os.getpid()})"

    def rms_g(self):
        """RMSProp statistics for the checkpoint and new nodes: the mean of the nodes' last
        reported ones (each node keeps its own; docs/ray.md)."""
        if not self.node_rms:
            return self.rms_start
        return np.mean(np.stack(list(self.node_rms.values())), axis=0).astype(np.float32)

    def request_stop(self, reason="stopped"):
        if self.stop_reason is None:
            self.stop_reason = reason

    def node_lost(self, node, why):
        info = self.info.get(node)
        if info is not None:
            info["state"] = "lost"
        self.events.append(f"node {node}: lost ({why})")

    def collect(self, with_state=False):
        """The games and events since the last call, the counters (the driver's loop) and,
        ``with_state``, the state for a checkpoint, taken at the same time: every game
        returned is counted in its frames, and every game it counts is returned."""
        games, events = self.games, self.events
        self.games, self.events = [], []
        if with_state:  # games synced from now on are not in this state's frames: stamped at or past them
            self.last_stamp = max(self.last_stamp, self.frames)  # (a node's view of the count lags; the chaos
            # check found games of a lagging node stamped before a checkpoint but logged after it)
        states = {k: v["state"] for k, v in self.info.items()}
        return dict(games=games, events=events, frames=self.frames, wall_s=self.wall_s(), diag=self.diag.copy(),
                    stop=self.stop_reason, states=states, games_in=self.games_in,
                    syncs={k: v["syncs_total"] for k, v in self.info.items()},
                    sync_s=sum(v["sync_s_total"] for v in self.info.values()),
                    final_epsilons=[float(e) for v in self.node_eps.values() for e in v],
                    state=self.state() if with_state else None)

    def state(self):
        """The global state for a checkpoint (theta, rms_g, frames, wall_s, rng_states, extra)."""
        rows, eps = [], []
        for k in range(max([self.nodes, *[n + 1 for n in self.node_rng]])):
            lo = k * self.threads
            start = self.rng_start[lo : lo + self.threads]
            got = self.node_rng.get(k)
            rows.append(got if got is not None else start)
            if self.target is not None:
                e = self.node_eps.get(k)
                if e is None and self.eps_start is not None:
                    e = self.eps_start[lo : lo + self.threads]
                eps.append(e if e is not None and len(e) else np.full(len(rows[-1]), np.nan))
        rng = np.concatenate([r for r in rows if len(r)]) if any(len(r) for r in rows) else self.rng_start
        extra = {k: v.copy() for k, v in self.obs.items()} if self.obs is not None else {}
        if self.target is not None:
            extra["target"] = self.target.copy()
            e = np.concatenate(eps) if eps else np.zeros(0)
            if len(e) and not np.isnan(e).any():
                extra["final_epsilon"] = e
        return dict(theta=self.theta.copy(), rms_g=self.rms_g(), frames=self.frames, wall_s=self.wall_s(),
                    rng_states=rng, extra=extra)
