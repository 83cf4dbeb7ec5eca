"""``fastasync bench``: training throughput against the emulator's own ceiling.

For each thread count N, in one process and one after the other:

1. **ceiling**: N Python threads, each stepping its own env batch (made by
   :func:`fastasync.envs.make_env` with the trainer's layout: E envs, the TrainConfig env
   defaults, envpool's default worker threads per batch, pinned to CPUs as the trainer pins
   them) with precomputed random actions and nothing else. frames/s = agent steps x E x frame skip, summed over threads
   (MuJoCo and classic control: frame skip 1, so frames are env steps).
2. **train**: the real :class:`~fastasync.trainer.Trainer` with N learner threads (huge
   frame budget, temporary run dir, no progress or periodic checkpoints), run in a
   background thread; after kernel compilation, the first segment and ``warmup`` more
   seconds, ``shared.frames`` is sampled at the start and end of a ``seconds`` window.

Both figures are in emulator frames per second (agent steps x frame skip), as the paper
counts frames. The warm-up (compilation included) is excluded from both and stated.
"""

from __future__ import annotations

import dataclasses
import tempfile
import threading
import time

from . import config as C

HUGE_FRAMES = 10**15
HUGE_SECONDS = 1e9


def parse_threads(text: str, option: str = "--threads") -> list[int]:
    """'1,2,4' -> [1, 2, 4]; raises ConfigError for anything but positive integers."""
    parts = [p.strip() for p in str(text).split(",")]
    out = []
    for p in parts:
        if not p.isdigit() or int(p) < 1:
            raise C.ConfigError(f"{option} must be a comma-separated list of integers >= 1, got {text!r}")
        out.append(int(p))
    if len(set(out)) != len(out):  # each count is one row of the table (and one set of windows)
        raise C.ConfigError(f"{option} lists a count twice: {text!r}")
    return out


def bench_config(env, algo, threads, envs_per_thread, backend, run_dir, pin_threads=True) -> C.TrainConfig:
    """The resolved TrainConfig the benchmark trains with: defaults plus the given layout.
    ``algo`` or ``envs_per_thread`` None: the env family's (as ``train`` would use)."""
    given = dict(algo=algo, envs_per_thread=envs_per_thread)
    cfg = C.build(
        dict(
            env=env,
            threads=threads,
            backend=backend,
            frames=HUGE_FRAMES,
            run_dir=run_dir,
            pin_threads=pin_threads,
            **{k: v for k, v in given.items() if v is not None},
        )
    )
    cfg = dataclasses.replace(
        cfg, run=dataclasses.replace(cfg.run, checkpoint_every_s=HUGE_SECONDS, progress_every_s=HUGE_SECONDS)
    )
    cfg = C.resolve(cfg)
    from .algorithms import check_discrete
    from .envs import view_options, env_info

    # an unknown env, or one the algorithm cannot act in (continuous actions), fails here,
    # before any env batch or trainer is built
    check_discrete(env_info(cfg.env.env, cfg.env.backend, **view_options(cfg.env)), cfg.algo.algo, cfg.algo)
    return cfg


def make_batches(cfg: C.TrainConfig, cpus):
    """One env batch per thread, exactly as a fresh Trainer makes them."""
    from .trainer import learner_env

    return [learner_env(cfg, i, cpus) for i in range(cfg.run.threads)]


def ceiling_fps(cfg: C.TrainConfig, seconds: float, warmup: float, refused: list | None = None,
                cpu_offset: int = 0) -> float:
    """Env-only frames/s of ``cfg.run.threads`` threads stepping random actions.

    ``refused``: the indices of stepping threads whose pinning the OS refused are appended.
    ``cpu_offset``: as the trainer's (a Ray node that shares its machine)."""
    import numpy as np

    from .placement import cpu_plan, pin_current_thread

    cpus = cpu_plan(cfg.run.threads, cfg.run.pin_threads, cpu_offset)  # the trainer's placement
    envs = make_batches(cfg, cpus)
    info = envs[0].info
    E = cfg.env.envs_per_thread
    K = 1024
    rng = np.random.default_rng(cfg.run.seed)
    if info.discrete:
        actions = [
            np.ascontiguousarray(rng.integers(0, max(info.num_actions, 1), size=(K, E)).astype(np.int32))
            for _ in envs
        ]
    else:  # continuous: uniform within the Box bounds, float32 as the learners send them
        low, high = np.array(info.action_low, np.float32), np.array(info.action_high, np.float32)
        actions = [np.ascontiguousarray(rng.uniform(low, high, size=(K, E, info.action_dim)).astype(np.float32))
                   for _ in envs]
    steps = [0] * len(envs)
    errors = []
    stop = threading.Event()

    def loop(i):
        env, acts = envs[i], actions[i]
        if cpus is not None and not pin_current_thread(cpus[i]) and refused is not None:
            refused.append(i)
        try:
            env.reset()
            k = 0
            while not stop.is_set():
                env.step(acts[k])
                k = (k + 1) & (K - 1)
                steps[i] += 1  # one writer per slot; read by the main thread
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
            stop.set()

    threads = [threading.Thread(target=loop, args=(i,), daemon=True) for i in range(len(envs))]
    for th in threads:
        th.start()
    try:
        stop.wait(warmup)
        s0, t0 = sum(steps), time.monotonic()
        stop.wait(seconds)
        s1, t1 = sum(steps), time.monotonic()
    finally:
        stop.set()
        for th in threads:
            th.join()
        for env in envs:
            env.close()
    if errors:
        raise errors[0]
    return (s1 - s0) * E * info.frame_skip / (t1 - t0)


class TrainerThread:
    """``trainer.run()`` in a background thread, with its exception kept for the caller."""

    def __init__(self, trainer):
        self.trainer = trainer
        self.error = None
        self.thread = threading.Thread(target=self._main, name="bench-trainer", daemon=True)

    def _main(self):
        try:
            self.trainer.run()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread
            self.error = exc

    def start(self):
        self.thread.start()

    def wait_running(self, timeout=600.0):
        """Block until the learners have finished one segment (kernels compiled, threads up)."""
        s = self.trainer.shared
        end = time.monotonic() + timeout
        while s.frames == 0:
            if not self.thread.is_alive():
                self.stop()  # re-raises the trainer's error, if it had one
                raise RuntimeError("the trainer stopped before its first segment")
            if time.monotonic() > end:
                self.stop()
                raise RuntimeError(f"the trainer did not start within {timeout:.0f}s")
            time.sleep(0.05)

    def stop(self):
        self.trainer.shared.stop.set()
        self.thread.join()
        if self.error is not None:
            raise self.error


def make_trainer(cfg: C.TrainConfig):
    from .trainer import Trainer

    return Trainer(cfg, out=lambda msg: None)


def train_fps(cfg: C.TrainConfig, seconds: float, warmup: float) -> dict:
    """Training frames/s of the real trainer over ``seconds`` after compile + ``warmup``."""
    from .perf import rss_mb

    tt = TrainerThread(make_trainer(cfg))
    tt.start()
    try:
        tt.wait_running()
        time.sleep(warmup)
        s = tt.trainer.shared
        f0, t0, rss0 = s.frames, time.monotonic(), rss_mb()
        time.sleep(seconds)
        f1, t1, rss1 = s.frames, time.monotonic(), rss_mb()
    finally:
        tt.stop()
    return dict(train_fps=(f1 - f0) / (t1 - t0), rss_start_mb=rss0, rss_end_mb=rss1,
                pin_refused=list(tt.trainer.pin_refused))


def run_bench(env, algo, threads_list, envs_per_thread, seconds, warmup, backend, progress=None, pin_threads=True,
              repeat=1):
    """Rows (dicts) of the benchmark, one per thread count, and the resolved base config.

    With ``repeat`` > 1 the thread counts take turns, round by round (1, 16, 1, 16, ...; each
    a ceiling then a train window, a fresh trainer each time), and the medians are reported:
    on a shared machine (or a VM whose one-core speed drifts by +-20% from one window to the
    next, bench/RESULTS-history.md, 2026-11-27 21:14) a single pair of windows can land in a slow and a fast
    moment, and the efficiency divides figures measured at different times. ``ratio`` is
    always ``train_fps / ceiling_fps``; ``ratios`` lists each round's.
    """
    import statistics

    from .placement import cpu_plan, describe

    progress = progress or (lambda msg: None)
    ceils, trains, refused = ({n: [] for n in threads_list} for _ in range(3))
    first_cfg = {}  # each count's first round's config: what its row reports
    with tempfile.TemporaryDirectory(prefix="fastasync-bench-") as tmp:
        for k in range(repeat):  # round by round: every thread count's windows spread over the same time
            for n in threads_list:
                cfg = bench_config(env, algo, n, envs_per_thread, backend, f"{tmp}/t{n}-{k}", pin_threads)
                first_cfg.setdefault(n, cfg)
                rep = f" (round {k + 1}/{repeat})" if repeat > 1 else ""
                progress(f"{n} thread(s): env-only ceiling ({warmup:g}s warm-up + {seconds:g}s){rep} ...")
                ceils[n].append(ceiling_fps(cfg, seconds, warmup, refused[n]))
                progress(f"{n} thread(s): training (compile + first segment + {warmup:g}s warm-up + {seconds:g}s){rep} ...")
                trains[n].append(train_fps(cfg, seconds, warmup))
                progress(f"{n} thread(s): ceiling {ceils[n][-1]:,.0f}, train {trains[n][-1]['train_fps']:,.0f} frames/s")
    rows = []
    for n in threads_list:
        cfg, cs, ts = first_cfg[n], ceils[n], trains[n]
        ceil = statistics.median(cs)
        train = statistics.median(t["train_fps"] for t in ts)
        cpus = cpu_plan(n, cfg.run.pin_threads)
        rows.append(
            dict(
                env=cfg.env.env,
                algo=cfg.algo.algo,
                threads=n,
                envs_per_thread=cfg.env.envs_per_thread,
                ceiling_fps=ceil,
                train_fps=train,
                ratio=train / ceil if ceil > 0 else float("nan"),
                train_fps_per_thread=train / n,
                # one trainer's window (later rounds' trainers start after other counts' have run)
                rss_start_mb=ts[0]["rss_start_mb"],
                rss_end_mb=ts[0]["rss_end_mb"],
                seconds=seconds,
                warmup_s=warmup,
                backend=cfg.env.backend,
                repeat=repeat,
                ceiling_fps_each=cs,
                train_fps_each=[t["train_fps"] for t in ts],
                ratios=[t["train_fps"] / c if c > 0 else float("nan") for t, c in zip(ts, cs)],
                pinned_cpus=cpus,
                placement=describe(cpus, refused[n] + [i for t in ts for i in t["pin_refused"]]),
            )
        )
    one = next((r for r in rows if r["threads"] == 1), None)
    for r in rows:
        r["efficiency"] = r["train_fps"] / (r["threads"] * one["train_fps"]) if one and one["train_fps"] > 0 else None
    return rows, first_cfg[threads_list[0]]


def format_table(rows) -> str:
    nodes = any("nodes" in r for r in rows)  # fastasync bench --ray: one row per node count
    head = (
        ("  nodes " if nodes else "")
        + f"{'threads':>7} {'ceiling fps':>12} {'train fps':>10} {'ratio':>6} {'fps/thread':>10} "
        f"{'efficiency':>10} {'RSS start':>9} {'RSS end':>8}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        eff = "n/a" if r["efficiency"] is None else f"{r['efficiency']:.2f}"
        lines.append(
            (f"{r['nodes']:>7} " if nodes else "")
            + f"{r['threads']:>7} {r['ceiling_fps']:>12,.0f} {r['train_fps']:>10,.0f} {r['ratio']:>6.2f} "
            f"{r['train_fps_per_thread']:>10,.0f} {eff:>10} {r['rss_start_mb']:>7.0f}MB {r['rss_end_mb']:>6.0f}MB"
        )
    return "\n".join(lines)
