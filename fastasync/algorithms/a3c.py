"""Asynchronous advantage actor-critic (Mnih et al. 2016, Algorithm S3), feed-forward.

Acting samples a ~ softmax(logits). After t_max steps the learner bootstraps V(s_T), and

    R_t = r_t + gamma * R_{t+1}   (cut at terminals, V(s_{t+1}) at truncation; see kernels/returns.py)
    L   = sum_t w_t [ -log pi(a_t|s_t) (R_t - V(s_t)) - beta H(pi(.|s_t)) + c_v (R_t - V(s_t))^2 ]

with w_t = 1/E per sample (0 on envpool's auto-reset steps), beta = entropy, c_v = value_coef:
summed over the t_max steps as in the paper, averaged over the thread's E envs. (With
RMSProp's eps = 0.1, steps are proportional to the gradient and averaging makes each update
E times smaller than summing; the default eps 1e-5 normalises the steps instead: config.py.)
"""

from __future__ import annotations

import numpy as np

from ..kernels import heads, returns, rng


class A3C:
    head = "a3c"
    eval_policy = "sampled from the policy"  # act_eval's, as eval reports it
    carries_action = False

    def bind(self, learner):
        """Per-learner set-up (A3C needs none)."""

    def observe(self, obs, slot, truncated_any):
        """A3C needs nothing beyond the online forward."""

    def __init__(self, cfg, net, env_info):
        self.gamma = float(cfg.algo.gamma)
        self.beta = float(cfg.algo.entropy)
        self.value_coef = float(cfg.algo.value_coef)
        self.num_actions = net.num_actions
        self.net = net

    # The three choices of action (called by fastasync.acting.Actor, the one acting path):
    # ``actions`` is written; ``sent``, what the env is stepped with, is ``actions`` itself
    # for discrete actions (the Gaussian head writes its clipped sample there).

    def act(self, out, actions, sent, rng_state, frames):
        """The behaviour policy while training: sample from the policy logits in ``out`` (E, A+1)."""
        rng.sample_softmax(out, self.num_actions, rng_state, actions)

    def act_greedy(self, out, actions, sent):
        rng.argmax_rows(out, self.num_actions, actions)

    def act_eval(self, out, actions, sent, rng_state):
        """Evaluation acting without --greedy: sample the policy."""
        rng.sample_softmax(out, self.num_actions, rng_state, actions)

    def loss(self, ws, seg):
        """Targets and dL/d(head output) for slots 0..T-1 (the bootstrap forward is in slot T)."""
        T, E = seg.T, seg.E
        net = self.net
        returns.gather_column(net.outputs(ws, T + 1), self.num_actions, seg.values)
        returns.nstep_returns(seg.rewards, seg.terminated, seg.truncated, seg.reset, seg.values, self.gamma, seg.returns)
        returns.step_weights(seg.reset, 1.0 / E, seg.weight)
        heads.a3c_head_backward(
            net.outputs(ws, T),
            seg.actions_flat,
            seg.returns_flat,
            seg.weight_flat,
            self.beta,
            self.value_coef,
            net.dout(ws, T),
            seg.stats,
        )


class GaussianA3C(A3C):
    """A3C with a Gaussian policy for continuous (Box) actions (Mnih et al. 2016, section 5.4).

    The head has ``2A + 1`` outputs: the mean mu (linear), the variance's pre-activation rho
    (sigma^2 = softplus(rho) + VAR_MIN) and the value; with ``--bounded-mean`` the mean is
    b tanh(m / b), b the larger magnitude of each dimension's bounds (``kernels.heads.gaussian_mean``:
    a linear mean can run past a bound, where every sample is clipped to the same action and
    the gradient that could bring it back is noise); with ``--capg`` a sample the env got
    clipped is scored by the probability of its side of the bound, not by its density
    (Fujita & Maeda 2018; ``kernels.heads.gaussian_head_backward``). Acting samples a ~ N(mu, sigma^2) with
    the learner's own generator; the env is sent the sample clipped to the action bounds
    (``sent``, the acting.Actor's buffer), the loss uses the log-density of the unclipped sample
    (``kernels.heads.gaussian_head_backward``); greedy evaluation takes mu. The entropy bonus
    is the Gaussian's, sum_j 1/2 (log(2 pi sigma_j^2) + 1), with the small cost ``--entropy``
    (the MuJoCo family's default is 1e-3: the paper's 1e-4 let sigma collapse on HalfCheetah;
    config.py).
    """

    head = "gaussian"
    eval_policy = "sampled from the Gaussian policy"
    VAR_MIN = 1e-4  # sigma >= 0.01: the log-density stays finite when softplus(rho) underflows

    def __init__(self, cfg, net, env_info):
        super().__init__(cfg, net, env_info)
        self.action_dim = env_info.action_dim
        self.low = np.ascontiguousarray(env_info.action_low, np.float32)
        self.high = np.ascontiguousarray(env_info.action_high, np.float32)
        self.capg = bool(cfg.algo.capg)
        self.mean_bound = np.zeros(self.action_dim, np.float32)  # 0: the linear mean
        if cfg.algo.bounded_mean:  # finite bounds: algorithms.check_discrete
            self.mean_bound[:] = np.maximum(np.abs(self.low), np.abs(self.high))

    def act(self, out, actions, sent, rng_state, frames):
        """Sample unclipped actions (E, A) into ``actions``, their clipped copy into ``sent`` (E, A)."""
        rng.sample_gaussian(out, self.VAR_MIN, self.mean_bound, self.low, self.high, rng_state, actions, sent)

    def act_greedy(self, out, actions, sent):
        """The mean mu into ``actions``, clipped into ``sent``."""
        rng.gaussian_greedy(out, self.mean_bound, self.low, self.high, actions, sent)

    def act_eval(self, out, actions, sent, rng_state):
        rng.sample_gaussian(out, self.VAR_MIN, self.mean_bound, self.low, self.high, rng_state, actions, sent)

    def loss(self, ws, seg):
        """Targets and dL/d(head output) for slots 0..T-1 (the bootstrap forward is in slot T)."""
        T, E = seg.T, seg.E
        net = self.net
        returns.gather_column(net.outputs(ws, T + 1), 2 * self.action_dim, seg.values)
        returns.nstep_returns(seg.rewards, seg.terminated, seg.truncated, seg.reset, seg.values, self.gamma, seg.returns)
        returns.step_weights(seg.reset, 1.0 / E, seg.weight)
        heads.gaussian_head_backward(
            net.outputs(ws, T), seg.actions_flat, seg.returns_flat, seg.weight_flat, self.beta, self.value_coef,
            self.VAR_MIN, self.mean_bound, self.low, self.high, self.capg, net.dout(ws, T), seg.stats,
        )
