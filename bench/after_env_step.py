"""How much slower is the net's forward right after an env step than back to back?

    python bench/after_env_step.py [--cpu 1] [--rounds 3] [--n 200]

One learner's pattern without the trainer: the Atari net's 8-env forward, (a) repeated back
to back, (b) each right after an envpool step of the same 8 Pong envs whose worker thread
is pinned to the same CPU as this thread (as the trainer pins them), (c) each after a 5 ms
sleep. Prints the median ms of each, per round (rounds interleave a, b, c). In training
every forward follows an env step, so (b) is the forward's real cost; bench/RESULTS-history.md
(2026-11-27 09:26) explains what the gap means for the train/ceiling ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numpy as np  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from fastasync.envs import make_env  # noqa: E402
from fastasync.nets import make_net  # noqa: E402
from fastasync.perf import load_blas  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cpu", type=int, default=None, help="CPU to pin to (default: the last allowed one)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--n", type=int, default=200, help="forwards per measurement")
    args = ap.parse_args()
    load_blas()
    cpu = args.cpu if args.cpu is not None else sorted(os.sched_getaffinity(0))[-1]
    os.sched_setaffinity(0, {cpu})
    net = make_net((4, 84, 84), 6)
    theta = net.init_params(0)
    ws = net.workspace(1, 8, theta, net.layout.zeros())
    env = make_env("Pong-v5", 8, seed=1, backend="envpool", cpu=cpu)
    obs = env.reset()
    actions = np.zeros(8, np.int32)

    def timed_forward(x):
        t0 = time.perf_counter()
        net.forward(ws, x, 0)
        return time.perf_counter() - t0

    def back_to_back():
        return timed_forward(obs)

    def after_env_step():
        return timed_forward(env.step(actions).obs)

    def after_sleep():
        time.sleep(0.005)
        return timed_forward(obs)

    with threadpool_limits(1):
        net.forward(ws, obs, 0)  # compile / load the kernels
        print(f"8-env forward of the Atari net, CPU {cpu}, median ms of {args.n}:")
        for r in range(args.rounds):
            res = {name: statistics.median(fn() for _ in range(args.n)) * 1e3
                   for name, fn in (("back to back", back_to_back), ("after env step", after_env_step),
                                    ("after 5 ms sleep", after_sleep))}
            print(f"round {r + 1}: " + ", ".join(f"{k} {v:.3f}" for k, v in res.items()))
    env.close()


if __name__ == "__main__":
    main()
