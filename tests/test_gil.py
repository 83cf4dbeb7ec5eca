"""The kernels release the GIL: two threads doing the same net work take ~the time of one.

Each thread runs the Atari net's forward + backward (batch 16) on its own workspace, as
learner threads do. If any kernel held the GIL, two threads would take ~2x one thread's
time; with nogil kernels (and BLAS pinned to one thread) they overlap on two cores.
"""

import os
import threading
import time

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from fastasync.kernels import heads as kheads
from fastasync.nets import make_net

pytestmark = pytest.mark.skipif(
    (os.cpu_count() or 1) < 2, reason="needs at least 2 CPU cores to run two threads in parallel"
)

E, A, ITERS, REPEATS = 16, 6, 12, 3
RATIO = 1.6
ATTEMPTS = 3
BUSY = 1.4  # a GIL-free control that overlaps worse than this means no second free core


class Worker:
    """One learner's buffers: workspace, gradient, loss inputs (allocated once)."""

    def __init__(self, net, theta, seed):
        rs = np.random.default_rng(seed)
        self.net = net
        self.grad = net.layout.zeros()
        self.ws = net.workspace(1, E, theta, self.grad)
        self.obs = rs.integers(0, 256, (E, *net.obs_shape), dtype=np.uint8)
        self.actions = rs.integers(0, A, E).astype(np.int32)
        self.returns = rs.standard_normal(E).astype(np.float32)
        self.weight = np.full(E, 1.0 / E, np.float32)
        self.stats = np.zeros(4)

    def run(self, iters):
        net, ws = self.net, self.ws
        for _ in range(iters):
            net.forward(ws, self.obs, 0)
            kheads.a3c_head_backward(
                net.outputs(ws, 1), self.actions, self.returns, self.weight, 0.01, 0.5, net.dout(ws, 1), self.stats
            )
            net.backward(ws, 1)


def timed(workers, iters):
    """Wall time of every worker running ``iters`` iterations concurrently (own thread each)."""
    barrier = threading.Barrier(len(workers) + 1)
    errors = []

    def body(w):
        try:
            barrier.wait()
            w.run(iters)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=body, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    dt = time.perf_counter() - t0
    assert not errors, errors
    return dt


def make_workers():
    net = make_net((4, 84, 84), A)
    theta = net.init_params(0)
    workers = [Worker(net, theta, s) for s in (1, 2)]
    for w in workers:  # compile (or load from cache) and warm up
        w.run(2)
    return workers


class ControlWorker:
    """A GIL-free NumPy workload (single-thread sgemm, which releases the GIL) of similar length.

    Its 2-thread/1-thread ratio says whether two cores are free right now: if even this
    overlaps badly, the machine is busy with other processes and the timing says nothing.
    """

    def __init__(self, seconds_per_iter):
        self.a = np.random.default_rng(0).standard_normal((256, 256)).astype(np.float32)
        self.c = np.empty_like(self.a)
        t0 = time.perf_counter()
        for _ in range(20):
            np.matmul(self.a, self.a, out=self.c)
        self.reps = max(1, int(seconds_per_iter / ((time.perf_counter() - t0) / 20)))

    def run(self, iters):
        for _ in range(iters * self.reps):
            np.matmul(self.a, self.a, out=self.c)


def test_two_threads_overlap():
    """2 threads x the work of 1 thread in < 1.6x its wall time (best of 3, alternated).

    Other processes on a small machine can take a core away; a failing round is re-measured
    (up to ``ATTEMPTS`` rounds). It fails only if every round is slow while a GIL-free NumPy
    control overlapped fine in every round; if the control also failed to overlap in some
    round, the machine is too busy to tell and the test is skipped rather than failed.
    """
    workers = make_workers()
    results = []
    with threadpool_limits(limits=1):
        per_iter = timed(workers[:1], 2) / 2
        controls = [ControlWorker(per_iter), ControlWorker(per_iter)]
        for _ in range(ATTEMPTS):
            one, two, c_one, c_two = [], [], [], []
            for _ in range(REPEATS):  # alternate, so slow phases of the machine hit both
                one.append(timed(workers[:1], ITERS))
                two.append(timed(workers, ITERS))
                c_one.append(timed(controls[:1], ITERS))
                c_two.append(timed(controls, ITERS))
            results.append((min(one), min(two), min(c_two) / min(c_one)))
            if min(two) < RATIO * min(one):
                break
    assert all(np.all(np.isfinite(w.grad)) for w in workers)
    one, two, _ = results[-1]
    summary = "2 threads vs 1 thread (ms): " + ", ".join(
        f"{b * 1e3:.0f}/{a * 1e3:.0f} = {b / a:.2f}x (NumPy control {c:.2f}x)" for a, b, c in results
    )
    # fail only on consistent evidence: every round slow while the control overlapped fine
    if two >= RATIO * one and any(c >= BUSY for _, _, c in results):
        pytest.skip(f"machine busy, two cores not available: {summary}")
    assert two < RATIO * one, summary


def stalled_fraction(worker, iters):
    """Fraction of the time the main thread's Python loop stalls (> 2 ms gaps) while ``worker`` runs."""
    done = threading.Event()
    gaps = []

    def bg():
        try:
            worker.run(iters)
        finally:
            done.set()

    t = threading.Thread(target=bg)
    last = time.perf_counter()
    t.start()
    while not done.is_set():
        now = time.perf_counter()
        gaps.append(now - last)
        last = now
    t.join()
    gaps = np.array(gaps)
    return gaps[gaps > 2e-3].sum() / gaps.sum()


def test_python_thread_runs_while_kernels_run():
    """While a worker runs the net in a thread, the main thread keeps executing Python.

    A direct check that needs no timing ratio: if a kernel held the GIL, the main loop would
    stall for most of the run (each kernel call takes milliseconds; the switch interval is
    5 ms), as it does for a Numba function compiled without nogil (~80-90% stalled). The same
    loop beside a GIL-free NumPy control tells whether the OS itself is starving the thread
    on a busy machine: the net may stall up to 15 points more than the control, and when
    even the control stalls >= 70% of the time the test is skipped.
    """
    (w, _) = make_workers()
    with threadpool_limits(limits=1):
        per_iter = timed([w], 2) / 2
        control = ControlWorker(per_iter)
        fractions = []
        for _ in range(ATTEMPTS):
            net, ctl = stalled_fraction(w, ITERS), stalled_fraction(control, ITERS)
            fractions.append((net, ctl))
            if net < max(0.5, ctl + 0.15):  # measured: nogil net ~ control; GIL-holding +20..50%
                return
    summary = ", ".join(f"net {n:.0%} / NumPy control {c:.0%}" for n, c in fractions)
    if min(c for _, c in fractions) >= 0.7:
        pytest.skip(f"machine busy, the main thread is starved even beside GIL-free work: {summary}")
    raise AssertionError(f"main thread stalled while the kernels ran: {summary}")
