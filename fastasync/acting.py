"""The one acting path: a net's forward workspace, frozen observation normalisation, the
action buffers and the choice of action, shared by the learner, ``evaluate`` and ``Policy``.

An :class:`Actor` acts for a batch of E envs. Everything it writes is allocated once, in
``__init__``; acting allocates nothing, so a learner thread can act every step of its
segments without touching the allocator (Numba allocations contend across threads).

* Workspace: ``slots`` time slots of the net (the learner: t_max + 1 slots with its gradient
  buffer, for the backward pass through the segment; evaluation: 2 slots, forward only,
  slot 0 used and the LSTM state carried from one step to the next).
* Recurrent state: the caller says which envs start a new episode (``reset``, per env);
  only those envs' LSTM state is zeroed.
* Observation normalisation (vector observations): ``obsnorm`` (an :class:`~fastasync.obsnorm.ObsNorm`)
  is read, never written: ``freeze`` snapshots it into the actor's float32 mean and inverse
  std, and every observation until the next ``freeze`` is normalised with that snapshot.
  The raw float32 copy of each slot's observations is kept in ``obs_raw`` (the learner
  merges a segment's into the shared statistics).
* Actions: ``actions`` (slots, E) int32, or (slots, E, A) float32 for a Gaussian policy
  (its unclipped samples); ``sent`` is what the env is stepped with: the actions themselves,
  or for a Gaussian policy the sample clipped to the action bounds.
* The choice: greedy (``algo.act_greedy``), the training behaviour policy (``algo.act``:
  epsilon annealed by frames for the Q methods) or the evaluation policy (``algo.act_eval``).
  Sampling uses the caller's generator state ``rng_state``, advanced in place.
"""

from __future__ import annotations

import numpy as np

from .kernels import normalize as knormalize


def _nonfinite(obs, env, t, frames):
    from .obsnorm import NonFiniteObservation

    return NonFiniteObservation(f"env {env} returned a non-finite observation (NaN or inf): {obs[env].tolist()}")


class Actor:
    """Acting for a batch of ``E`` envs with ``net`` and ``algo`` (see the module docstring).

    ``theta``: the parameters the workspace reads (the learner's own copy, or a trained
    agent's); ``grad``: the learner's gradient buffer (None: a forward-only workspace).
    ``rng_state``: uint64 (2,) generator state, used by reference and advanced in place.
    ``obsnorm``: the observation statistics to normalise with (None: observations go to the
    net as they are); frozen at construction and at every ``freeze``.
    ``training``: non-greedy choices use the behaviour policy ``algo.act`` (else ``algo.act_eval``).
    ``nonfinite(obs, env, t, frames)``: the exception to raise when env ``env``'s observation
    at slot ``t`` holds a NaN or an inf (checked where observations are normalised).

    The learner calls ``freeze`` and ``begin`` at a segment's start, ``forward`` and
    ``choose`` at every slot t < T (the profile times them apart) and ``bootstrap`` at slot
    T. Evaluation and ``Policy`` call ``act``: one step, in slot 0.
    """

    def __init__(self, net, algo, E, theta, rng_state, *, slots=2, grad=None, obsnorm=None, training=False,
                 nonfinite=_nonfinite):
        self.net, self.algo, self.E, self.slots = net, algo, int(E), int(slots)
        self.rng_state = rng_state
        self.training = bool(training)
        self.nonfinite = nonfinite
        self.recurrent = net.recurrent
        self.ws = net.workspace(self.slots, self.E, theta, grad)
        discrete = algo.head != "gaussian"
        if discrete:
            self.actions = np.zeros((self.slots, self.E), np.int32)
            self.sent = None
        else:  # the Gaussian head: unclipped samples per slot, and the clipped copy the env is sent
            self.actions = np.zeros((self.slots, self.E, algo.action_dim), np.float32)
            self.sent = np.zeros((self.E, algo.action_dim), np.float32)
        self.actions_at = [self.actions[t] for t in range(self.slots)]
        self.sent_at = self.actions_at if discrete else [self.sent] * self.slots
        self.carrying = False  # an action was picked at the last slot, to be taken at slot 0 (Sarsa)
        self.obsnorm = obsnorm
        if obsnorm is not None:
            D = obsnorm.dim
            self.obs_raw = np.zeros((self.slots, self.E, D), np.float32)
            self.obs_in = np.zeros((self.slots, self.E, *net.obs_shape), np.float32)  # what the net reads
            self.obs_raw_at = [self.obs_raw[t] for t in range(self.slots)]
            self.obs_in_at = [self.obs_in[t] for t in range(self.slots)]
            self.obs_in2d_at = [self.obs_in[t].reshape(self.E, D) for t in range(self.slots)]  # what the kernel writes
            self.obs_mean = np.zeros(D, np.float32)
            self.obs_istd = np.ones(D, np.float32)
            self.clip = float(obsnorm.clip)
            self.freeze()

    # -- the learner's segment ---------------------------------------------------------------

    def freeze(self):
        """Snapshot the observation statistics: the normaliser until the next ``freeze``."""
        if self.obsnorm is not None:
            self.obsnorm.snapshot(self.obs_mean, self.obs_istd)

    def begin(self):
        """Start a segment at slot 0: recurrent state carries on from the last slot before it."""
        if self.recurrent:
            self.net.begin_segment(self.ws)

    def forward(self, obs, t, frames, reset):
        """The head output (E, outputs) for slot t's observations ``obs`` (E, *obs_shape).

        ``reset`` (E,) (or a scalar for every env): the envs whose episode starts at this
        slot, whose recurrent state is zeroed. ``frames``: for the non-finite message.
        """
        ws = self.ws
        if self.recurrent:
            ws.reset_in[t] = reset
        if self.obsnorm is not None:
            x = obs if obs.ndim == 2 else obs.reshape(self.E, -1)
            bad = knormalize.normalize_obs(x, self.obs_mean, self.obs_istd, self.clip, self.obs_raw_at[t],
                                           self.obs_in2d_at[t])
            if bad >= 0:
                raise self.nonfinite(obs, bad, t, frames)
            obs = self.obs_in_at[t]
        return self.net.forward(ws, obs, t)

    def choose(self, out, t, frames=0, greedy=False):
        """Pick slot t's actions from the head output; returns what the env is sent (a view of
        the actor's buffers: ``actions[t]``, or ``sent`` for a Gaussian policy)."""
        algo, actions, sent = self.algo, self.actions_at[t], self.sent_at[t]
        if greedy:
            algo.act_greedy(out, actions, sent)
        elif not self.training:
            algo.act_eval(out, actions, sent, self.rng_state)
        elif t == 0 and self.carrying:
            actions[...] = self.actions_at[self.slots - 1]
        else:
            algo.act(out, actions, sent, self.rng_state, frames)
        return sent

    def bootstrap(self, obs, frames, reset):
        """Forward the last slot (s_T); methods that carry an action (Sarsa) pick a_T there,
        taken at slot 0 of the next segment. Returns the head output."""
        T = self.slots - 1
        out = self.forward(obs, T, frames, reset)
        if self.algo.carries_action:
            self.algo.act(out, self.actions_at[T], self.sent_at[T], self.rng_state, frames)
            self.carrying = True
        return out

    # -- one step (evaluation, Policy) -------------------------------------------------------

    def act(self, obs, reset=False, greedy=False, frames=0):
        """One step in slot 0: the recurrent state carries on from the last call (zeroed for
        the envs in ``reset``); returns what the env is sent (the actor's buffer, overwritten
        by the next call)."""
        self.begin()
        out = self.forward(obs, 0, frames, reset)
        return self.choose(out, 0, frames, greedy)

    # -- compilation -------------------------------------------------------------------------

    def warmup(self, obs):
        """Compile the acting kernels on dummy observations ``obs`` (E, *obs_shape) without
        advancing the generator; the workspace's recurrent state is zeroed afterwards."""
        if self.obsnorm is not None:
            D = self.obs_mean.size
            knormalize.moments_snapshot(np.ones(1), np.zeros(D), np.ones(D), 1e-8, self.obs_mean.copy(),
                                        self.obs_istd.copy())
        rng_state = self.rng_state.copy()
        for t in range(self.slots):
            out = self.forward(obs, t, 0, 0)
            if t < self.slots - 1:
                self.algo.act(out, self.actions_at[t], self.sent_at[t], rng_state, 0)
        self.net.reset_state(self.ws)
