"""Per-layer times inside the real trainer: `fastasync profile` with every layer's forward and
backward (and the whole net's) clocked.

    python bench/layer_profile.py [--threads 2] [--seconds 10] [other `fastasync profile` options]

`fastasync profile` splits a learner's time into phases (forward, env step, backward, ...);
this splits the forward and backward phases by layer. Kernels timed alone (bench/kernels.py)
run with hot caches; in training each forward follows an env step whose emulator has just
filled the core's caches, and two learners share one L3, so the same kernel can take 1.5x as
long there. The A/B figures of bench/RESULTS-history.md (2026-11-27 13:12) are from this script, run
alternately on two checkouts (PYTHONPATH=<checkout>).

Prints the profile's own report, then per learner thread (numbered in thread-id order, not
by learner index): mean ms per call of each layer's forward (one slot of E envs: acting and
bootstrap slots alike; for the Q methods the target net's forwards too) and backward (one
segment), and a SUMMARY line of the means over the learner threads. Like the profile's
phases, the layer clocks start after the warm-up. The wrappers cost ~1 us per call, included.
The Atari net's forward of a slot and backward of a segment run in training as one kernel call
each (kernels/fused.py); here they run layer by layer (the same kernels in the same order) so
that each layer can be clocked.
"""

from __future__ import annotations

import collections
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from fastasync import nets  # noqa: E402
from fastasync import profile as fprofile  # noqa: E402
from fastasync.cli import main as cli_main  # noqa: E402

MIN_CALLS = 100  # threads that made fewer calls in all (compile helpers) are not reported
_net_forward = nets.Net.forward


def _layered_forward(self, ws, obs, t):
    """``Net.forward`` (and so ``Net.backward``) without the one-call paths, so that every
    layer's forward and backward is clocked."""
    ws.fused_args = ws.fused_backward_args = None
    return _net_forward(self, ws, obs, t)  # threads that made fewer calls in all (compile helpers) are not reported


def clock_methods(classes, names, seconds, calls):
    """Wrap each class's methods so that every call adds its wall time under
    (thread id, layer name, method)."""
    for cls in classes:
        for meth in names:
            orig = getattr(cls, meth)

            def timed(self, *args, _orig=orig, _meth=meth, **kwargs):
                t = time.perf_counter()
                out = _orig(self, *args, **kwargs)
                key = (threading.get_ident(), getattr(self, "name", "net"), _meth)
                seconds[key] += time.perf_counter() - t
                calls[key] += 1
                return out

            setattr(cls, meth, timed)


class _WindowClock:
    """``time`` for fastasync.profile: its second sleep is the profiled window (the first is the
    warm-up, after which it resets the phase clocks); the layer clocks restart there too."""

    def __init__(self, *counters):
        self.counters, self.sleeps = counters, 0

    def sleep(self, s):
        self.sleeps += 1
        if self.sleeps == 2:
            for c in self.counters:
                c.clear()
        time.sleep(s)

    def __getattr__(self, name):
        return getattr(time, name)


def report(seconds, calls):
    total = collections.Counter()
    for key, n in calls.items():
        total[key[0]] += n
    per_thread = collections.defaultdict(dict)
    for key, n in calls.items():
        if total[key[0]] >= MIN_CALLS:
            per_thread[key[0]][key[1:]] = (n, seconds[key] / n * 1e3)
    summary = collections.defaultdict(list)
    for i, (_, rows) in enumerate(sorted(per_thread.items())):
        print(f"\nlearner thread {i}: mean ms per call")
        for (layer, meth), (n, ms) in sorted(rows.items()):
            print(f"  {layer:8s} {meth:9s} {ms:8.3f}  ({n} calls)")
            summary[(layer, meth)].append(ms)
    line = " ".join(f"{layer}.{meth[0]}={sum(v) / len(v):.3f}" for (layer, meth), v in sorted(summary.items()))
    print(f"\nSUMMARY {line}")


def main(argv):
    seconds, calls = collections.defaultdict(float), collections.defaultdict(int)
    # the Atari net's forward and backward are one kernel call each in training
    # (kernels/fused.py); to clock its layers this script runs them layer by layer
    nets.Net.forward = _layered_forward
    clock_methods((nets.Conv, nets.Dense, nets.LSTM, nets.Net), ("forward", "backward"), seconds, calls)
    fprofile.time = _WindowClock(seconds, calls)
    args = ["profile", "--threads", "2", "--seconds", "10", *argv]
    try:
        cli_main(args, standalone_mode=False)
    finally:
        report(seconds, calls)


if __name__ == "__main__":
    main(sys.argv[1:])
