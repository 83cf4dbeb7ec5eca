"""A small per-thread random generator usable inside kernels, and action selection.

State is an explicit ``uint64 (2,)`` array (xoroshiro128+), owned by one learner thread,
seeded from the run seed and saved in checkpoints, so a 1-thread run with a fixed seed is
reproducible. It is independent of NumPy's and of Numba's internal per-thread generators.
"""

import math

import numpy as np

from . import heads
from ._jit import jit

_M64 = (1 << 64) - 1


def seed_state(seed):
    """A fresh ``uint64 (2,)`` state from an int seed (splitmix64, never all zero)."""
    z = seed & _M64
    out = []
    for _ in range(2):
        z = (z + 0x9E3779B97F4A7C15) & _M64
        x = z
        x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
        x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
        out.append(x ^ (x >> 31))
    if out[0] == 0 and out[1] == 0:
        out[0] = 1
    return np.array(out, dtype=np.uint64)


@jit
def _rotl(x, k):
    return (x << np.uint64(k)) | (x >> np.uint64(64 - k))


@jit
def next_u64(state):
    """Advance xoroshiro128+ and return a uint64."""
    s0 = state[0]
    s1 = state[1]
    result = s0 + s1
    s1 ^= s0
    state[0] = _rotl(s0, 24) ^ s1 ^ (s1 << np.uint64(16))
    state[1] = _rotl(s1, 37)
    return result


@jit
def uniform(state):
    """A float64 uniform in [0, 1) with 53 random bits."""
    return float(next_u64(state) >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@jit
def randint(state, n):
    """An int uniform in [0, n)."""
    return min(int(uniform(state) * n), n - 1)


@jit
def sample_softmax(out, num_actions, state, actions):
    """Sample a_e ~ softmax(out[e, :num_actions]) for every row e.

    out: (E, >=A) float32 logits (extra columns, e.g. the value, are ignored);
    actions: (E,) int32, written.
    """
    E = out.shape[0]
    for e in range(E):
        m = out[e, 0]
        for j in range(1, num_actions):
            if out[e, j] > m:
                m = out[e, j]
        s = 0.0
        for j in range(num_actions):
            s += math.exp(out[e, j] - m)
        u = uniform(state) * s
        acc = 0.0
        a = num_actions - 1
        for j in range(num_actions):
            acc += math.exp(out[e, j] - m)
            if u < acc:
                a = j
                break
        actions[e] = a


@jit
def argmax_rows(q, num_actions, actions):
    """actions[e] = argmax_j q[e, j] over the first num_actions columns (first max wins)."""
    for e in range(q.shape[0]):
        best = 0
        for j in range(1, num_actions):
            if q[e, j] > q[e, best]:
                best = j
        actions[e] = best


@jit
def epsilon_greedy(q, epsilon, state, actions):
    """With probability epsilon a uniform random action, else argmax_j q[e, j].

    q: (E, A) float32; epsilon: float; actions: (E,) int32, written.
    """
    A = q.shape[1]
    argmax_rows(q, A, actions)
    for e in range(q.shape[0]):
        if uniform(state) < epsilon:
            actions[e] = randint(state, A)


@jit
def normal(state):
    """A standard normal float64 (Box-Muller; one of the pair, from two uniforms)."""
    u1 = 1.0 - uniform(state)  # (0, 1]: log(u1) is finite
    u2 = uniform(state)
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


@jit
def sample_gaussian(out, var_min, mean_bound, low, high, state, actions, sent):
    """Sample a ~ N(mu, sigma^2) per env and action dimension; the env gets a clipped copy.

    out: (E, >=2A) float32 head outputs: mu from out[:, :A] (linear, or b tanh(m / b) where
    mean_bound[j] = b > 0: kernels/heads.py, ``gaussian_mean``), sigma^2 = softplus(out[:, A:2A])
    + var_min (``gaussian_head_backward``); mean_bound, low, high: (A,) float32; actions: (E, A)
    float32, written with the UNCLIPPED samples (the loss's log-density is of these); sent:
    (E, A) float32, written with the samples clipped to [low, high].
    """
    E, A = actions.shape
    for e in range(E):
        for j in range(A):
            s = heads.softplus(out[e, A + j]) + var_min
            a = heads.gaussian_mean(out[e, j], mean_bound[j])[0] + math.sqrt(s) * normal(state)
            actions[e, j] = a
            sent[e, j] = min(max(a, low[j]), high[j])


@jit
def gaussian_greedy(out, mean_bound, low, high, actions, sent):
    """The greedy action of a Gaussian policy: mu (into ``actions``), clipped into ``sent``.

    out: (E, >=A) float32; mean_bound, low, high: (A,) float32; actions, sent: (E, A) float32,
    written.
    """
    E, A = actions.shape
    for e in range(E):
        for j in range(A):
            a = heads.gaussian_mean(out[e, j], mean_bound[j])[0]
            actions[e, j] = a
            sent[e, j] = min(max(a, low[j]), high[j])
