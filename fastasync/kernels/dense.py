"""Fully connected layers and ReLU.

Weights follow the ``(out, in)`` convention: ``y = x @ W.T + b``. The GEMM-shaped work is
``gemm(a, trans_a, b, trans_b, out)`` inside the jitted kernel (kernels/blas.py: OpenBLAS's
sgemm, no allocation: the result goes into ``out``), except a forward of at most
``SMALL_ROWS`` rows, which goes by dot products (``_dot_rows``); bias, activations and
reductions are loops.
Backward kernels OVERWRITE their gradient outputs.
"""

import numpy as np

from ._jit import jit
from .blas import gemm, gemm_acc


# Up to this many rows, dense_forward uses its own dot-product kernel instead of the sgemm: a
# GEMM packs all of W for every call, which for the acting forward's 8 rows costs more than the
# products (fc 8 x 2592 x 256: 0.36 -> 0.21 ms, batch 1: 0.32 -> 0.06 ms; at 16 rows they tie).
SMALL_ROWS = 12


@jit
def _dot_rows(x, W, b, y):
    """y = x @ W.T + b by dot products: 2 rows of W x 4 rows of x per pass over I (8 vector
    accumulators, each loaded element used 2 or 4 times). W is read once, pair by pair, each
    pair (in L1) against every row of x (in L2); leftover rows and an odd last row of W go
    one dot product at a time."""
    n, K = x.shape
    O = W.shape[0]
    j = 0
    while j + 2 <= O:
        w0, w1 = W[j], W[j + 1]
        i = 0
        while i + 4 <= n:
            x0, x1, x2, x3 = x[i], x[i + 1], x[i + 2], x[i + 3]
            a00 = a01 = a10 = a11 = a20 = a21 = a30 = a31 = np.float32(0.0)
            for k in range(K):
                u, v = w0[k], w1[k]
                a00 += x0[k] * u
                a01 += x0[k] * v
                a10 += x1[k] * u
                a11 += x1[k] * v
                a20 += x2[k] * u
                a21 += x2[k] * v
                a30 += x3[k] * u
                a31 += x3[k] * v
            y[i, j], y[i, j + 1] = a00 + b[j], a01 + b[j + 1]
            y[i + 1, j], y[i + 1, j + 1] = a10 + b[j], a11 + b[j + 1]
            y[i + 2, j], y[i + 2, j + 1] = a20 + b[j], a21 + b[j + 1]
            y[i + 3, j], y[i + 3, j + 1] = a30 + b[j], a31 + b[j + 1]
            i += 4
        if i < n:  # the last n % 4 rows of x
            _dot_one(x[i:], w0, b[j], y[i:, j])
            _dot_one(x[i:], w1, b[j + 1], y[i:, j + 1])
        j += 2
    if j < O:  # odd O: the last row of W
        _dot_one(x, W[j], b[j], y[:, j])


@jit
def _dot_one(x, w, bj, out):
    """out[r] = x[r] @ w + bj for every row r of x."""
    for r in range(x.shape[0]):
        xr = x[r]
        a = np.float32(0.0)
        for k in range(w.shape[0]):
            a += xr[k] * w[k]
        out[r] = a + bj


@jit
def dense_forward(x, W, b, y):
    """y = x @ W.T + b.

    x: (N, I) float32, W: (O, I) float32, b: (O,) float32, y: (N, O) float32 (written).
    x, W and y need contiguous rows (any row stride), as for ``gemm``.
    """
    n, o = y.shape
    if n <= SMALL_ROWS:
        if x.shape[0] != n or W.shape[0] != o or x.shape[1] != W.shape[1] or b.shape[0] != o:
            raise ValueError("dense_forward: shapes do not chain: x (N, I), W (O, I), b (O,), y (N, O)")
        _dot_rows(x, W, b, y)
        return
    gemm(x, False, W, True, y)
    for i in range(n):
        for j in range(o):
            y[i, j] += b[j]


@jit
def dense_backward(x, W, dy, dW, db, dx, need_dx):
    """Gradients of y = x @ W.T + b.

    dW = dy.T @ x (O, I); db = sum_n dy (O,); dx = dy @ W (N, I) when ``need_dx``.
    All three are overwritten; ``dx`` is not touched when ``need_dx`` is False.
    """
    dense_grads(x, W, dy, dW, db, dx, need_dx, False)


@jit
def dense_grads(x, W, dy, dW, db, dx, need_dx, acc):
    """dW (+)= dy.T @ x, db (+)= sum_n dy, dx = dy @ W (when ``need_dx``): ADDED to dW and db
    when ``acc`` (conv_backward's later slots), else written. A dy that is mostly zeros
    (``sparse_pays``: the ReLU's) goes by ``sparse_backward_acc``, any other by two sgemms.
    """
    n, o = dy.shape
    if not acc:
        for j in range(o):
            db[j] = 0.0
    if sparse_pays(dy):
        if not acc:
            dW[...] = 0.0
        sparse_backward_acc(x, W, dy, dW, db, dx, need_dx)
        return
    if acc:
        gemm_acc(dy, True, x, False, dW)
    else:
        gemm(dy, True, x, False, dW)
    for i in range(n):
        row = dy[i]
        for j in range(o):
            db[j] += row[j]
    if need_dx:
        gemm(dy, False, W, False, dx)


# dy with at most this share of nonzeros goes by sparse_backward_acc (see sparse_pays)
SPARSE_MAX_DENSITY = 0.25


@jit
def sparse_pays(dy):
    """Whether ``sparse_backward_acc`` beats the two sgemms for this output gradient: at most
    ``SPARSE_MAX_DENSITY`` of its entries nonzero. Its time grows with the nonzeros; alone,
    with uniformly scattered zeros (the worst case for its branch), against the sgemms: fc's
    40 x 256 dy 0.94 / 1.88 / 2.61 ms at 10 / 20 / 30% vs 2.04, one conv2 slot's 648 x 32
    0.24 / 0.42 / 0.60 vs 0.35 (bench/RESULTS-history.md, 2026-11-27 16:21)."""
    n, o = dy.shape
    nnz = 0
    for i in range(n):
        row = dy[i]
        for j in range(o):
            if row[j] != 0.0:
                nnz += 1
    return nnz <= SPARSE_MAX_DENSITY * n * o


@jit
def sparse_backward_acc(x, W, dy, dW, db, dx, need_dx):
    """dW += dy.T @ x, db += sum_n dy, and dx = dy @ W (OVERWRITTEN, when ``need_dx``),
    visiting only dy's nonzero entries: per nonzero dy[i, j], x[i] into dW[j] and W[j] into
    dx[i] (two vectorised AXPYs; W[j] and dW[j] stay in L1 over the column). A ReLU layer's
    dy is mostly zeros once the net has trained (the Pong net trained at commit 494d6a2: 12%
    of fc's and 17% of conv2's outputs active), where this does a fraction of the sgemms'
    work; the sums are the same, in another order.
    x: (N, I), W: (O, I), dy: (N, O), dW: (O, I), db: (O,), dx: (N, I); rows contiguous.
    """
    n, o = dy.shape
    if need_dx:
        for i in range(n):
            di = dx[i]
            for k in range(di.shape[0]):
                di[k] = 0.0
    for j in range(o):
        wj, Wj = dW[j], W[j]
        s = np.float32(0.0)
        for i in range(n):
            a = dy[i, j]
            if a == 0.0:
                continue
            s += a
            xi = x[i]
            for k in range(wj.shape[0]):
                wj[k] += a * xi[k]
            if need_dx:
                di = dx[i]
                for k in range(di.shape[0]):
                    di[k] += a * Wj[k]
        db[j] += s


@jit
def relu_forward(y):
    """In place: y = max(y, 0). y: any-shape C-contiguous float32 array."""
    f = y.reshape(-1)
    for i in range(f.size):
        if f[i] < 0.0:
            f[i] = 0.0


@jit
def relu_backward(y, dy):
    """In place: dy = dy * (y > 0), where y is the ReLU OUTPUT (same shape as dy)."""
    fy = y.reshape(-1)
    fd = dy.reshape(-1)
    for i in range(fd.size):
        if fy[i] <= 0.0:
            fd[i] = 0.0
