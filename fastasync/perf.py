"""Machine facts for benchmarks: one core's fp32 peak, CPU model, thread settings, RSS.

Used by ``fastasync bench`` and ``fastasync profile`` so that every figure they print
comes with the machine and the thread settings it was measured under.
"""

from __future__ import annotations

import os
import time


def load_blas():
    """Load every BLAS in play so threadpoolctl sees (and can limit) them all.

    threadpoolctl only limits libraries already loaded: NumPy's, SciPy's, and the
    scipy-openblas32 library whose sgemm the kernels call (fastasync/kernels/blas.py).
    """
    import numpy  # noqa: F401
    import scipy.linalg.cython_blas  # noqa: F401

    from .kernels import blas  # noqa: F401


def fp32_peak_gflops(seconds: float = 1.0, n: int = 1024) -> float:
    """One core's fp32 GEMM peak measured now: best-of-N single-threaded sgemm, GFLOP/s.

    Multiplies two ``n x n`` float32 matrices (``2 n^3`` FLOPs) repeatedly for about
    ``seconds`` with every BLAS pool pinned to one thread, through NumPy's BLAS, SciPy's and
    the kernels' own (``fastasync.kernels.blas.gemm``), and returns the best rate seen.
    Best-of, not mean, because other load only ever slows a run down.
    """
    load_blas()
    import numpy as np
    from scipy.linalg.blas import sgemm
    from threadpoolctl import threadpool_limits

    from .kernels.blas import gemm

    rng = np.random.default_rng(0)
    a = np.asfortranarray(rng.standard_normal((n, n), dtype=np.float32))
    b = np.asfortranarray(rng.standard_normal((n, n), dtype=np.float32))
    ac, bc = np.ascontiguousarray(a), np.ascontiguousarray(b)
    c = np.empty((n, n), np.float32)
    flops = 2.0 * n**3
    best = 0.0
    with threadpool_limits(limits=1):
        probes = (lambda: np.matmul(a, b, out=c), lambda: sgemm(1.0, a, b), lambda: gemm(ac, False, bc, False, c))
        for fn in probes:
            fn()
            end = time.perf_counter() + max(seconds, 0.0) / len(probes)
            reps = 0
            while reps < 3 or time.perf_counter() < end:
                t = time.perf_counter()
                fn()
                dt = time.perf_counter() - t
                best = max(best, flops / dt / 1e9)
                reps += 1
    return best


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (or platform's guess elsewhere)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine() or "unknown"


def cpu_flags() -> list[str]:
    """The SIMD flags that bound fp32 throughput (avx, avx2, fma, avx512f), if listed."""
    want = ("avx", "avx2", "fma", "avx512f")
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    have = set(line.split(":", 1)[1].split())
                    return [f for f in want if f in have]
    except OSError:
        pass
    return []


def thread_settings() -> dict:
    """Thread pools that can compete with the learner threads, as they are now.

    numba: configured threading layer, the one in use (only known once a parallel kernel
    ran; fastasync never runs one), NUMBA_NUM_THREADS; blas: every pool threadpoolctl sees
    (library, num_threads, arch); kernels_gemm: the BLAS whose sgemm the kernels call;
    envpool: worker threads per env batch (``make_env``'s
    default, which the trainer uses); the OMP/OpenBLAS/MKL environment variables.
    """
    import inspect

    load_blas()
    import numba
    from threadpoolctl import threadpool_info

    from .envs import make_env
    from .kernels.blas import library_info

    try:
        layer_in_use = numba.threading_layer()
    except ValueError:
        layer_in_use = "none (no parallel kernel has run)"
    blas = [
        dict(
            library=p.get("internal_api"),
            user_api=p.get("user_api"),
            num_threads=p.get("num_threads"),
            arch=p.get("architecture"),
            version=p.get("version"),
            file=os.path.basename(p.get("filepath", "")),
        )
        for p in threadpool_info()
    ]
    try:
        from importlib.metadata import version

        envpool_version = version("envpool")
    except Exception:  # noqa: BLE001 - not installed
        envpool_version = None
    env_vars = {
        k: os.environ.get(k)
        for k in (
            "OMP_NUM_THREADS",
            "OPENBLAS_NUM_THREADS",
            "MKL_NUM_THREADS",
            "NUMBA_NUM_THREADS",
            "NUMBA_THREADING_LAYER",
        )
    }
    return dict(
        cpus=os.cpu_count(),
        numba=dict(
            version=numba.__version__,
            threading_layer_config=numba.config.THREADING_LAYER,
            threading_layer_in_use=layer_in_use,
            num_threads=numba.config.NUMBA_NUM_THREADS,
        ),
        blas=blas,
        kernels_gemm=library_info(),
        envpool=dict(
            version=envpool_version,
            num_threads_per_batch=inspect.signature(make_env).parameters["num_threads"].default,
        ),
        env=env_vars,
    )


def rss_mb() -> float:
    """Resident set size of this process in MiB (VmRSS from /proc/self/status)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # peak, where no /proc
