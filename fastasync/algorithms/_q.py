"""What the three Q methods share (Mnih et al. 2016, section 4 and Algorithms 1, S1, S2).

* a target network: a second flat parameter array, copied from the shared parameters every
  ``target_update_frames`` frames (the learner does the copy when the counter crosses);
* epsilon-greedy acting, where each thread draws its final epsilon from {0.1, 0.01, 0.5}
  with probabilities {0.4, 0.3, 0.3} and anneals from 1 to it over ``eps_anneal_frames``;
* a Q head (one output per action) and the squared TD loss on the chosen actions,
  accumulated over the segment before the asynchronous update.

Subclasses fill ``targets(ws, seg)`` (into ``seg.returns``) and say which target-net
outputs they need (``needs_all_next``: Q_target(s_{t+1}) for every step, or only at the
segment end and after truncations).
"""

from __future__ import annotations

from ..kernels import heads, returns, rng
from . import epsilon_at

FINAL_EPSILONS = (0.1, 0.01, 0.5)
FINAL_EPSILON_PROBS = (0.4, 0.3, 0.3)
EVAL_EPSILON = 0.05


def draw_final_epsilon(u: float) -> float:
    """Map a uniform draw to the paper's final epsilon distribution."""
    acc = 0.0
    for eps, p in zip(FINAL_EPSILONS, FINAL_EPSILON_PROBS):
        acc += p
        if u < acc:
            return eps
    return FINAL_EPSILONS[-1]


class QMethod:
    head = "q"
    eval_policy = f"epsilon-greedy, epsilon {EVAL_EPSILON:g}"  # act_eval's, as eval reports it
    carries_action = False
    needs_all_next = True

    def __init__(self, cfg, net, env_info):
        self.net = net
        self.gamma = float(cfg.algo.gamma)
        self.anneal = int(cfg.algo.eps_anneal_frames)
        self.num_actions = net.num_actions
        self.final_epsilon = 1.0
        self.target_ws = None

    def bind(self, learner):
        """Per-learner set-up: final epsilon from the learner's generator, target-net buffers."""
        self.final_epsilon = draw_final_epsilon(rng.uniform(learner.rng_state))
        self.E = learner.E
        self.target_ws = self.net.workspace(learner.T + 1, learner.E, learner.shared.target)  # forward only

    def set_final_epsilon(self, value: float) -> None:
        """Restore the final epsilon this thread drew (a resumed run keeps each thread's)."""
        self.final_epsilon = float(value)

    def epsilon(self, frames):
        """The behaviour policy's epsilon after ``frames``: 1 annealed linearly to the final one."""
        return epsilon_at(self.final_epsilon, frames, self.anneal)

    # The three choices of action (called by fastasync.acting.Actor): ``actions`` (E,) int32
    # is written; ``sent`` is ``actions`` itself (discrete actions).

    def act(self, out, actions, sent, rng_state, frames):
        """The behaviour policy while training: epsilon-greedy, epsilon annealed by ``frames``."""
        rng.epsilon_greedy(out, self.epsilon(frames), rng_state, actions)

    def act_greedy(self, out, actions, sent):
        rng.argmax_rows(out, self.num_actions, actions)

    def act_eval(self, out, actions, sent, rng_state):
        """Evaluation acting without --greedy: epsilon-greedy with a small epsilon."""
        rng.epsilon_greedy(out, EVAL_EPSILON, rng_state, actions)

    def observe(self, obs, slot, truncated_any):
        """The learner saw ``obs`` (s_slot); forward the target net on it when a target needs it."""
        if self.needs_all_next or slot == self.target_ws.slots - 1 or truncated_any:
            self.net.forward(self.target_ws, obs, slot)

    def loss(self, ws, seg):
        self.targets(ws, seg)
        returns.step_weights(seg.reset, 1.0 / seg.E, seg.weight)
        heads.q_head_backward(
            self.net.outputs(ws, seg.T), seg.actions_flat, seg.returns_flat, seg.weight_flat,
            self.net.dout(ws, seg.T), seg.stats,
        )

    def target_outputs(self, seg):
        """Target-net outputs of slots 0..T: ((T+1)*E, A)."""
        return self.net.outputs(self.target_ws, seg.T + 1)

    def targets(self, ws, seg):  # pragma: no cover - abstract
        raise NotImplementedError


