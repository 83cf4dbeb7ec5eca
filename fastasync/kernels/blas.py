"""``gemm`` (c = a @ b) and ``gemm_acc`` (c += a @ b): the one sgemm every kernel calls, from
OpenBLAS >= 0.3.31 (scipy-openblas32 wheel).

Why not Numba's ``np.dot``: it calls SciPy's bundled BLAS (OpenBLAS 0.3.30 in SciPy 1.17),
which is markedly slower on the net's skinny shapes than OpenBLAS 0.3.31+ (the same sgemm
call, measured single-threaded on the 2-core development machine; bench/RESULTS-history.md,
2026-11-27 09:26, 2775248): the 8-env fc forward 0.61 -> 0.34 ms, conv1's weight gradient
(64 x 17,750 x 64) 4.5 -> 3.4 ms, conv2's 1.44 -> 0.98 ms, the fc input gradient
1.11 -> 0.82 ms; square GEMMs are the same.

How: ``scipy_cblas_sgemm`` of the ``scipy-openblas32`` package (the OpenBLAS build NumPy and
SciPy themselves are built from) is registered with LLVM under the name
``fastasync_cblas_sgemm`` and called as a Numba ``ExternalFunction``. Calls are linked by
name, not by address, so kernels that use it stay cacheable (``cache=True``). Pointers go
as ``intp`` (the same registers as a pointer in every 64-bit C calling convention).

Threads: this OpenBLAS is set to one thread when loaded; every learner thread is one core's
worth of work (threadpoolctl, which the trainer uses, limits it too).

Under ``NUMBA_DISABLE_JIT=1`` (the kernel tests' interpreted run) both are NumPy's matmul.
"""

from __future__ import annotations

import ctypes

import numba
import numpy as np

from ._jit import jit

SYMBOL = "fastasync_cblas_sgemm"
_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112


def _library():
    """The loaded scipy-openblas32 library (a ctypes CDLL), set to one thread."""
    import scipy_openblas32

    if scipy_openblas32.dll is None:  # the package loads it on import; this loads it if not
        scipy_openblas32.get_openblas_config()
    lib = scipy_openblas32.dll
    lib.scipy_openblas_set_num_threads(ctypes.c_int(1))
    return lib


def library_info() -> dict:
    """What ``gemm`` calls, for benchmark reports."""
    import scipy_openblas32

    info = dict(library="scipy-openblas32", version=getattr(scipy_openblas32, "__version__", None),
                file=scipy_openblas32.get_library(fullname=True))
    try:
        info["config"] = scipy_openblas32.get_openblas_config()
    except Exception:  # noqa: BLE001 - informational only
        pass
    if numba.config.DISABLE_JIT:
        info["note"] = "NUMBA_DISABLE_JIT: NumPy's matmul"
    return info


@jit
def _inner_dim(a, trans_a, b, trans_b, c):
    """K of c (M x N) = op(a) (M x K) @ op(b) (K x N); ValueError where the shapes do not chain
    or a row is not contiguous (the BLAS call would read past an array or mix up elements)."""
    M, N = c.shape
    K = a.shape[0] if trans_a else a.shape[1]
    am = a.shape[1] if trans_a else a.shape[0]
    bk = b.shape[1] if trans_b else b.shape[0]
    bn = b.shape[0] if trans_b else b.shape[1]
    if am != M or bk != K or bn != N:
        raise ValueError("gemm: shapes do not chain: op(a) is M x K, op(b) K x N, c M x N")
    if a.strides[1] != 4 or b.strides[1] != 4 or c.strides[1] != 4:
        raise ValueError("gemm: arrays need contiguous rows (unit column stride)")
    return K


if numba.config.DISABLE_JIT:

    def gemm(a, trans_a, b, trans_b, c):
        """c = op(a) @ op(b), op(x) = x.T if trans_x else x; c overwritten (NumPy's matmul)."""
        _inner_dim(a, trans_a, b, trans_b, c)
        np.matmul(a.T if trans_a else a, b.T if trans_b else b, out=c)

    def gemm_acc(a, trans_a, b, trans_b, c):
        """c += op(a) @ op(b) (NumPy's matmul)."""
        _inner_dim(a, trans_a, b, trans_b, c)
        c += np.matmul(a.T if trans_a else a, b.T if trans_b else b)

else:
    import llvmlite.binding as _llvm
    from numba.core import types as _t

    _lib = _library()
    _llvm.add_symbol(SYMBOL, ctypes.cast(_lib.scipy_cblas_sgemm, ctypes.c_void_p).value)
    _i32, _f32, _ptr = _t.int32, _t.float32, _t.intp
    _cblas_sgemm = _t.ExternalFunction(
        SYMBOL,
        _t.void(_i32, _i32, _i32, _i32, _i32, _i32, _f32, _ptr, _i32, _ptr, _i32, _f32, _ptr, _i32),
    )

    @jit
    def _sgemm(a, trans_a, b, trans_b, beta, c):
        """c = op(a) @ op(b) + beta * c; see gemm."""
        M, N = c.shape
        K = _inner_dim(a, trans_a, b, trans_b, c)
        if M == 0 or N == 0:
            return
        if K == 0:
            if beta == 0.0:
                c[:, :] = 0.0
            return
        _cblas_sgemm(
            _ROW_MAJOR, _TRANS if trans_a else _NO_TRANS, _TRANS if trans_b else _NO_TRANS,
            M, N, K, np.float32(1.0),
            a.ctypes.data, max(a.strides[0] // 4, a.shape[1], 1),
            b.ctypes.data, max(b.strides[0] // 4, b.shape[1], 1),
            np.float32(beta), c.ctypes.data, max(c.strides[0] // 4, N, 1),
        )

    @jit
    def gemm(a, trans_a, b, trans_b, c):
        """c = op(a) @ op(b), op(x) = x.T if trans_x else x; c overwritten.

        a, b, c: 2-D float32 with contiguous rows (row stride free: row slices of a larger
        array are fine). Shapes that do not chain raise ValueError instead of reading past
        an array.
        """
        _sgemm(a, trans_a, b, trans_b, 0.0, c)

    @jit
    def gemm_acc(a, trans_a, b, trans_b, c):
        """c += op(a) @ op(b): accumulates (sums over slots without a scratch per slot)."""
        _sgemm(a, trans_a, b, trans_b, 1.0, c)
