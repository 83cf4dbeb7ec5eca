"""Asynchronous one-step Q-learning (Mnih et al. 2016, Algorithm 1).

    y_t = r_t + gamma * max_a' Q(s_{t+1}, a'; theta^-)      (r_t at terminals)
    L   = sum_t w_t * 0.5 * (y_t - Q(s_t, a_t; theta))^2

Gradients are accumulated over the segment (t_max steps, or to a terminal) before the
asynchronous update, as in the paper.
"""

from ..kernels import returns
from ._q import QMethod


class OneStepQ(QMethod):
    sarsa = False

    def targets(self, ws, seg):
        returns.onestep_q_targets(
            seg.rewards, seg.terminated, seg.reset, self.target_outputs(seg), seg.actions,
            self.sarsa, self.gamma, seg.returns,
        )
