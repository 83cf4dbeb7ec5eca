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

    def act(self, out, actions, rng_state, frames):
        """Sample actions from the policy logits in ``out`` (E, A+1)."""
        rng.sample_softmax(out, self.num_actions, rng_state, actions)

    def act_greedy(self, out, actions):
        rng.argmax_rows(out, self.num_actions, actions)

    def act_eval(self, out, actions, rng_state):
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
