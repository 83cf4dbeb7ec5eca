"""Slow, obviously correct float64 NumPy LSTM: the reference for ``fastasync.kernels.lstm``.

Gate order i, f, g, o; ``reset[t, b] != 0`` zeroes the state entering step t for env b.
"""

import numpy as np


def _sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def lstm_forward_ref(x, h0, c0, reset, Wx, Wh, b):
    """Return ``(h_seq, c_seq)``, each (T, B, H) float64, for inputs as in ``lstm_forward``."""
    x, h0, c0, Wx, Wh, b = (np.asarray(a, dtype=np.float64) for a in (x, h0, c0, Wx, Wh, b))
    T = x.shape[0]
    H = h0.shape[1]
    h, c = h0.copy(), c0.copy()
    h_seq, c_seq = [], []
    for t in range(T):
        keep = (np.asarray(reset[t]) == 0)[:, None]
        h, c = h * keep, c * keep
        z = x[t] @ Wx.T + h @ Wh.T + b
        i = _sigmoid(z[:, 0 * H:1 * H])
        f = _sigmoid(z[:, 1 * H:2 * H])
        g = np.tanh(z[:, 2 * H:3 * H])
        o = _sigmoid(z[:, 3 * H:4 * H])
        c = f * c + i * g
        h = o * np.tanh(c)
        h_seq.append(h)
        c_seq.append(c)
    return np.stack(h_seq), np.stack(c_seq)


def lstm_loss_ref(x, h0, c0, reset, Wx, Wh, b, G):
    """Scalar loss ``L = sum(h_seq * G)``, so dL/dh_seq = G (for finite differences)."""
    h_seq, _ = lstm_forward_ref(x, h0, c0, reset, Wx, Wh, b)
    return float(np.sum(h_seq * G))


def finite_diff(f, a, eps=1e-5):
    """Central finite differences of the scalar ``f()`` w.r.t. every entry of the float64 ``a``
    (perturbed in place and restored)."""
    g = np.zeros_like(a)
    flat, gflat = a.reshape(-1), g.reshape(-1)
    for n in range(flat.size):
        v = flat[n]
        flat[n] = v + eps
        fp = f()
        flat[n] = v - eps
        fm = f()
        flat[n] = v
        gflat[n] = (fp - fm) / (2.0 * eps)
    return g
