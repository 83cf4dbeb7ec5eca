"""Slow, obviously correct float64 NumPy references of every fast kernel.

The role of STUMPY's ``tests/naive.py``: each function here states the maths of one kernel
as directly as NumPy allows (explicit loops over output positions, no im2col, no in-place
tricks) and returns fresh float64 arrays. Tests compare the Numba kernels against these, and
check the hand-written gradients here against central finite differences of the losses here.

Conventions (the documented layouts of ``fastasync/kernels/conv.py``):

* first conv layer: ``x uint8 (B, C, H, W)`` scaled by ``scale``; ``W (OC, C*KH*KW)`` with
  columns ordered ``(c, ky, kx)``;
* later conv layers: ``x (B, H, W, C)`` channels-last; ``W (OC, KH*KW*C)`` with columns
  ordered ``(ky, kx, c)``;
* every conv output is channels-last ``(B, OH, OW, OC)``; a dense layer after a conv reads it
  flattened in that order, ``(oy, ox, c)``.

Nothing here imports ``fastasync.nets``: the whole-network reference reads the weights by
name from the net's parameter layout and applies the architecture of the paper itself.
"""

from __future__ import annotations

import math

import numpy as np

# ----------------------------------------------------------------------------- convolution


def _out(n, k, s):
    return (n - k) // s + 1


def conv_nchw_ref(x, W, b, k, stride, scale=1.0):
    """First-layer convolution: x (B, C, H, W) (uint8 or float) * scale -> (B, OH, OW, OC).

    y[b, oy, ox, o] = b[o] + sum_{c,ky,kx} scale * x[b, c, oy*s+ky, ox*s+kx] * W[o, (c*K+ky)*K+kx]
    """
    x = np.asarray(x, np.float64) * scale
    B, C, H, Wd = x.shape
    OC = W.shape[0]
    W4 = np.asarray(W, np.float64).reshape(OC, C, k, k)
    OH, OW = _out(H, k, stride), _out(Wd, k, stride)
    y = np.empty((B, OH, OW, OC))
    for oy in range(OH):
        for ox in range(OW):
            patch = x[:, :, oy * stride : oy * stride + k, ox * stride : ox * stride + k]
            y[:, oy, ox, :] = np.einsum("bcij,ocij->bo", patch, W4) + b
    return y


def conv_nchw_backward_ref(x, W, dy, k, stride, scale=1.0):
    """Gradients (dW (OC, C*K*K), db (OC,)) of sum(conv_nchw_ref(x, W, b) * dy)."""
    x = np.asarray(x, np.float64) * scale
    dy = np.asarray(dy, np.float64)
    B, C, H, Wd = x.shape
    OC = W.shape[0]
    _, OH, OW, _ = dy.shape
    dW4 = np.zeros((OC, C, k, k))
    for oy in range(OH):
        for ox in range(OW):
            patch = x[:, :, oy * stride : oy * stride + k, ox * stride : ox * stride + k]
            dW4 += np.einsum("bo,bcij->ocij", dy[:, oy, ox, :], patch)
    return dW4.reshape(OC, -1), dy.sum(axis=(0, 1, 2))


def conv_nhwc_ref(x, W, b, k, stride):
    """Channels-last convolution: x (B, H, W, C) -> (B, OH, OW, OC).

    y[b, oy, ox, o] = b[o] + sum_{ky,kx,c} x[b, oy*s+ky, ox*s+kx, c] * W[o, (ky*K+kx)*C+c]
    """
    x = np.asarray(x, np.float64)
    B, H, Wd, C = x.shape
    OC = W.shape[0]
    W4 = np.asarray(W, np.float64).reshape(OC, k, k, C)
    OH, OW = _out(H, k, stride), _out(Wd, k, stride)
    y = np.empty((B, OH, OW, OC))
    for oy in range(OH):
        for ox in range(OW):
            patch = x[:, oy * stride : oy * stride + k, ox * stride : ox * stride + k, :]
            y[:, oy, ox, :] = np.einsum("bijc,oijc->bo", patch, W4) + b
    return y


def conv_nhwc_backward_ref(x, W, dy, k, stride):
    """Gradients (dW (OC, K*K*C), db (OC,), dx (B, H, W, C)) of sum(conv_nhwc_ref(x, W, b) * dy)."""
    x = np.asarray(x, np.float64)
    dy = np.asarray(dy, np.float64)
    B, H, Wd, C = x.shape
    OC = W.shape[0]
    W4 = np.asarray(W, np.float64).reshape(OC, k, k, C)
    _, OH, OW, _ = dy.shape
    dW4 = np.zeros_like(W4)
    dx = np.zeros_like(x)
    for oy in range(OH):
        for ox in range(OW):
            ys, xs = slice(oy * stride, oy * stride + k), slice(ox * stride, ox * stride + k)
            g = dy[:, oy, ox, :]
            dW4 += np.einsum("bo,bijc->oijc", g, x[:, ys, xs, :])
            dx[:, ys, xs, :] += np.einsum("bo,oijc->bijc", g, W4)
    return dW4.reshape(OC, -1), dy.sum(axis=(0, 1, 2)), dx


def im2col_nchw_ref(x, k, stride, scale=1.0):
    """Patch matrix of the first layer: rows (b, oy, ox), columns (c, ky, kx), scaled."""
    x = np.asarray(x, np.float64) * scale
    B, C, H, Wd = x.shape
    OH, OW = _out(H, k, stride), _out(Wd, k, stride)
    rows = []
    for b in range(B):
        for oy in range(OH):
            for ox in range(OW):
                rows.append(x[b, :, oy * stride : oy * stride + k, ox * stride : ox * stride + k].reshape(-1))
    return np.array(rows)


def im2col_nhwc_ref(x, k, stride):
    """Patch matrix of a channels-last layer: rows (b, oy, ox), columns (ky, kx, c)."""
    x = np.asarray(x, np.float64)
    B, H, Wd, C = x.shape
    OH, OW = _out(H, k, stride), _out(Wd, k, stride)
    rows = []
    for b in range(B):
        for oy in range(OH):
            for ox in range(OW):
                rows.append(x[b, oy * stride : oy * stride + k, ox * stride : ox * stride + k, :].reshape(-1))
    return np.array(rows)


def col2im_nhwc_ref(dcols, x_shape, k, stride):
    """Adjoint of im2col_nhwc_ref: scatter-add rows of dcols back into a (B, H, W, C) array."""
    B, H, Wd, C = x_shape
    OH, OW = _out(H, k, stride), _out(Wd, k, stride)
    dx = np.zeros(x_shape)
    r = 0
    for b in range(B):
        for oy in range(OH):
            for ox in range(OW):
                dx[b, oy * stride : oy * stride + k, ox * stride : ox * stride + k, :] += dcols[r].reshape(k, k, C)
                r += 1
    return dx


# ----------------------------------------------------------------------------- dense, relu


def dense_ref(x, W, b):
    """y = x @ W.T + b in float64."""
    return np.asarray(x, np.float64) @ np.asarray(W, np.float64).T + np.asarray(b, np.float64)


def dense_backward_ref(x, W, dy):
    """(dW, db, dx) of sum(dense_ref(x, W, b) * dy)."""
    x, W, dy = (np.asarray(a, np.float64) for a in (x, W, dy))
    return dy.T @ x, dy.sum(axis=0), dy @ W


def relu_ref(z):
    return np.maximum(np.asarray(z, np.float64), 0.0)


def relu_backward_ref(z, dy):
    """d/dz of sum(relu(z) * dy) (z: the pre-activation; 0 at z <= 0)."""
    return np.where(np.asarray(z) > 0, np.asarray(dy, np.float64), 0.0)


# ----------------------------------------------------------------------------- heads


def log_softmax_ref(logits):
    logits = np.asarray(logits, np.float64)
    m = logits.max(axis=-1, keepdims=True)
    return logits - m - np.log(np.exp(logits - m).sum(axis=-1, keepdims=True))


def a3c_loss_ref(out, actions, returns, weight, beta, value_coef, adv=None):
    """A3C loss of the head outputs ``out (N, A+1)`` (logits then value), float64 scalar.

        L = sum_n w_n * ( -log pi(a_n) * adv_n - beta * H_n + value_coef * (R_n - V_n)^2 )

    ``adv`` is the advantage held constant in the policy term (a stop-gradient); by default
    it is ``R - V`` of ``out`` itself. For finite differences pass the advantage of the
    UNPERTURBED outputs, so that only the value term sees V.
    """
    out = np.asarray(out, np.float64)
    A = out.shape[1] - 1
    logp = log_softmax_ref(out[:, :A])
    p = np.exp(logp)
    H = -(p * logp).sum(axis=1)
    R = np.asarray(returns, np.float64)
    V = out[:, A]
    if adv is None:
        adv = R - V
    n = np.arange(out.shape[0])
    w = np.asarray(weight, np.float64)
    return float((w * (-logp[n, np.asarray(actions)] * adv - beta * H + value_coef * (R - V) ** 2)).sum())


def a3c_grad_ref(out, actions, returns, weight, beta, value_coef):
    """dL/dout of a3c_loss_ref by the formula (advantage held constant in the policy term).

    dlogit_j = w * ((pi_j - [j == a]) * adv + beta * pi_j * (log pi_j + H)),
    dV = w * 2 * value_coef * (V - R).
    """
    out = np.asarray(out, np.float64)
    N, A1 = out.shape
    A = A1 - 1
    logp = log_softmax_ref(out[:, :A])
    p = np.exp(logp)
    H = -(p * logp).sum(axis=1, keepdims=True)
    R = np.asarray(returns, np.float64)
    V = out[:, A]
    adv = (R - V)[:, None]
    onehot = np.zeros((N, A))
    onehot[np.arange(N), np.asarray(actions)] = 1.0
    w = np.asarray(weight, np.float64)[:, None]
    d = np.zeros((N, A1))
    d[:, :A] = w * ((p - onehot) * adv + beta * p * (logp + H))
    d[:, A] = w[:, 0] * 2.0 * value_coef * (V - R)
    return d


def a3c_stats_ref(out, actions, returns, weight, beta, value_coef):
    """[sum w*policy loss, sum w*value loss, sum w*entropy, sum w] as a3c_head_backward reports."""
    out = np.asarray(out, np.float64)
    A = out.shape[1] - 1
    logp = log_softmax_ref(out[:, :A])
    H = -(np.exp(logp) * logp).sum(axis=1)
    adv = np.asarray(returns, np.float64) - out[:, A]
    w = np.asarray(weight, np.float64)
    n = np.arange(out.shape[0])
    return np.array(
        [
            (w * -logp[n, np.asarray(actions)] * adv).sum(),
            (w * value_coef * adv**2).sum(),
            (w * H).sum(),
            w.sum(),
        ]
    )


def q_loss_ref(q, actions, targets, weight):
    """L = sum_n w_n * 0.5 * (y_n - Q(s_n, a_n))^2."""
    q = np.asarray(q, np.float64)
    qa = q[np.arange(q.shape[0]), np.asarray(actions)]
    return float((np.asarray(weight, np.float64) * 0.5 * (np.asarray(targets, np.float64) - qa) ** 2).sum())


def q_grad_ref(q, actions, targets, weight):
    """dL/dQ of q_loss_ref: w * (Q(s, a) - y) at the chosen action, 0 elsewhere."""
    q = np.asarray(q, np.float64)
    n = np.arange(q.shape[0])
    d = np.zeros_like(q)
    d[n, np.asarray(actions)] = np.asarray(weight, np.float64) * (q[n, np.asarray(actions)] - np.asarray(targets))
    return d


# ----------------------------------------------------------------------------- optimiser


def grad_norm_ref(grad):
    g = np.asarray(grad, np.float64)
    return float(math.sqrt((g * g).sum()))


def clip_grad_norm_ref(grad, max_norm):
    """(clipped copy in float64, norm before clipping); no change when norm <= max_norm."""
    g = np.asarray(grad, np.float64).copy()
    norm = grad_norm_ref(g)
    if norm > max_norm and max_norm > 0 and math.isfinite(norm):
        g *= max_norm / (norm + 1e-6)
    return g, norm


def rmsprop_ref(theta, g, grad, lr, alpha, eps):
    """One shared-RMSProp step in float64 (Mnih et al. 2016): returns (theta', g').

    g' = alpha * g + (1 - alpha) * grad^2;  theta' = theta - lr * grad / sqrt(g' + eps)
    """
    theta, g, grad = (np.asarray(a, np.float64) for a in (theta, g, grad))
    g2 = alpha * g + (1.0 - alpha) * grad * grad
    return theta - lr * grad / np.sqrt(g2 + eps), g2


# ----------------------------------------------------------------------------- whole nets


def named_params(layout, flat):
    """Named reshaped views of a flat array of ANY dtype (float64 for finite differences).

    Uses only the layout's names, shapes and offsets; ``layout.views`` itself insists on float32.
    """
    if flat.dtype == np.float32:
        return layout.views(flat)
    out = {}
    for s in layout.specs:
        a, b = layout.offsets[s.name]
        out[s.name] = flat[a:b].reshape(s.shape)
    return out


# The paper's Atari architecture (Mnih et al. 2013, 2016): conv 16@8x8/4, conv 32@4x4/2, fc 256.
ATARI_CONVS = (("conv1", 8, 4), ("conv2", 4, 2))


def net_forward_ref(net, theta, obs):
    """Head outputs (N, outputs) in float64 of the net's parameters ``theta`` on ``obs (N, ...)``.

    Atari: uint8 frames / 255 - center -> conv1 -> relu -> conv2 -> relu -> flatten (oy, ox, c) ->
    fc -> relu -> head. MLP: flatten -> fc1 -> relu -> fc2 -> relu ... -> head.
    """
    p = named_params(net.layout, theta)
    if net.kind == "atari":
        (n1, k1, s1), (n2, k2, s2) = ATARI_CONVS
        frames = np.asarray(obs, np.float64) / 255.0 - net.layers[0].center  # centred frames: --frame-center
        h = relu_ref(conv_nchw_ref(frames, p[f"{n1}.W"], p[f"{n1}.b"], k1, s1))
        h = relu_ref(conv_nhwc_ref(h, p[f"{n2}.W"], p[f"{n2}.b"], k2, s2))
        h = h.reshape(h.shape[0], -1)
        h = relu_ref(dense_ref(h, p["fc.W"], p["fc.b"]))
        return dense_ref(h, p["head.W"], p["head.b"])
    if net.kind == "mlp":
        h = np.asarray(obs, np.float64).reshape(len(obs), -1)
        i = 1
        while f"fc{i}.W" in p:
            h = relu_ref(dense_ref(h, p[f"fc{i}.W"], p[f"fc{i}.b"]))
            i += 1
        return dense_ref(h, p["head.W"], p["head.b"])
    raise ValueError(f"no reference for net kind {net.kind!r}")


def net_loss_ref(net, theta, obs, actions, targets, weight, head="a3c", beta=0.01, value_coef=0.5, adv=None,
                 var_min=1e-4):
    """Scalar float64 loss of the whole net: a3c_loss_ref, gaussian_loss_ref or q_loss_ref of
    net_forward_ref.

    ``targets`` are the n-step returns (a3c, gaussian) or TD targets (q); ``adv`` as in a3c_loss_ref.
    """
    out = net_forward_ref(net, theta, obs)
    if head == "a3c":
        return a3c_loss_ref(out, actions, targets, weight, beta, value_coef, adv=adv)
    if head == "gaussian":
        return gaussian_loss_ref(out, actions, targets, weight, beta, value_coef, var_min, adv=adv)
    return q_loss_ref(out, actions, targets, weight)


# ----------------------------------------------------------------------------- Gaussian policy head


def softplus_ref(x):
    x = np.asarray(x, np.float64)
    return np.logaddexp(0.0, x)


def gaussian_parts_ref(out, var_min, mean_bound=None):
    """(mu (N, A), sigma^2 (N, A), V (N,)) of head outputs ``out (N, 2A+1)`` in float64:
    columns [:A] the mean's pre-activation m (mu = m, or b tanh(m / b) where ``mean_bound`` b > 0),
    [A:2A] the variance's pre-activation rho (sigma^2 = softplus(rho) + var_min), the last the value."""
    out = np.asarray(out, np.float64)
    A = (out.shape[1] - 1) // 2
    m = out[:, :A]
    if mean_bound is not None:
        b = np.asarray(mean_bound, np.float64)
        m = np.where(b > 0, b * np.tanh(m / np.where(b > 0, b, 1.0)), m)
    return m, softplus_ref(out[:, A : 2 * A]) + var_min, out[:, 2 * A]


def gaussian_log_density_ref(a, mu, var):
    """log N(a; mu, diag(var)) per row: sum_j -1/2 log(2 pi var_j) - (a_j - mu_j)^2 / (2 var_j)."""
    a = np.asarray(a, np.float64)
    return (-0.5 * np.log(2.0 * np.pi * var) - (a - mu) ** 2 / (2.0 * var)).sum(axis=1)


def gaussian_capg_ref(a, mu, var, bounds):
    """Per sample and dimension: (log p, d log p / d mu, d log p / d var) in float64, where
    ``bounds`` = (low, high) scores a sample at or past a bound by log Phi of its side of the
    bound (the clipped action policy gradient) and every other by the density; ``bounds``
    None: the density everywhere. scipy.special.log_ndtr for log Phi."""
    from scipy.special import log_ndtr

    a = np.asarray(a, np.float64)
    sd = np.sqrt(var)
    d = a - mu
    lp = -0.5 * np.log(2.0 * np.pi * var) - d**2 / (2.0 * var)
    g_mu = d / var
    g_s = d**2 / (2.0 * var**2) - 0.5 / var
    if bounds is None:
        return lp, g_mu, g_s
    low, high = (np.broadcast_to(np.asarray(b, np.float64), a.shape) for b in bounds)
    for side, mask, z in ((-1.0, a <= low, (low - mu) / sd), (1.0, a >= high, (mu - high) / sd)):
        lam = np.exp(-0.5 * z**2 - 0.5 * np.log(2.0 * np.pi) - log_ndtr(z))
        lp = np.where(mask, log_ndtr(z), lp)
        g_mu = np.where(mask, side * lam / sd, g_mu)
        g_s = np.where(mask, -lam * z / (2.0 * var), g_s)
    return lp, g_mu, g_s


def gaussian_entropy_ref(var):
    """Entropy of N(mu, diag(var)) per row: sum_j 1/2 (log(2 pi var_j) + 1)."""
    return (0.5 * (np.log(2.0 * np.pi * var) + 1.0)).sum(axis=1)


def gaussian_loss_ref(out, actions, returns, weight, beta, value_coef, var_min, adv=None, mean_bound=None,
                      capg=None):
    """Gaussian-policy A3C loss, float64 scalar:

        L = sum_n w_n * ( -log N(a_n; mu_n, sigma_n^2) * adv_n - beta * H_n + value_coef * (R_n - V_n)^2 )

    ``actions (N, A)`` are the unclipped samples; ``adv`` held constant as in a3c_loss_ref.
    """
    mu, var, V = gaussian_parts_ref(out, var_min, mean_bound)
    R = np.asarray(returns, np.float64)
    if adv is None:
        adv = R - V
    w = np.asarray(weight, np.float64)
    logp = gaussian_capg_ref(actions, mu, var, capg)[0].sum(axis=1)
    return float((w * (-logp * adv - beta * gaussian_entropy_ref(var) + value_coef * (R - V) ** 2)).sum())


def gaussian_grad_ref(out, actions, returns, weight, beta, value_coef, var_min, mean_bound=None, capg=None):
    """dL/dout of gaussian_loss_ref by the formula (advantage held constant), d = a - mu, s = sigma^2:

    dm = -w adv d / s * dmu/dm (1, or 1 - tanh(m/b)^2 for a bounded mean);
    drho = w sigmoid(rho) (adv (1/(2s) - d^2/(2s^2)) - beta/(2s));  dV = 2 w c_v (V - R).
    """
    out = np.asarray(out, np.float64)
    A = (out.shape[1] - 1) // 2
    mu, s, V = gaussian_parts_ref(out, var_min, mean_bound)
    dmu = np.ones_like(mu)
    if mean_bound is not None:
        b = np.asarray(mean_bound, np.float64)
        dmu = np.where(b > 0, 1.0 - np.tanh(out[:, :A] / np.where(b > 0, b, 1.0)) ** 2, 1.0)
    R = np.asarray(returns, np.float64)
    adv = (R - V)[:, None]
    w = np.asarray(weight, np.float64)[:, None]
    _, g_mu, g_s = gaussian_capg_ref(actions, mu, s, capg)
    sig = 1.0 / (1.0 + np.exp(-out[:, A : 2 * A]))
    g = np.zeros_like(out)
    g[:, :A] = -w * adv * g_mu * dmu
    g[:, A : 2 * A] = w * sig * (-adv * g_s - beta * 0.5 / s)
    g[:, 2 * A] = w[:, 0] * 2.0 * value_coef * (V - R)
    return g


def gaussian_stats_ref(out, actions, returns, weight, beta, value_coef, var_min, mean_bound=None, capg=None):
    """[sum w*policy loss, sum w*value loss, sum w*entropy, sum w] as gaussian_head_backward reports."""
    mu, var, V = gaussian_parts_ref(out, var_min, mean_bound)
    adv = np.asarray(returns, np.float64) - V
    w = np.asarray(weight, np.float64)
    logp = gaussian_capg_ref(actions, mu, var, capg)[0].sum(axis=1)
    return np.array([(w * -logp * adv).sum(), (w * value_coef * adv**2).sum(), (w * gaussian_entropy_ref(var)).sum(),
                     w.sum()])


# ----------------------------------------------------------------------------- finite differences


def central_diff(f, x, idx, eps):
    """Central finite differences (f(x + eps e_i) - f(x - eps e_i)) / 2eps at flat indices idx.

    ``x`` is a float64 array, modified in place and restored.
    """
    flat = x.reshape(-1)
    out = np.empty(len(idx))
    for j, i in enumerate(idx):
        old = flat[i]
        flat[i] = old + eps
        fp = f(x)
        flat[i] = old - eps
        fm = f(x)
        flat[i] = old
        out[j] = (fp - fm) / (2.0 * eps)
    return out


def rel_error(a, b, floor):
    """|a - b| / max(|a|, |b|, floor), elementwise."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.abs(a - b) / np.maximum(np.maximum(np.abs(a), np.abs(b)), floor)


try:
    from reference_lstm import *  # noqa: F401,F403
except ImportError:
    pass
