"""Kernel benchmark: the Atari net's forward and forward+backward on one core, vs fp32 peak.

    python bench/kernels.py

Prints the machine, versions, a single-thread fp32 GEMM peak probe (NumPy's sgemm on a large
square matrix and on the net's own GEMM shapes, Numba's np.dot -> SciPy BLAS on the same
shapes, and a naive Numba triple loop for comparison), then the net's timings at batch 1, 8
and 40 (40 = t_max 5 x 8 envs: forward over 5 slots of 8, then one backward), and a
per-kernel breakdown of the batch-40 step. Every figure is the median of several timed
repeats after a warm-up (compile) run; BLAS is pinned to one thread throughout. The output
is markdown, ready for bench/RESULTS.md. Runs in well under a minute.
"""

from __future__ import annotations

import datetime
import os
import platform
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numba  # noqa: E402
import scipy  # noqa: E402
import scipy.linalg.cython_blas  # noqa: E402,F401  the BLAS Numba's np.dot calls: load it BEFORE pinning
from threadpoolctl import threadpool_info, threadpool_limits  # noqa: E402

from fastasync.kernels import conv as kconv  # noqa: E402
from fastasync.kernels import dense as kdense  # noqa: E402
from fastasync.kernels import heads as kheads  # noqa: E402
from fastasync.kernels._jit import jit  # noqa: E402
from fastasync.nets import make_net  # noqa: E402

NUM_ACTIONS = 6
MIN_REPEATS, MIN_SECONDS = 5, 0.4


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def bench(fn, min_repeats=MIN_REPEATS, min_seconds=MIN_SECONDS, max_repeats=200):
    """Median wall time (s) of fn() over >= min_repeats runs and >= min_seconds, after 1 warm-up."""
    fn()
    times = []
    t_start = time.perf_counter()
    while len(times) < max_repeats and (len(times) < min_repeats or time.perf_counter() - t_start < min_seconds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


# ----------------------------------------------------------------------------- peak probe


@jit
def naive_gemm(a, b, c):
    """c = a @ b with a plain i-k-j triple loop (the inner loop is contiguous and vectorises)."""
    M, K = a.shape
    N = b.shape[1]
    for i in range(M):
        for j in range(N):
            c[i, j] = 0.0
        for k in range(K):
            aik = a[i, k]
            for j in range(N):
                c[i, j] += aik * b[k, j]


@jit
def numba_dot(a, b, c):
    """c = a @ b through Numba's np.dot, i.e. SciPy's BLAS sgemm: the path the kernels use."""
    np.dot(a, b, c)


def gemm_probe():
    """GFLOP/s of single-thread sgemm (NumPy, Numba->SciPy BLAS, naive loop) on several shapes."""
    rs = np.random.default_rng(0)
    shapes = [
        ("1024x1024x1024 (square)", 1024, 1024, 1024),
        ("40x2592x256 (fc, batch 40: the backward's rows)", 40, 2592, 256),
        ("16000x256x16 (conv1 by im2col, batch 40; not used)", 16000, 256, 16),
        ("441x64x64 (conv1 by space-to-depth, one sample)", 441, 64, 64),
        ("648x256x32 (conv2, one slot of 8)", 648, 256, 32),
    ]
    rows = []
    for label, M, K, N in shapes:
        a = rs.standard_normal((M, K)).astype(np.float32)
        b = rs.standard_normal((K, N)).astype(np.float32)
        c = np.empty((M, N), np.float32)
        flops = 2.0 * M * K * N
        t_np = bench(lambda: np.matmul(a, b, out=c))
        expect = c.copy()
        t_nb = bench(lambda: numba_dot(a, b, c))
        np.testing.assert_allclose(c, expect, rtol=1e-3, atol=1e-3 * np.abs(expect).max())
        reps = 3 if M * K * N > 1e8 else MIN_REPEATS
        t_nv = bench(lambda: naive_gemm(a, b, c), min_repeats=reps, min_seconds=0.0)
        np.testing.assert_allclose(c, expect, rtol=1e-3, atol=1e-3 * np.abs(expect).max())
        rows.append((label, flops / t_np / 1e9, flops / t_nb / 1e9, flops / t_nv / 1e9))
    return rows


def blas_cpu_per_wall():
    """Process CPU time / wall time of Numba's np.dot on a square sgemm: ~1.0 when BLAS is really pinned."""
    a = np.ones((768, 768), np.float32)
    c = np.empty_like(a)
    numba_dot(a, a, c)
    w0, c0 = time.perf_counter(), time.process_time()
    for _ in range(5):
        numba_dot(a, a, c)
    return (time.process_time() - c0) / (time.perf_counter() - w0)


# ----------------------------------------------------------------------------- the net


class Step:
    """One learner's buffers for T slots of E envs of the Atari net, and its loss inputs."""

    def __init__(self, net, theta, T, E, seed=0):
        rs = np.random.default_rng(seed)
        self.net, self.T, self.E = net, T, E
        self.grad = net.layout.zeros()
        self.ws = net.workspace(T, E, theta, self.grad)
        self.obs = rs.integers(0, 256, (T, E, *net.obs_shape), dtype=np.uint8)
        n = T * E
        self.actions = rs.integers(0, net.num_actions, n).astype(np.int32)
        self.returns = rs.standard_normal(n).astype(np.float32)
        self.weight = np.full(n, 1.0 / E, np.float32)
        self.stats = np.zeros(4)

    def forward(self):
        for t in range(self.T):
            self.net.forward(self.ws, self.obs[t], t)

    def forward_backward(self):
        self.forward()
        net, ws, T = self.net, self.ws, self.T
        kheads.a3c_head_backward(
            net.outputs(ws, T), self.actions, self.returns, self.weight, 0.01, 0.5, net.dout(ws, T), self.stats
        )
        net.backward(ws, T)


def kernel_breakdown(step):
    """Median time of every kernel call of one batch-40 forward+backward, by hand, on the step's buffers."""
    net, ws = step.net, step.ws
    c1, c2, fc, head = net.layers
    b1, b2, bf, bh = ws.bufs
    w, g = ws.w, ws.g
    rows = step.T * step.E
    p1, p2 = c1.oh * c1.ow, c2.oh * c2.ow
    y1, y2 = b1["y"][: rows * p1], b2["y"][: rows * p2]
    T, E = step.T, step.E
    x1 = y1.reshape(rows, c1.oh, c1.ow, c1.oc)
    xf = y2.reshape(rows, fc.n_in)
    yf, yh = bf["y"][:rows], bh["y"][:rows]
    dyh, dyf, dy2, dy1 = bh["dy"][:rows], bf["dy"][:rows], b2["dy"][: rows * p2], b1["dy"][: rows * p1]
    cols2 = b2["cols"][: E * p2]  # one slot's, as in the net
    step.forward_backward()  # fills every buffer with real values

    def slots(fn):
        return lambda: [fn(t) for t in range(T)]

    items = [
        ("fwd conv1 weights to blocks x T",
         slots(lambda t: kconv.s2d_weights(w["conv1.W"], c1.c_in, c1.k, c1.stride, b1["Wq"]))),
        ("fwd conv1 space-to-depth + 2x2 dot products+bias+relu (sample by sample) x T",
         slots(lambda t: kconv.conv_s2d_forward(b1["x_t"][t], c1.stride, c1.scale, b1["Wq"], w["conv1.b"], c1.q, c1.oh,
                                                c1.ow, b1["S"], b1["ycat"], b1["y_t"][t]))),
        ("fwd conv2 im2col x T", slots(lambda t: kconv.im2col_nhwc(x1[t * E : (t + 1) * E], c2.k, c2.k, c2.stride, cols2))),
        ("fwd conv2 GEMM+bias x T",
         slots(lambda t: kdense.dense_forward(cols2, w["conv2.W"], w["conv2.b"], b2["y_t"][t]))),
        ("fwd fc dot products+bias x T",
         slots(lambda t: kdense.dense_forward(xf[t * E : (t + 1) * E], w["fc.W"], w["fc.b"], yf[t * E : (t + 1) * E]))),
        ("fwd head dot products+bias x T",
         slots(lambda t: kdense.dense_forward(yf[t * E : (t + 1) * E], w["head.W"], w["head.b"], yh[t * E : (t + 1) * E]))),
        ("fwd relu x2 (conv1's is fused)", lambda: (kdense.relu_forward(y2), kdense.relu_forward(yf))),
        ("bwd head dW,db,dx", lambda: kdense.dense_backward(yf, w["head.W"], dyh, g["head.W"], g["head.b"], dyf, True)),
        ("bwd fc dW,db,dx", lambda: kdense.dense_backward(xf, w["fc.W"], dyf, g["fc.W"], g["fc.b"], xf.copy(), True)),
        ("bwd conv2 dW,db,dx (im2col again + 2 GEMMs + col2im, slot by slot)",
         lambda: kconv.conv_backward(x1, False, 1.0, dy2, w["conv2.W"], E, c2.k, c2.k, c2.stride, b2["cols"],
                                     b2["dcols"], g["conv2.W"], g["conv2.b"], dy1.reshape(x1.shape), True)),
        (
            "bwd conv1 dW,db (space-to-depth again + shifted dy + one GEMM, sample by sample)",
            lambda: (
                kconv.conv_s2d_backward(dy1, b1["x"][:rows], c1.stride, c1.scale, c1.oh, c1.ow, c1.q, b1["S"],
                                        b1["dcat"], b1["dWq"], g["conv1.b"]),
                kconv.s2d_weights_backward(b1["dWq"], c1.c_in, c1.k, c1.stride, g["conv1.W"]),
            ),
        ),
        ("bwd relu x3", lambda: (kdense.relu_backward(y1, dy1), kdense.relu_backward(y2, dy2), kdense.relu_backward(yf, dyf))),
    ]
    return [(name, bench(fn, min_seconds=0.15)) for name, fn in items]


def main():
    t_begin = time.perf_counter()
    with threadpool_limits(limits=1):
        blas = ", ".join(sorted({f"{i['internal_api']} {i.get('version') or ''}".strip() for i in threadpool_info()}))
        print(f"## Kernel benchmark, {datetime.date.today().isoformat()}\n")
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        print(f"- machine: {cpu_model()}, {os.cpu_count()} logical CPUs; load average at start {load}")
        print(
            f"- python {platform.python_version()}, numpy {np.__version__}, numba {numba.__version__}, "
            f"scipy {scipy.__version__}; BLAS: {blas} (pinned to 1 thread)"
        )
        print("- command: `python bench/kernels.py`; median of >= 5 timed repeats after a warm-up")
        ratio = blas_cpu_per_wall()
        print(f"- check: CPU time / wall time of a BLAS sgemm = {ratio:.2f} (1.00 = one thread)")
        if ratio > 1.1:
            print("- **WARNING: BLAS runs on more than one thread; figures are not single-core**")
        elif ratio < 0.9:
            print("- **WARNING: this process got less than a full core (busy machine); figures are low**")
        print()

        net = make_net((4, 84, 84), NUM_ACTIONS)
        theta = net.init_params(0)
        steps = {1: Step(net, theta, 1, 1), 8: Step(net, theta, 1, 8), 40: Step(net, theta, 5, 8)}
        for s in steps.values():  # compile (or load the cache) before anything is timed
            s.forward_backward()

        probe = gemm_probe()
        peak = max(max(r[1], r[2]) for r in probe)
        print("### Single-thread fp32 GEMM probe (GFLOP/s)\n")
        print("| shape M x K x N | NumPy sgemm | Numba np.dot (SciPy BLAS) | naive Numba loop |")
        print("|---|---:|---:|---:|")
        for label, g_np, g_nb, g_nv in probe:
            print(f"| {label} | {g_np:.1f} | {g_nb:.1f} | {g_nv:.1f} |")
        print(f"\npeak = best single-thread sgemm measured above = **{peak:.1f} GFLOP/s**\n")

        fwd = net.flops_per_sample()
        conv1_dx = net.layers[0].flops()  # the first layer computes no input gradient
        bwd = 2 * fwd - conv1_dx
        print(f"### Atari FF net (4x84x84, {NUM_ACTIONS} actions, {net.num_params:,} params), one thread\n")
        print(f"forward {fwd / 1e6:.1f} MFLOP/sample; backward {bwd / 1e6:.1f} MFLOP/sample (2x forward minus conv1 dx)\n")
        print("| batch | pass | ms | samples/s | GFLOP/s | % of peak |")
        print("|---:|---|---:|---:|---:|---:|")
        for batch, s in steps.items():
            label = f"{batch}" if s.T == 1 else f"{batch} ({s.T}x{s.E})"
            for name, fn, flops in (("forward", s.forward, fwd), ("forward+backward", s.forward_backward, fwd + bwd)):
                t = bench(fn)
                gf = flops * batch / t / 1e9
                print(f"| {label} | {name} | {t * 1e3:.2f} | {batch / t:,.0f} | {gf:.1f} | {100 * gf / peak:.0f}% |")

        parts = kernel_breakdown(steps[40])
        total = sum(t for _, t in parts)
        print("\n### Batch 40 (5x8) forward+backward by kernel\n")
        print("| kernel | ms | share |")
        print("|---|---:|---:|")
        for name, t in parts:
            print(f"| {name} | {t * 1e3:.2f} | {100 * t / total:.0f}% |")
        print(f"| sum | {total * 1e3:.2f} | |")
    print(f"\n(benchmark ran in {time.perf_counter() - t_begin:.0f} s)")


if __name__ == "__main__":
    main()
