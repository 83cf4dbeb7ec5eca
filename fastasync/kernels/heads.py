"""Output heads and their losses: softmax policy + value (A3C) and Q values.

The A3C head is one dense layer with ``A + 1`` outputs: columns ``[:A]`` are policy logits,
column ``A`` is the state value. Losses are weighted sums over the rows (a row is one
(time step, env) sample); a weight of 0 masks a sample out (envpool's auto-reset step),
and the learner uses weight ``1/E`` so the update does not grow with the number of envs.
"""

import math

from ._jit import jit


@jit
def a3c_head_backward(out, actions, returns, weight, beta, value_coef, dout, stats):
    """A3C loss and its gradient w.r.t. the head outputs (Mnih et al. 2016, Alg. S3).

    out: (N, A+1) float32 logits and value; actions: (N,) int; returns: (N,) float32 n-step
    returns R; weight: (N,) float32. With pi = softmax(logits), V = out[:, A], adv = R - V
    (held constant in the policy term) and H = -sum pi log pi, the loss is

        L = sum_n w_n * ( -log pi(a_n) * adv_n  -  beta * H_n  +  value_coef * (R_n - V_n)^2 )

    dout: (N, A+1) OVERWRITTEN with dL/dout:
        dlogit_j = w * ( (pi_j - [j == a]) * adv + beta * pi_j * (log pi_j + H) )
        dV       = w * 2 * value_coef * (V - R)
    stats: (4,) float64 OVERWRITTEN with sums of w*policy loss, w*value loss, w*entropy, w.
    """
    N = out.shape[0]
    A = out.shape[1] - 1
    for k in range(4):
        stats[k] = 0.0
    for n in range(N):
        w = weight[n]
        if w == 0.0:
            for j in range(A + 1):
                dout[n, j] = 0.0
            continue
        m = out[n, 0]
        for j in range(1, A):
            if out[n, j] > m:
                m = out[n, j]
        s = 0.0
        for j in range(A):
            s += math.exp(out[n, j] - m)
        logz = m + math.log(s)
        H = 0.0
        for j in range(A):
            lp = out[n, j] - logz
            H -= math.exp(lp) * lp
        v = out[n, A]
        adv = returns[n] - v
        a = actions[n]
        for j in range(A):
            lp = out[n, j] - logz
            p = math.exp(lp)
            g = p * adv + beta * p * (lp + H)
            if j == a:
                g -= adv
            dout[n, j] = w * g
        dout[n, A] = w * 2.0 * value_coef * (v - returns[n])
        stats[0] += w * (-(out[n, a] - logz) * adv)
        stats[1] += w * value_coef * adv * adv
        stats[2] += w * H
        stats[3] += w


@jit
def q_head_backward(q, actions, targets, weight, dq, stats):
    """Squared TD loss on the chosen actions and its gradient w.r.t. Q.

    q: (N, A) float32; actions: (N,) int; targets: (N,) float32 y; weight: (N,) float32.
    L = sum_n w_n * 0.5 * (y_n - Q(s_n, a_n))^2.
    dq: (N, A) OVERWRITTEN: w * (Q(s_n, a_n) - y_n) at the chosen action, 0 elsewhere.
    stats: (4,) float64 OVERWRITTEN: [sum w*loss, 0, 0, sum w].
    """
    N, A = q.shape
    for k in range(4):
        stats[k] = 0.0
    for n in range(N):
        for j in range(A):
            dq[n, j] = 0.0
        w = weight[n]
        if w == 0.0:
            continue
        a = actions[n]
        d = q[n, a] - targets[n]
        dq[n, a] = w * d
        stats[0] += w * 0.5 * d * d
        stats[3] += w


@jit
def softplus(x):
    """log(1 + e^x), without overflow for large x."""
    if x > 20.0:
        return x
    if x < -20.0:
        return math.exp(x)
    return math.log1p(math.exp(x))


@jit
def sigmoid(x):
    """1 / (1 + e^-x) = d softplus(x) / dx, without overflow."""
    if x >= 0.0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


@jit
def gaussian_mean(m, b):
    """The Gaussian policy's mean from its head output m, and d mean / dm.

    b == 0: mu = m (the paper's linear mean); b > 0: mu = b tanh(m / b), which is m near 0
    and never leaves [-b, b] (``--bounded-mean``: b is the larger magnitude of the action's
    bounds: a symmetric bound itself, and for a [0, 1] dimension within [-1, 1], where a linear
    mean can run any distance past a bound, every sample clipped to it).
    """
    m, b = float(m), float(b)  # in float64, as the rest of the loss
    if b == 0.0:
        return m, 1.0
    t = math.tanh(m / b)
    return b * t, 1.0 - t * t


@jit
def log_ndtr_ratio(z):
    """(log Phi(z), phi(z) / Phi(z)) of the standard normal, in float64, for any z: erfc down
    to z = -30 (Phi ~ 5e-198), below it the asymptotic series of Mills' ratio (its first
    omitted term, 945 / z^10, is < 2e-12 there)."""
    z = float(z)
    if z > -30.0:
        cdf = 0.5 * math.erfc(-z / math.sqrt(2.0))
        pdf = math.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
        return math.log(cdf), pdf / cdf
    x2 = 1.0 / (z * z)
    r = 1.0 + x2 * (-1.0 + x2 * (3.0 + x2 * (-15.0 + x2 * 105.0)))  # Phi(z) / phi(z) = r / -z
    return -0.5 * z * z - 0.5 * math.log(2.0 * math.pi) + math.log(r / -z), -z / r


@jit
def gaussian_head_backward(out, actions, returns, weight, beta, value_coef, var_min, mean_bound, low, high, capg,
                           dout, stats):
    """Gaussian-policy A3C loss and its gradient w.r.t. the head outputs (Mnih et al. 2016,
    section 5.4 / supplementary 9: a linear layer for the mean, a SoftPlus one for the variance).

    out: (N, 2A+1) float32: columns ``[:A]`` the mean's pre-activation m (mu = m, or
    mu = b tanh(m / b) where mean_bound[j] = b > 0: ``gaussian_mean``), ``[A:2A]`` the variance's
    pre-activation rho, column ``2A`` the value V; actions: (N, A) float32, the UNCLIPPED
    samples a the env's clipped action came from; returns: (N,) float32 n-step returns R;
    weight: (N,) float32; mean_bound, low, high: (A,) float32 (the action bounds); capg: bool.
    With sigma^2 = softplus(rho) + var_min, adv = R - V (held constant in the policy term),

        log pi(a) = sum_j log p_j(a_j)
        log p_j   = -1/2 log(2 pi sigma_j^2) - (a_j - mu_j)^2 / (2 sigma_j^2)     (the density)
        H         = sum_j  1/2 (log(2 pi sigma_j^2) + 1)          (the Gaussian's entropy)
        L = sum_n w_n * ( -log pi(a_n) * adv_n  -  beta * H_n  +  value_coef * (R_n - V_n)^2 )

    With ``capg`` (clipped action policy gradient, Fujita & Maeda 2018) a sample the env got
    clipped is scored by the probability of its side of the bound instead, which is what the
    env's action has: log p_j = log Phi((low_j - mu_j) / sigma_j) where a_j <= low_j, and
    log Phi((mu_j - high_j) / sigma_j) where a_j >= high_j. The gradient stays unbiased and a
    dimension whose every sample is clipped (its mean far past a bound) gives ~0 instead of
    noise of size adv / sigma.

    dout: (N, 2A+1) OVERWRITTEN with dL/dout, s_j = sigma_j^2, g_mu = d log p_j / d mu_j,
    g_s = d log p_j / d s_j (density, d = a - mu: d / s and -1/(2s) + d^2/(2s^2); a bound's
    side, z its argument of Phi, lam = phi(z)/Phi(z): -+lam / sigma and -lam z / (2s)):
        dm_j   = w * -adv * g_mu * dmu_j/dm_j
        drho_j = w * sigmoid(rho_j) * ( -adv * g_s - beta / (2 s_j) )
        dV     = w * 2 * value_coef * (V - R)
    stats: (4,) float64 OVERWRITTEN with sums of w*policy loss, w*value loss, w*entropy, w.
    """
    N = out.shape[0]
    A = (out.shape[1] - 1) // 2
    log2pi = math.log(2.0 * math.pi)
    for k in range(4):
        stats[k] = 0.0
    for n in range(N):
        w = weight[n]
        if w == 0.0:
            for j in range(2 * A + 1):
                dout[n, j] = 0.0
            continue
        v = out[n, 2 * A]
        adv = returns[n] - v
        logp = 0.0
        H = 0.0
        for j in range(A):
            rho = out[n, A + j]
            s = softplus(rho) + var_min
            mu, dmu = gaussian_mean(out[n, j], mean_bound[j])
            a = actions[n, j]
            logs = math.log(s)
            H += 0.5 * (log2pi + logs + 1.0)
            if capg and (a <= low[j] or a >= high[j]):
                # the side of the bound: z = side * (mu - bound) / sigma, side -1 below, +1 above
                side, bound = (-1.0, low[j]) if a <= low[j] else (1.0, high[j])
                sd = math.sqrt(s)
                z = side * (mu - bound) / sd
                lp, lam = log_ndtr_ratio(z)
                g_mu = side * lam / sd
                g_s = -lam * z / (2.0 * s)
            else:
                d = a - mu
                lp = -0.5 * (log2pi + logs) - d * d / (2.0 * s)
                g_mu = d / s
                g_s = d * d / (2.0 * s * s) - 0.5 / s
            logp += lp
            dout[n, j] = w * (-adv * g_mu) * dmu
            dout[n, A + j] = w * sigmoid(rho) * (-adv * g_s - beta * 0.5 / s)
        dout[n, 2 * A] = w * 2.0 * value_coef * (v - returns[n])
        stats[0] += w * (-logp * adv)
        stats[1] += w * value_coef * adv * adv
        stats[2] += w * H
        stats[3] += w
