"""How much of the wall time does one learner (or one env-only stepping thread) hold the GIL?

    python bench/gil_share.py [--mode train|ceiling] [--seconds 10] [--warmup 5] [--top 15]

Every learner thread holds the GIL for its Python glue (envpool's Python wrapper, the
net's layer loop, the learner's bookkeeping) and releases it inside the Numba kernels and
inside envpool's C++ step. If one thread holds it a share ``g`` of the time, N threads
need ``N x g`` of one GIL: past ``1 / g`` threads they queue for it and scaling flattens
however many cores there are. This measures ``g`` for one pinned thread (Pong-v5, the
TrainConfig defaults) with the sampling profiler py-spy (``pip install py-spy``; not a
dependency of fastasync), sampling this very process without stopping it:

1. ``py-spy record --idle --threads``: every sampling instant, each thread (the count of
   instants, idle or not);
2. ``py-spy record --gil --threads``: only the instants at which the thread held the GIL.

g = (2) / (1) for the working thread; with the frames counted in the same windows it is
also given in ms of GIL per agent step, and the functions holding it most are listed.
bench/RESULTS-history.md (2026-11-27 10:50) has the figures and what they imply at 16 threads.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from fastasync import bench as B  # noqa: E402
from fastasync.perf import load_blas  # noqa: E402

RATE = 500  # samples per second


def pyspy(pid, seconds, out, gil):
    cmd = ["py-spy", "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", str(RATE),
           "--format", "raw", "--threads", "--nonblocking", "-o", out]
    cmd.append("--gil" if gil else "--idle")
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def read_raw(path, thread_name):
    """(samples of the thread named ``thread_name``, Counter of its innermost-but-glue frames)."""
    n, funcs = 0, collections.Counter()
    with open(path) as f:
        for line in f:
            stack, _, count = line.rstrip().rpartition(" ")
            frames = stack.split(";")
            if thread_name not in frames[0]:
                continue
            n += int(count)
            seen = set()
            for fr in frames[1:]:
                name = fr.split(" (")[0]
                where = fr.split(" (")[1].split(":")[0] if " (" in fr else ""
                key = f"{name} ({where})"
                if key not in seen:
                    seen.add(key)
                    funcs[key] += int(count)
    return n, funcs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mode", choices=("train", "ceiling"), default="train")
    ap.add_argument("--env", default="Pong-v5")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--warmup", type=float, default=5.0)
    ap.add_argument("--top", type=int, default=15)
    args = ap.parse_args()
    if shutil.which("py-spy") is None:
        sys.exit("bench/gil_share.py needs py-spy: pip install py-spy")
    load_blas()
    tmp = tempfile.mkdtemp(prefix="fastasync-gil-")
    cfg = B.bench_config(args.env, "a3c", 1, 8, "auto", os.path.join(tmp, "run"))
    counter = {"steps": 0}
    stop = threading.Event()
    if args.mode == "train":
        tt = B.TrainerThread(B.make_trainer(cfg))
        tt.start()
        tt.wait_running()
        name = "learner-0"
        frames = lambda: tt.trainer.shared.frames  # noqa: E731
        finish = tt.stop
    else:
        import numpy as np

        from fastasync.placement import cpu_plan, pin_current_thread

        cpus = cpu_plan(1, True)
        env = B.make_batches(cfg, cpus)[0]
        acts = np.random.default_rng(0).integers(0, env.info.num_actions, (1024, env.num_envs)).astype(np.int32)

        def loop():
            if cpus is not None:
                pin_current_thread(cpus[0])
            env.reset()
            k = 0
            while not stop.is_set():
                env.step(acts[k & 1023])
                k += 1
                counter["steps"] = k

        th = threading.Thread(target=loop, name="envloop-0", daemon=True)
        th.start()
        name = "envloop-0"
        frames = lambda: counter["steps"] * env.num_envs * env.info.frame_skip  # noqa: E731

        def finish():
            stop.set()
            th.join()
            env.close()

    try:
        time.sleep(args.warmup)
        res = {}
        for gil in (False, True):
            out = os.path.join(tmp, f"{'gil' if gil else 'all'}.txt")
            f0 = frames()
            pyspy(os.getpid(), args.seconds, out, gil)
            res[gil] = (frames() - f0, *read_raw(out, name))
    finally:
        finish()
    (f_all, n_all, _), (f_gil, n_gil, funcs) = res[False], res[True]
    if n_all == 0:
        sys.exit("py-spy saw no samples of the working thread (ptrace not allowed here?)")
    share = n_gil / n_all
    steps_per_s = (f_all + f_gil) / (2 * args.seconds) / 4 / 8  # agent steps (of 8 envs) per second
    print(f"{args.mode}: {args.env}, 1 pinned thread x 8 envs, {args.seconds:.0f}s per py-spy window at {RATE}/s")
    print(f"sampling instants of the thread: {n_all}; holding the GIL: {n_gil}")
    print(f"GIL share g = {share:.3f}  ->  N x g reaches 1 at N = {1 / max(share, 1e-9):.1f} threads")
    print(f"agent steps/s {steps_per_s:.0f}; GIL held per agent step ~ {share / steps_per_s * 1e3:.3f} ms")
    print(f"functions holding the GIL (inclusive share of the GIL samples, top {args.top}):")
    for k, v in funcs.most_common(args.top + 6):
        if k.startswith(("Thread.", "Thread._")):
            continue
        print(f"  {v / max(n_gil, 1):6.1%}  {k}")


if __name__ == "__main__":
    main()
