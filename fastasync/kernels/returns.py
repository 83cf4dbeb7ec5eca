"""n-step returns with episode boundaries, as arrays over a segment (time-major).

Conventions (see fastasync/envs/__init__.py): slot t holds the transition (s_t, a_t, r_t, s_{t+1});
``values[t]`` is a bootstrap value of s_t for t = 0..T (``values[T]`` bootstraps the segment).
envpool auto-resets on the step AFTER a done, so:

* ``terminated[t]``: s_{t+1} is terminal (game over, or life lost with episodic life):
  R_t = r_t, no bootstrap;
* ``truncated[t]``: time limit; s_{t+1} is the real last observation: R_t = r_t + gamma V(s_{t+1});
* ``reset[t]``: slot t is the auto-reset step (its action was ignored, r_t = 0): no learning
  signal; R_t = 0 and the learner gives it weight 0;
* otherwise R_t = r_t + gamma R_{t+1}, with R_T = values[T].
"""

from ._jit import jit


@jit
def nstep_returns(rewards, terminated, truncated, reset, values, gamma, returns):
    """Forward-view n-step returns (Mnih et al. 2016, Algorithm S3), per env.

    rewards: (T, E) float32; terminated, truncated, reset: (T, E) uint8 flags;
    values: (T+1, E) float32; returns: (T, E) float32, written.
    """
    T, E = rewards.shape
    for e in range(E):
        R = values[T, e]
        for t in range(T - 1, -1, -1):
            if reset[t, e]:
                R = 0.0
            elif terminated[t, e]:
                R = rewards[t, e]
            elif truncated[t, e]:
                R = rewards[t, e] + gamma * values[t + 1, e]
            else:
                R = rewards[t, e] + gamma * R
            returns[t, e] = R


@jit
def gather_column(out, col, values):
    """values.flat[i] = out[i, col]: pull the value column of a head output.

    out: (S*E, C) float32; values: (S, E) float32 (written).
    """
    flat = values.reshape(-1)
    for i in range(flat.size):
        flat[i] = out[i, col]


@jit
def step_weights(reset, scale, weight):
    """weight = 0 on auto-reset steps, ``scale`` elsewhere. reset: (T, E) uint8; weight: (T, E)."""
    T, E = reset.shape
    for t in range(T):
        for e in range(E):
            weight[t, e] = 0.0 if reset[t, e] else scale


@jit
def onestep_q_targets(rewards, terminated, reset, q_next, actions, sarsa, gamma, targets):
    """One-step Q-learning / Sarsa targets (Mnih et al. 2016, Algorithms 1 and S2).

        Q-learning: y_t = r_t + gamma * max_a' Q_target(s_{t+1}, a')
        Sarsa:      y_t = r_t + gamma * Q_target(s_{t+1}, a_{t+1})   (a_{t+1}: the action taken next)

    y_t = r_t when s_{t+1} is terminal; y_t = 0 on auto-reset steps (weight 0). On a
    truncation s_{t+1} is the real last observation, so it bootstraps like any other step.
    rewards, terminated, reset: (T, E); q_next: ((T+1)*E, A) target-net outputs by slot
    (row (t+1)*E + e is Q_target(s_{t+1}) of env e); actions: (T+1, E) int32 taken actions;
    targets: (T, E) float32, written.
    """
    T, E = rewards.shape
    A = q_next.shape[1]
    for t in range(T):
        for e in range(E):
            if reset[t, e]:
                targets[t, e] = 0.0
                continue
            if terminated[t, e]:
                targets[t, e] = rewards[t, e]
                continue
            row = (t + 1) * E + e
            if sarsa:
                v = q_next[row, actions[t + 1, e]]
            else:
                v = q_next[row, 0]
                for j in range(1, A):
                    if q_next[row, j] > v:
                        v = q_next[row, j]
            targets[t, e] = rewards[t, e] + gamma * v


@jit
def max_rows(q, values):
    """values.flat[i] = max_a q[i, a]. q: (S*E, A); values: (S, E), written."""
    flat = values.reshape(-1)
    A = q.shape[1]
    for i in range(flat.size):
        v = q[i, 0]
        for j in range(1, A):
            if q[i, j] > v:
                v = q[i, j]
        flat[i] = v
