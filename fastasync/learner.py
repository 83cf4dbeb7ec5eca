"""One actor-learner thread's loop (Mnih et al. 2016, Algorithm S3, with E envs per thread).

Per segment:
1. snapshot the shared parameters into the learner's own copy (theta' <- theta);
2. for t < t_max: forward the E observations (activations kept), pick actions, step the
   envs (envpool's C++ releases the GIL), record rewards and episode flags;
3. forward s_T (bootstrap), targets and loss gradient (the algorithm), backward through
   the stored activations into the learner's gradient buffer;
4. clip the gradient norm and apply the shared RMSProp to the shared parameters, no lock.

Everything the loop touches is allocated once in ``__init__``; the hot work runs in
``nogil`` Numba kernels, so N learner threads use N cores.
"""

from __future__ import annotations

import time

import numpy as np

from .acting import Actor
from .kernels import optim
from .kernels import segment as ksegment


PHASES = ("snapshot", "forward", "act", "env_step", "glue", "loss", "backward", "apply", "total", "segments")


def _no_clock():
    return 0.0


class Segment:
    """What one learner records over one segment of T steps x E envs (time-major).

    ``action_shape``: () for discrete actions (int32), else the Box shape (float32: the
    Gaussian head's unclipped samples; the env is sent a clipped copy, ``Actor.sent``).
    ``actions``: the (T+1, E[, A]) buffer the actions are picked into (the learner's
    :class:`~fastasync.acting.Actor`'s); None allocates one.
    """

    def __init__(self, T, E, action_shape=(), actions=None):
        self.T, self.E = T, E
        if actions is not None:
            self.actions = actions
        elif action_shape:
            self.actions = np.zeros((T + 1, E, int(np.prod(action_shape))), np.float32)
        else:
            self.actions = np.zeros((T + 1, E), np.int32)
        self.rewards = np.zeros((T, E), np.float32)
        self.terminated = np.zeros((T, E), np.uint8)
        self.truncated = np.zeros((T, E), np.uint8)
        self.reset = np.zeros((T, E), np.uint8)
        self.values = np.zeros((T + 1, E), np.float32)
        self.returns = np.zeros((T, E), np.float32)
        self.weight = np.zeros((T, E), np.float32)
        self.stats = np.zeros(4, np.float64)
        self.actions_flat = self.actions[:T].reshape(T * E, *self.actions.shape[2:])
        self.returns_flat = self.returns.reshape(-1)
        self.weight_flat = self.weight.reshape(-1)


class Learner:
    """One actor-learner. ``shared`` is the trainer's SharedState."""

    def __init__(self, index, shared, net, algo, env, cfg, rng_state):
        self.index = index
        self.shared = shared
        self.net = net
        self.algo = algo
        self.env = env
        self.T = cfg.algo.t_max
        self.E = env.num_envs
        self.frame_skip = env.info.frame_skip
        self.grad_clip = float(cfg.optim.grad_clip)
        self.alpha = float(cfg.optim.rms_alpha)
        self.eps = float(cfg.optim.rms_eps)
        self.rng_state = rng_state
        self.theta = net.layout.zeros()
        self.grad = net.layout.zeros()
        info = env.info
        self.env_id = info.env_id
        # vector observations pass through kernels.normalize (running normalisation when
        # shared.obsnorm is enabled, the identity otherwise; a NaN/inf check either way),
        # frozen within a segment: the actor snapshots the shared statistics at its start
        self.obsnorm = getattr(shared, "obsnorm", None) if info.vector_obs else None
        # acting: the workspace (t_max + 1 slots, with the gradient buffer for backward),
        # the frozen normaliser, the action buffers (what the env is sent: actor.sent_at)
        self.actor = Actor(net, algo, self.E, self.theta, rng_state, slots=self.T + 1, grad=self.grad,
                           obsnorm=self.obsnorm, training=True, nonfinite=self._nonfinite)
        self.ws = self.actor.ws
        self.seg = Segment(self.T, self.E, () if info.discrete else info.action_shape, actions=self.actor.actions)
        self.reward_scale = float(cfg.env.reward_scale)
        if self.obsnorm is not None:  # this segment's raw observations, merged at its end
            self.obs_raw_flat = self.actor.obs_raw[: self.T].reshape(self.T * self.E, -1)
        self.obs = None
        self.prev_done = np.zeros(self.E, bool)
        self.new_episode = np.zeros(self.E, np.uint8)  # recurrent nets: a new episode starts at the next slot
        self.score = np.zeros(self.E, np.float64)
        self.length = np.zeros(self.E, np.int64)
        self.ended = np.zeros(self.E, np.int64)  # record_step: envs whose game just ended
        self.updates = 0
        # running sums for the progress line: w*policy loss, w*value (or TD) loss, w*entropy,
        # w, gradient norm before clipping, updates; only ever added to (the trainer
        # shows the difference since its last progress line)
        self.diag = np.zeros(6, np.float64)
        self.timings = None
        self._no_timings = dict.fromkeys(PHASES, 0.0)
        algo.bind(self)

    # -- the loop -----------------------------------------------------------------------

    def run(self):
        """Train until the shared frame budget is spent or the trainer says stop."""
        shared = self.shared
        self.obs = self.env.reset()
        while not shared.stop.is_set() and shared.frames < shared.total_frames:
            self.segment()

    def segment(self):
        """One segment: t_max steps of acting, then one asynchronous update.

        With timing enabled (``fastasync profile``) every phase is clocked; otherwise the
        clock is a constant and the bookkeeping costs a few additions per step.
        """
        clock, tm = (time.perf_counter, self.timings) if self.timings is not None else (_no_clock, self._no_timings)
        shared, net, seg, ws, algo, actor = self.shared, self.net, self.seg, self.ws, self.algo, self.actor
        new_episode = self.new_episode
        t0 = clock()
        optim.copy_into(self.theta, shared.theta)
        actor.freeze()
        actor.begin()
        t1 = clock()
        tm["snapshot"] += t1 - t0
        frames = shared.frames
        for t in range(self.T):
            a = clock()
            out = actor.forward(self.obs, t, frames, new_episode)
            b = clock()
            sent = actor.choose(out, t, frames)
            c = clock()
            step = self.env.step(sent)
            d = clock()
            truncated_any = self._record(t, step)
            self.obs = step.obs
            e = clock()
            algo.observe(self.obs, t + 1, truncated_any)
            f = clock()
            tm["forward"] += b - a + f - e
            tm["act"] += c - b
            tm["env_step"] += d - c
            tm["glue"] += e - d
        a = clock()
        actor.bootstrap(self.obs, frames, new_episode)  # s_T into the last slot (and a_T for Sarsa)
        if self.obsnorm is not None:
            self.obsnorm.merge(self.obs_raw_flat)  # this segment's observations, for the next segments
        if self.reward_scale != 1.0:
            seg.rewards *= self.reward_scale  # training rewards only: scores are raw_reward
        b = clock()
        algo.loss(ws, seg)
        self.diag[:4] += seg.stats
        c = clock()
        net.backward(ws, self.T)
        d = clock()
        self.apply_update(shared.theta, shared.rms_g, shared.lr_at(frames))
        self._count_frames()
        e = clock()
        tm["forward"] += b - a
        tm["loss"] += c - b
        tm["backward"] += d - c
        tm["apply"] += e - d
        tm["total"] += e - t0
        tm["segments"] += 1

    def enable_timing(self):
        """Accumulate seconds per phase in ``self.timings`` (for ``fastasync profile``)."""
        self.timings = dict.fromkeys(PHASES, 0.0)

    def _nonfinite(self, obs, env, t, frames):
        """The actor's error for a NaN or inf in env ``env``'s observation at slot t."""
        from .obsnorm import NonFiniteObservation

        return NonFiniteObservation(
            f"{self.env_id} returned a non-finite observation (NaN or inf) to learner {self.index}, env {env}, "
            f"at step {t} of the segment that started at frame {frames:,}: {obs[env].tolist()}"
        )

    def _count_frames(self):
        shared = self.shared
        # frames the agent played: auto-reset steps are not counted (as envpool's elapsed_step)
        n = (self.T * self.E - int(self.seg.reset.sum())) * self.frame_skip
        before = shared.add_frames(n)
        if shared.target is not None and (before + n) // shared.target_period != before // shared.target_period:
            optim.copy_into(shared.target, shared.theta)

    def apply_update(self, theta, rms_g, lr):
        """Clip this learner's gradient and apply RMSProp to (theta, rms_g) in place."""
        norm = optim.clip_grad_norm(self.grad, self.grad_clip)
        if not np.isfinite(norm):
            raise FloatingPointError(
                f"learner {self.index}: non-finite gradient (norm {norm}) after {self.updates} updates; "
                "try a lower --lr"
            )
        optim.rmsprop_apply(theta, rms_g, self.grad, lr, self.alpha, self.eps)
        self.updates += 1
        self.diag[4] += norm
        self.diag[5] += 1

    def _record(self, t, step):
        """Record the step at slot t; returns whether any env was truncated (algo.observe)."""
        seg = self.seg
        n, truncated_any = ksegment.record_step(
            step.reward, step.terminated, step.truncated, step.raw_reward, step.game_over,
            self.prev_done, seg.reset[t], seg.rewards[t], seg.terminated[t], seg.truncated[t],
            self.new_episode, self.score, self.length, self.ended,
        )
        if n:
            wall = time.monotonic()
            for e in self.ended[:n]:
                self.shared.report_game(self.index, float(self.score[e]), int(self.length[e]), wall)
                self.score[e] = 0.0
                self.length[e] = 0
        return truncated_any

    # -- compilation ----------------------------------------------------------------------

    def warmup(self):
        """Run every kernel of a segment once on dummy data, without touching shared state.

        Numba compiles on first call while holding a global lock: doing it here, before any
        thread starts, keeps threads from serialising on the compiler.
        """
        dummy_obs = np.zeros((self.E, *self.env.info.obs_shape), self.env.info.obs_dtype)
        seg = self.seg
        self.actor.warmup(dummy_obs)  # forward every slot, the behaviour policy, the normaliser
        for t in range(self.T):
            self.algo.observe(dummy_obs, t + 1, True)
        if self.obsnorm is not None:
            from .kernels.normalize import moments_merge

            D = self.obs_raw_flat.shape[1]
            moments_merge(self.obs_raw_flat, np.zeros(1), np.zeros(D), np.zeros(D))
        f32, no = np.zeros(self.E, np.float32), np.zeros(self.E, bool)  # a Step's dtypes (envs.Step)
        ksegment.record_step(f32, no, no, f32, no, self.prev_done.copy(), seg.reset[0].copy(), seg.rewards[0].copy(),
                             seg.terminated[0].copy(), seg.truncated[0].copy(), self.new_episode.copy(),
                             self.score.copy(), self.length.copy(), self.ended.copy())
        self.algo.loss(self.ws, seg)
        self.net.backward(self.ws, self.T)
        scratch = self.net.layout.zeros()
        optim.copy_into(self.theta, scratch)
        optim.rmsprop_apply(scratch, self.net.layout.zeros(), self.grad, 0.0, self.alpha, self.eps)
        optim.clip_grad_norm(self.grad, self.grad_clip)
        optim.all_finite(scratch)
        self.net.reset_state(self.ws)  # the dummy pass must not leave recurrent state behind
