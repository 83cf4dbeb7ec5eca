"""Pong training frames/s: N nodes x 1 thread on Ray against 1 node x N threads, interleaved.

The question: what does the parameter exchange between nodes cost? Both layouts use the
same CPUs of one machine; rounds alternate (1 node x N threads on Ray, N nodes x 1 thread on
Ray, and the one-machine trainer with N threads, no Ray), so that a shared machine's drift
hits every layout alike; medians are reported. Each window: a fresh run (huge budget,
temporary directory), kernels compiled and every node synced twice, ``--warmup`` seconds,
then ``--seconds`` measured at the parameter actor (one-machine: the shared counter).

    python bench/ray_nodes.py --env Pong-v5 --nodes 2 --rounds 3 --seconds 20 --warmup 5
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import tempfile
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--env", default="Pong-v5")
    ap.add_argument("--algo", default="a3c")
    ap.add_argument("--nodes", type=int, default=2, help="N: N nodes x 1 thread against 1 node x N threads")
    ap.add_argument("--envs-per-thread", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--warmup", type=float, default=5.0)
    ap.add_argument("--ray", default="local", help="ADDRESS as for fastasync train --ray")
    ap.add_argument("--no-one-machine", action="store_true", help="leave out the one-machine trainer")
    a = ap.parse_args()

    from threadpoolctl import threadpool_limits

    from fastasync.bench import bench_config, train_fps
    from fastasync.distributed.bench import ray_train_fps
    from fastasync.distributed.driver import connect
    from fastasync.perf import load_blas, cpu_model

    load_blas()
    connect(a.ray)
    N = a.nodes
    layouts = [("ray 1 node x %d threads" % N, 1, N), ("ray %d nodes x 1 thread" % N, N, 1)]
    if not a.no_one_machine:
        layouts.append(("one machine, %d threads (no Ray)" % N, None, N))
    got = {name: [] for name, _, _ in layouts}
    with tempfile.TemporaryDirectory(prefix="fastasync-ray-nodes-") as tmp, threadpool_limits(1):
        for k in range(a.rounds):
            for name, nodes, threads in layouts:
                cfg = bench_config(a.env, a.algo, threads, a.envs_per_thread, "auto", f"{tmp}/{k}-{len(got[name])}-{nodes}")
                if nodes is None:
                    fps = train_fps(cfg, a.seconds, a.warmup)["train_fps"]
                else:
                    cfg = dataclasses.replace(cfg, run=dataclasses.replace(cfg.run, nodes=nodes))
                    fps = ray_train_fps(cfg, a.seconds, a.warmup)["train_fps"]
                got[name].append(fps)
                print(f"round {k + 1}/{a.rounds} {name}: {fps:,.0f} frames/s", flush=True)
    base = statistics.median(got[layouts[0][0]])
    print(f"\n{a.algo} on {a.env}, {a.envs_per_thread} envs per thread, {time.strftime('%Y-%m-%d %H:%M')}; "
          f"{cpu_model()}; {a.rounds} interleaved rounds of {a.warmup:g}s warm-up + {a.seconds:g}s")
    for name, _, _ in layouts:
        med = statistics.median(got[name])
        print(f"{name:>34}: median {med:8,.0f} frames/s ({med / base:.2f} of 1 node x {N} threads); rounds "
              + ", ".join(f"{x:,.0f}" for x in got[name]))
    print(json.dumps(got))


if __name__ == "__main__":
    main()
