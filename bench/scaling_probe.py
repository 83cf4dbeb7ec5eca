"""Why does N-thread throughput fall short of N x one thread? Threads against processes.

    python bench/scaling_probe.py [--threads 1,16] [--seconds 6] [--warmup 3] [--modes ...]

`fastasync bench` measures the env-only ceiling and training with N *threads* of one
process. What it cannot tell apart is why N threads fall short of N x one thread: the
hardware (an all-core clock below the one-core clock, vCPUs that are hyperthread pairs,
shared L3 and memory bandwidth), or the process (the GIL each thread's Python glue holds,
contention on the shared parameters). N single-threaded *processes*, each pinned to its own
CPU as the trainer pins its threads, share the hardware but no GIL and no parameters; what
threads lose beyond them is the process's.

Modes (each measured at every thread count; frames/s in emulator frames summed over all):

- ``ceiling-threads``: env-only stepping with random actions, N threads (as `fastasync bench`);
- ``ceiling-procs``: the same, one env batch in each of N processes;
- ``train-threads``: the real trainer, N learner threads (as `fastasync bench`);
- ``train-procs``: N independent one-thread trainers, one per process (no shared parameters);
- ``replay-threads`` / ``replay-procs``: as the train modes, but every learner's env batch is
  replaced by a replay of 32 steps recorded from its real batch: the learner's compute and
  glue without the emulator, so what is left is how the learning part alone scales.

Each process is pinned to CPU i (with its envpool worker) before it builds anything; all N
start their measured window together (a barrier after compilation and set-up, then the
warm-up; the env-only processes build their env batch after the barrier, inside the warm-up,
with `fastasync bench`'s own ceiling loop). Prints one row per (mode, N) with efficiency = fps(N) / (N x fps(1)) of that mode;
the train and replay rows also give each phase's ms per agent step (the learners' own clocks,
as in `fastasync profile`; mean over learners), so that threads and processes can be compared
phase by phase. The last line is the rows as JSON.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import tempfile
import threading
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from fastasync import bench as B  # noqa: E402
from fastasync import trainer as T  # noqa: E402
from fastasync.learner import PHASES  # noqa: E402
from fastasync.placement import cpu_plan  # noqa: E402

MODES = ("ceiling-threads", "ceiling-procs", "train-threads", "train-procs", "replay-threads", "replay-procs")
REPLAY_STEPS = 32
PHASE_COLS = ("forward", "env_step", "backward", "apply", "snapshot")


class ReplayEnv:
    """An env batch that replays steps recorded from a real one: no emulation at all."""

    def __init__(self, real, steps=REPLAY_STEPS, seed=0):
        self.info, self.num_envs = real.info, real.num_envs
        rng = np.random.default_rng(seed)
        self._reset_obs = real.reset().copy()
        self._steps = []
        for _ in range(steps):
            a = rng.integers(0, max(self.info.num_actions, 1), size=self.num_envs).astype(np.int32)
            s = real.step(a)
            self._steps.append(type(s)(**{k: v.copy() for k, v in vars(s).items()}))
        real.close()
        self._k = 0

    def reset(self):
        return self._reset_obs

    def step(self, actions):
        s = self._steps[self._k]
        self._k = (self._k + 1) % len(self._steps)
        return s

    def close(self):
        pass


_real_learner_env = T.learner_env


def replay_learner_env(cfg, i, cpus, frames=0):
    return ReplayEnv(_real_learner_env(cfg, i, cpus, frames), seed=i)


def use_replay(on: bool):
    T.learner_env = replay_learner_env if on else _real_learner_env


def config(args, n, run_dir):
    return B.bench_config(args.env, "a3c", n, args.envs_per_thread, "envpool", run_dir, pin_threads=True)


# -- N threads in this process -------------------------------------------------------------

def in_threads(kind, args, n):
    with tempfile.TemporaryDirectory(prefix="fastasync-probe-") as tmp:
        cfg = config(args, n, tmp)
        if kind == "ceiling":
            return B.ceiling_fps(cfg, args.seconds, args.warmup), None
        use_replay(kind == "replay")
        try:
            fps, timings = trainer_window(cfg, args)
        finally:
            use_replay(False)
        return fps, phases_ms(timings, cfg.algo.t_max)


def trainer_window(cfg, args, barrier=None):
    """(frames/s, each learner's phase clocks) of a Trainer over the window (after compile,
    the barrier if any, and the warm-up); the clocks are `fastasync profile`'s."""
    tt = B.TrainerThread(B.make_trainer(cfg))
    tt.start()
    try:
        tt.wait_running()
        if barrier is not None:
            barrier.wait()
        learners = tt.trainer.learners
        for lr in learners:
            lr.enable_timing()
        time.sleep(args.warmup)
        for lr in learners:
            lr.timings = dict.fromkeys(PHASES, 0.0)
        s = tt.trainer.shared
        f0, t0 = s.frames, time.monotonic()
        time.sleep(args.seconds)
        f1, t1 = s.frames, time.monotonic()
    finally:
        tt.stop()  # learners finish their segment: the clocks hold whole segments only
    return (f1 - f0) / (t1 - t0), [dict(lr.timings) for lr in learners]


def phases_ms(timings, T):
    """ms per agent step of each PHASE_COLS phase (and the rest), mean over learners."""
    out = dict.fromkeys((*PHASE_COLS, "rest"), 0.0)
    for tm in timings:
        steps = max(tm["segments"] * T, 1)
        for p in PHASE_COLS:
            out[p] += tm[p] / steps * 1e3 / len(timings)
        out["rest"] += (tm["total"] - sum(tm[p] for p in PHASE_COLS)) / steps * 1e3 / len(timings)
    return out


# -- N processes, one thread each ------------------------------------------------------------

def _child(kind, args, i, cpus, barrier, results):
    try:
        os.sched_setaffinity(0, {cpus[i]})  # the trainer and the ceiling pin to this one CPU
        with tempfile.TemporaryDirectory(prefix="fastasync-probe-") as tmp:
            cfg = config(args, 1, tmp)
            # learner i's seeds (its env seeds too), not learner 0's in every process
            cfg = B.dataclasses.replace(cfg, run=B.dataclasses.replace(cfg.run, seed=cfg.run.seed + i))
            results.put((i, _child_run(kind, args, cfg, barrier)))
    except BaseException as exc:  # noqa: BLE001 - reported by the parent
        barrier.abort()
        results.put((i, f"{type(exc).__name__}: {exc}"))


def _child_run(kind, args, cfg, barrier):
    if kind == "ceiling":
        barrier.wait()
        return B.ceiling_fps(cfg, args.seconds, args.warmup), None
    use_replay(kind == "replay")
    fps, timings = trainer_window(cfg, args, barrier)
    return fps, phases_ms(timings, cfg.algo.t_max)


def in_procs(kind, args, n):
    cpus = cpu_plan(n, True)
    if cpus is None:
        raise SystemExit(f"{n} processes need {n} CPUs this process may use and pinning")
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=_child, args=(kind, args, i, cpus, barrier, results), daemon=True) for i in range(n)]
    for p in procs:
        p.start()
    out = dict(results.get(timeout=900) for _ in procs)
    for p in procs:
        p.join()
    bad = [v for v in out.values() if isinstance(v, str)]
    if bad:
        raise RuntimeError(f"a probe process failed: {bad[0]}")
    fps = sum(v[0] for v in out.values())
    if kind == "ceiling":
        return fps, None
    each = [v[1] for v in out.values()]
    return fps, {p: sum(ph[p] for ph in each) / len(each) for p in each[0]}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--env", default="Pong-v5")
    ap.add_argument("--threads", default="1,16")
    ap.add_argument("--envs-per-thread", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--repeat", type=int, default=1, help="measurements per (mode, N); the median one (the upper of two) is reported")
    args = ap.parse_args(argv)
    ns = B.parse_threads(args.threads)
    modes = [m.strip() for m in args.modes.split(",")]
    for m in modes:
        if m not in MODES:
            raise SystemExit(f"unknown mode {m!r}; modes: {', '.join(MODES)}")
    print(f"# scaling probe: {args.env}, {args.envs_per_thread} envs per thread/process, "
          f"{args.warmup:g}s warm-up + {args.seconds:g}s window, CPUs {os.cpu_count()}", flush=True)
    print(f"{'mode':>15} {'N':>3} {'fps':>9} {'fps/unit':>9} {'efficiency':>10}   ms per agent step (mean over "
          f"learners): {' '.join(f'{p[:8]:>8}' for p in (*PHASE_COLS, 'rest'))}", flush=True)
    one = {}
    rows = []
    for m in modes:
        kind, how = m.split("-")
        for n in ns:
            runs = [(in_threads if how == "threads" else in_procs)(kind, args, n) for _ in range(args.repeat)]
            fps, phases = sorted(runs, key=lambda r: r[0])[len(runs) // 2]  # the median run's
            if n == 1:
                one[m] = fps
            eff = fps / (n * one[m]) if m in one else float("nan")
            rows.append(dict(mode=m, n=n, fps=fps, fps_each=[r[0] for r in runs], efficiency=eff, phases_ms=phases))
            cols = "" if phases is None else "   " + " ".join(f"{phases[p]:>8.3f}" for p in (*PHASE_COLS, "rest"))
            print(f"{m:>15} {n:>3} {fps:>9,.0f} {fps / n:>9,.0f} {eff:>10.2f}{cols}", flush=True)
    print("JSON " + json.dumps(rows), flush=True)


if __name__ == "__main__":
    threading.current_thread().name = "probe-main"
    main()
