"""Asynchronous n-step Q-learning (Mnih et al. 2016, Algorithm S1).

Forward view over the segment, bootstrapped from the target network:

    R_T = max_a Q(s_T, a; theta^-);   R_t = r_t + gamma * R_{t+1}
    L   = sum_t w_t * 0.5 * (R_t - Q(s_t, a_t; theta))^2

cut at terminals and bootstrapped with max_a Q(s_{t+1}, a; theta^-) at truncations
(kernels/returns.nstep_returns). The target net is run only where it is needed.
"""

from ..kernels import returns
from ._q import QMethod


class NStepQ(QMethod):
    needs_all_next = False

    def targets(self, ws, seg):
        returns.max_rows(self.target_outputs(seg), seg.values)
        returns.nstep_returns(
            seg.rewards, seg.terminated, seg.truncated, seg.reset, seg.values, self.gamma, seg.returns
        )
