"""Fully connected layers and ReLU.

Weights follow the ``(out, in)`` convention: ``y = x @ W.T + b``. The GEMM-shaped work is
``gemm(a, trans_a, b, trans_b, out)`` inside the jitted kernel (kernels/blas.py: OpenBLAS's
sgemm, no allocation: the result goes into ``out``); bias, activations and reductions are loops.
Backward kernels OVERWRITE their gradient outputs.
"""

import numpy as np

from ._jit import jit
from .blas import gemm


@jit
def dense_forward(x, W, b, y):
    """y = x @ W.T + b.

    x: (N, I) float32, W: (O, I) float32, b: (O,) float32, y: (N, O) float32 (written).
    """
    gemm(x, False, W, True, y)
    n, o = y.shape
    for i in range(n):
        for j in range(o):
            y[i, j] += b[j]


@jit
def dense_backward(x, W, dy, dW, db, dx, need_dx):
    """Gradients of y = x @ W.T + b.

    dW = dy.T @ x (O, I); db = sum_n dy (O,); dx = dy @ W (N, I) when ``need_dx``.
    All three are overwritten; ``dx`` is not touched when ``need_dx`` is False.
    """
    gemm(dy, True, x, False, dW)
    n, o = dy.shape
    for j in range(o):
        db[j] = 0.0
    for i in range(n):
        for j in range(o):
            db[j] += dy[i, j]
    if need_dx:
        gemm(dy, False, W, False, dx)


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
