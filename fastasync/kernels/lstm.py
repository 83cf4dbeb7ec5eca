"""LSTM layer: sequence forward, one acting step, truncated BPTT backward.

Weights follow the ``(out, in)`` convention with the four gates stacked in the order
i, f, g, o: ``Wx`` is ``(4H, I)``, ``Wh`` is ``(4H, H)``, ``b`` is ``(4H,)``. For env ``b`` at
step ``t``, with ``(h_prev, c_prev)`` the state entering the step::

    z_t = x_t Wx^T + h_prev Wh^T + b                  (4H,) pre-activations
    i, f, o = sigmoid(z_i), sigmoid(z_f), sigmoid(z_o);  g = tanh(z_g)
    c_t = f * c_prev + i * g
    h_t = o * tanh(c_t)

The state entering step 0 is ``(h0, c0)``; ``reset[t, b] != 0`` zeroes the state entering
step ``t`` for env ``b`` (an episode boundary: the LSTM state resets for that env only), which
also cuts the gradient flow back across the boundary.

GEMM-shaped work is ``gemm(a, trans_a, b, trans_b, out)`` (kernels/blas.py: OpenBLAS's
sgemm, no allocation); activations and the recurrences are loops. The input projection of the whole
sequence is one GEMM, and so are ``dWx``, ``dWh`` and ``dx`` in the backward pass. Kernels
allocate nothing and check nothing: every buffer, scratch included, comes from the caller,
and ``check_lstm_forward`` / ``check_lstm_step`` / ``check_lstm_backward`` check them once at
the Python boundary. All arrays are float32 and C-contiguous; ``reset`` is uint8.
"""

import numpy as np

from ._jit import jit
from .blas import gemm
from .checks import check_array

_ONE = np.float32(1.0)
_ZERO = np.float32(0.0)


@jit
def _sigmoid(v):
    return _ONE / (_ONE + np.exp(-v))


@jit
def lstm_forward(x, h0, c0, reset, Wx, Wh, b, z, gates, c_seq, h_seq):
    """LSTM over a sequence of T steps for B envs.

    Parameters
    ----------
    x : (T, B, I) float32
        Inputs.
    h0, c0 : (B, H) float32
        State entering step 0 (ignored for env ``b`` where ``reset[0, b] != 0``).
    reset : (T, B) uint8
        ``reset[t, b] != 0`` zeroes the state entering step ``t`` for env ``b``.
    Wx : (4H, I) float32; Wh : (4H, H) float32; b : (4H,) float32
        Gate order i, f, g, o.
    z : (B, 4H) float32
        Scratch (receives ``h_prev Wh^T`` each step).
    gates : (T, B, 4H) float32
        OVERWRITTEN with the post-activation gates ``[i, f, g, o]`` (sigmoid, sigmoid, tanh,
        sigmoid) of every step; the backward pass needs them.
    c_seq, h_seq : (T, B, H) float32
        OVERWRITTEN with ``c_t`` and ``h_t``.

    Notes
    -----
    ``z_t = x_t Wx^T + h_prev Wh^T + b``; ``c_t = f * c_prev + i * g``; ``h_t = o * tanh(c_t)``.
    ``gates`` first holds ``x Wx^T`` for all steps (one GEMM); ``h_seq[t]`` / ``c_seq[t]``
    first hold the (reset-masked) state entering step ``t``, then its output.
    """
    T, B, I = x.shape
    H = h0.shape[1]
    gemm(x.reshape(T * B, I), False, Wx, True, gates.reshape(T * B, 4 * H))
    for t in range(T):
        hs = h_seq[t]
        cs = c_seq[t]
        for e in range(B):
            if reset[t, e] != 0:
                for k in range(H):
                    hs[e, k] = _ZERO
                    cs[e, k] = _ZERO
            elif t == 0:
                for k in range(H):
                    hs[e, k] = h0[e, k]
                    cs[e, k] = c0[e, k]
            else:
                for k in range(H):
                    hs[e, k] = h_seq[t - 1, e, k]
                    cs[e, k] = c_seq[t - 1, e, k]
        gemm(hs, False, Wh, True, z)
        gt = gates[t]
        for e in range(B):
            for k in range(H):
                gi = _sigmoid(gt[e, k] + z[e, k] + b[k])
                gf = _sigmoid(gt[e, H + k] + z[e, H + k] + b[H + k])
                gg = np.tanh(gt[e, 2 * H + k] + z[e, 2 * H + k] + b[2 * H + k])
                go = _sigmoid(gt[e, 3 * H + k] + z[e, 3 * H + k] + b[3 * H + k])
                gt[e, k] = gi
                gt[e, H + k] = gf
                gt[e, 2 * H + k] = gg
                gt[e, 3 * H + k] = go
                c = gf * cs[e, k] + gi * gg
                cs[e, k] = c
                hs[e, k] = go * np.tanh(c)


@jit
def lstm_step(x, h, c, Wx, Wh, b, z, h_out, c_out):
    """One LSTM step for acting (no gates kept for a backward pass).

    Parameters
    ----------
    x : (B, I) float32
    h, c : (B, H) float32
        State entering the step; the caller zeroes an env's rows at an episode boundary.
    Wx : (4H, I) float32; Wh : (4H, H) float32; b : (4H,) float32
    z : (2, B, 4H) float32
        Scratch: ``z[0] = x Wx^T``, ``z[1] = h Wh^T``.
    h_out, c_out : (B, H) float32
        OVERWRITTEN with the new state. They may be ``h`` and ``c`` themselves (in place).

    Notes
    -----
    Same formula as ``lstm_forward`` for one step:
    ``c' = f * c + i * g``, ``h' = o * tanh(c')`` with ``[i, f, g, o]`` from
    ``x Wx^T + h Wh^T + b``.
    """
    B, H = h.shape
    zx = z[0]
    zh = z[1]
    gemm(x, False, Wx, True, zx)
    gemm(h, False, Wh, True, zh)
    for e in range(B):
        for k in range(H):
            gi = _sigmoid(zx[e, k] + zh[e, k] + b[k])
            gf = _sigmoid(zx[e, H + k] + zh[e, H + k] + b[H + k])
            gg = np.tanh(zx[e, 2 * H + k] + zh[e, 2 * H + k] + b[2 * H + k])
            go = _sigmoid(zx[e, 3 * H + k] + zh[e, 3 * H + k] + b[3 * H + k])
            cn = gf * c[e, k] + gi * gg
            c_out[e, k] = cn
            h_out[e, k] = go * np.tanh(cn)


@jit
def lstm_backward(x, h0, c0, reset, Wx, Wh, gates, c_seq, h_seq, dh_seq, dWx, dWh, db, dx, dz, dh, dc, hprev):
    """Truncated BPTT through the T steps of ``lstm_forward``.

    Parameters
    ----------
    x, h0, c0, reset, Wx, Wh :
        As passed to ``lstm_forward``.
    gates, c_seq, h_seq : (T, B, 4H), (T, B, H), (T, B, H) float32
        As written by ``lstm_forward``.
    dh_seq : (T, B, H) float32
        dL/dh_t from the layers above (not including the recurrent path).
    dWx : (4H, I), dWh : (4H, H), db : (4H,), dx : (T, B, I) float32
        OVERWRITTEN with dL/dWx, dL/dWh, dL/db, dL/dx.
    dz : (T, B, 4H) float32
        Scratch: dL/dz_t for every step.
    dh, dc : (B, H) float32
        Scratch: the gradient carried into step t from step t+1.
    hprev : (T, B, H) float32
        Scratch: the (reset-masked) h entering every step.

    Notes
    -----
    Going backwards in t, with ``dh = dh_seq[t] + dh_carry`` and ``tc = tanh(c_t)``::

        do = dh * tc;   dc = dc_carry + dh * o * (1 - tc^2)
        di = dc * g;    df = dc * c_prev;   dg = dc * i
        dz_t = [di i(1-i), df f(1-f), dg (1-g^2), do o(1-o)]
        dc_carry = dc * f;   dh_carry = dz_t Wh        (both 0 where reset[t, b] != 0)

    then ``dWx = sum_t dz_t^T x_t``, ``dWh = sum_t dz_t^T h_prev_t``, ``db = sum_t,b dz_t``,
    ``dx_t = dz_t Wx``. No gradient flows into ``h0``/``c0`` (truncated BPTT).
    """
    T, B, I = x.shape
    H = h0.shape[1]
    for e in range(B):
        for k in range(H):
            dh[e, k] = _ZERO
            dc[e, k] = _ZERO
    for t in range(T - 1, -1, -1):
        gt = gates[t]
        dzt = dz[t]
        for e in range(B):
            cut = reset[t, e] != 0
            for k in range(H):
                if cut:
                    cp = _ZERO
                elif t == 0:
                    cp = c0[e, k]
                else:
                    cp = c_seq[t - 1, e, k]
                gi = gt[e, k]
                gf = gt[e, H + k]
                gg = gt[e, 2 * H + k]
                go = gt[e, 3 * H + k]
                tc = np.tanh(c_seq[t, e, k])
                dht = dh_seq[t, e, k] + dh[e, k]
                dct = dc[e, k] + dht * go * (_ONE - tc * tc)
                dzt[e, k] = dct * gg * gi * (_ONE - gi)
                dzt[e, H + k] = dct * cp * gf * (_ONE - gf)
                dzt[e, 2 * H + k] = dct * gi * (_ONE - gg * gg)
                dzt[e, 3 * H + k] = dht * tc * go * (_ONE - go)
                dc[e, k] = _ZERO if cut else dct * gf
        if t > 0:
            gemm(dzt, False, Wh, False, dh)
            for e in range(B):
                if reset[t, e] != 0:
                    for k in range(H):
                        dh[e, k] = _ZERO
    # h entering each step, for dWh
    for t in range(T):
        for e in range(B):
            if reset[t, e] != 0:
                for k in range(H):
                    hprev[t, e, k] = _ZERO
            elif t == 0:
                for k in range(H):
                    hprev[t, e, k] = h0[e, k]
            else:
                for k in range(H):
                    hprev[t, e, k] = h_seq[t - 1, e, k]
    dz2 = dz.reshape(T * B, 4 * H)
    gemm(dz2, True, x.reshape(T * B, I), False, dWx)
    gemm(dz2, True, hprev.reshape(T * B, H), False, dWh)
    gemm(dz2, False, Wx, False, dx.reshape(T * B, I))
    for j in range(4 * H):
        db[j] = _ZERO
    for n in range(T * B):
        for j in range(4 * H):
            db[j] += dz2[n, j]


# ----------------------------------------------------------------------------------------
# Python-boundary checks (kernels check nothing)


def _expect(fn, name, arr, shape, dtype=np.float32):
    """Raise ValueError unless ``arr`` is a C-contiguous ndarray of ``shape`` and ``dtype``."""
    check_array(f"{fn}: {name}", arr, shape, dtype)


def _sizes(fn, x, xdim, h, hname):
    """(T, B, I, H) (T is None for 2-D x) from x and a (B, H) state array, checking their rank."""
    if not isinstance(x, np.ndarray) or x.ndim != xdim:
        got = getattr(x, "shape", type(x).__name__)
        want = "(T, B, I)" if xdim == 3 else "(B, I)"
        raise ValueError(f"{fn}: x has shape {got}, expected {want} float32 C-contiguous")
    if not isinstance(h, np.ndarray) or h.ndim != 2:
        got = getattr(h, "shape", type(h).__name__)
        raise ValueError(f"{fn}: {hname} has shape {got}, expected (B, H) float32 C-contiguous")
    if xdim == 3:
        T, B, I = x.shape
    else:
        T = None
        B, I = x.shape
    return T, B, I, h.shape[1]


def check_lstm_forward(x, h0, c0, reset, Wx, Wh, b, z, gates, c_seq, h_seq):
    """Check ``lstm_forward``'s arguments; sizes come from ``x`` (T, B, I) and ``h0`` (., H)."""
    fn = "lstm_forward"
    T, B, I, H = _sizes(fn, x, 3, h0, "h0")
    _expect(fn, "x", x, (T, B, I))
    for name, arr, shape in (
        ("h0", h0, (B, H)),
        ("c0", c0, (B, H)),
        ("Wx", Wx, (4 * H, I)),
        ("Wh", Wh, (4 * H, H)),
        ("b", b, (4 * H,)),
        ("z", z, (B, 4 * H)),
        ("gates", gates, (T, B, 4 * H)),
        ("c_seq", c_seq, (T, B, H)),
        ("h_seq", h_seq, (T, B, H)),
    ):
        _expect(fn, name, arr, shape)
    _expect(fn, "reset", reset, (T, B), np.uint8)


def check_lstm_step(x, h, c, Wx, Wh, b, z, h_out, c_out):
    """Check ``lstm_step``'s arguments; sizes come from ``x`` (B, I) and ``h`` (., H)."""
    fn = "lstm_step"
    _, B, I, H = _sizes(fn, x, 2, h, "h")
    _expect(fn, "x", x, (B, I))
    for name, arr, shape in (
        ("h", h, (B, H)),
        ("c", c, (B, H)),
        ("Wx", Wx, (4 * H, I)),
        ("Wh", Wh, (4 * H, H)),
        ("b", b, (4 * H,)),
        ("z", z, (2, B, 4 * H)),
        ("h_out", h_out, (B, H)),
        ("c_out", c_out, (B, H)),
    ):
        _expect(fn, name, arr, shape)


def check_lstm_backward(x, h0, c0, reset, Wx, Wh, gates, c_seq, h_seq, dh_seq, dWx, dWh, db, dx, dz, dh, dc, hprev):
    """Check ``lstm_backward``'s arguments; sizes come from ``x`` (T, B, I) and ``h0`` (., H)."""
    fn = "lstm_backward"
    T, B, I, H = _sizes(fn, x, 3, h0, "h0")
    _expect(fn, "x", x, (T, B, I))
    for name, arr, shape in (
        ("h0", h0, (B, H)),
        ("c0", c0, (B, H)),
        ("Wx", Wx, (4 * H, I)),
        ("Wh", Wh, (4 * H, H)),
        ("gates", gates, (T, B, 4 * H)),
        ("c_seq", c_seq, (T, B, H)),
        ("h_seq", h_seq, (T, B, H)),
        ("dh_seq", dh_seq, (T, B, H)),
        ("dWx", dWx, (4 * H, I)),
        ("dWh", dWh, (4 * H, H)),
        ("db", db, (4 * H,)),
        ("dx", dx, (T, B, I)),
        ("dz", dz, (T, B, 4 * H)),
        ("dh", dh, (B, H)),
        ("dc", dc, (B, H)),
        ("hprev", hprev, (T, B, H)),
    ):
        _expect(fn, name, arr, shape)
    _expect(fn, "reset", reset, (T, B), np.uint8)


@jit
def state_in(h_prev, c_prev, reset_row, h, c):
    """The state entering a step: (h, c) = (h_prev, c_prev), zeroed for envs with reset_row[e] != 0.

    h_prev, c_prev, h, c: (B, H) float32; reset_row: (B,) uint8.
    """
    B, H = h.shape
    for e in range(B):
        keep = reset_row[e] == 0
        for k in range(H):
            h[e, k] = h_prev[e, k] if keep else 0.0
            c[e, k] = c_prev[e, k] if keep else 0.0
