"""``fastasync bench --ray --nodes 1,2``: the benchmark's table per node count.

For each node count N (``--threads`` learner threads per node):

1. **ceiling**: N Ray actors (placed as the run's node actors: SPREAD, ``--threads`` CPUs
   each, pinned as the trainer pins them, machines shared by several nodes on other CPUs)
   step their env batches with random actions at the same time; the sum of their frames/s;
2. **train**: a real :class:`~fastasync.distributed.driver.RayTrainer` (huge budget,
   temporary run directory) in a background thread; once every node has synced twice
   (kernels compiled, learners running) and ``warmup`` more seconds, the parameter actor's
   global frame count is sampled at the start and end of a ``seconds`` window.

Frames reach the parameter actor with the nodes' syncs, so each sample is up to one sync
interval late, at both ends of the window alike.
"""

from __future__ import annotations

import dataclasses
import statistics
import tempfile
import threading
import time

from .. import config as C


class _Ceiling:
    """One node's env-only ceiling, as a Ray actor."""

    def host(self):
        import ray

        return ray.util.get_node_ip_address()

    def measure(self, cfg_dict, seconds, warmup, cpu_offset):
        from threadpoolctl import threadpool_limits

        from ..bench import ceiling_fps
        from ..perf import load_blas

        load_blas()
        with threadpool_limits(1):
            return ceiling_fps(C.TrainConfig.from_dict(cfg_dict), seconds, warmup, cpu_offset=cpu_offset)


def ray_ceiling_fps(cfg, nodes, seconds, warmup) -> float:
    import ray

    cls = ray.remote(_Ceiling).options(num_cpus=cfg.run.threads, scheduling_strategy="SPREAD")
    actors = [cls.remote() for _ in range(nodes)]
    start_s = 120.0  # an actor the cluster cannot place (too few CPUs left) would be waited for forever
    try:
        try:
            hosts = ray.get([a.host.remote() for a in actors], timeout=start_s)
        except ray.exceptions.GetTimeoutError:
            raise ValueError(f"the Ray cluster did not start {nodes} node actors of {cfg.run.threads} CPU(s) within "
                             f"{start_s:g} s: too few free CPUs?") from None
        ranks, seen = [], {}
        for h in hosts:  # nodes on one machine take other CPUs, as the trainer's do
            ranks.append(seen.get(h, 0))
            seen[h] = ranks[-1] + 1
        d = cfg.to_dict()
        return sum(ray.get([a.measure.remote(d, seconds, warmup, r * cfg.run.threads) for a, r in zip(actors, ranks)],
                           timeout=start_s + 3 * (seconds + warmup)))
    finally:
        for a in actors:
            ray.kill(a)


def ray_train_fps(cfg, seconds, warmup, timeout=600.0) -> dict:
    from ..perf import rss_mb
    from .driver import RayTrainer

    tr = RayTrainer(cfg, out=lambda msg: None)
    err = []

    def main():
        try:
            tr.run()
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            err.append(exc)

    th = threading.Thread(target=main, name="bench-ray-trainer", daemon=True)
    th.start()
    try:
        end = time.monotonic() + timeout
        while True:  # every node compiled and syncing
            c = tr.last_collect
            if c is not None and len(c["syncs"]) == cfg.run.nodes and min(c["syncs"].values()) >= 2:
                break
            if not th.is_alive() or time.monotonic() > end:
                raise RuntimeError(f"the Ray run did not start within {timeout:.0f}s") if not err else err[0]
            time.sleep(0.1)
        time.sleep(warmup)
        f0, t0, rss0 = tr.last_collect["frames"], time.monotonic(), rss_mb()
        time.sleep(seconds)
        f1, t1, rss1 = tr.last_collect["frames"], time.monotonic(), rss_mb()
    finally:
        tr.stop()
        th.join(timeout)
    if th.is_alive():
        raise RuntimeError(f"the Ray run did not stop within {timeout:.0f}s of the stop")
    if err:
        raise err[0]
    return dict(train_fps=(f1 - f0) / (t1 - t0), rss_start_mb=rss0, rss_end_mb=rss1, pin_refused=[])


def run_ray_bench(env, algo, nodes_list, threads, envs_per_thread, seconds, warmup, backend, progress=None,
                  pin_threads=True, repeat=1):
    """Rows of the benchmark, one per node count (``threads`` per node), rounds interleaved
    as in :func:`fastasync.bench.run_bench`; and the resolved base config."""
    from ..bench import bench_config

    progress = progress or (lambda msg: None)
    ceils = {n: [] for n in nodes_list}
    trains = {n: [] for n in nodes_list}
    first_cfg = {}  # each count's first round's config: what its row reports
    with tempfile.TemporaryDirectory(prefix="fastasync-bench-ray-") as tmp:
        for k in range(repeat):
            for n in nodes_list:
                cfg = bench_config(env, algo, threads, envs_per_thread, backend, f"{tmp}/n{n}-{k}", pin_threads)
                cfg = dataclasses.replace(cfg, run=dataclasses.replace(cfg.run, nodes=n))
                first_cfg.setdefault(n, cfg)
                rep = f" (round {k + 1}/{repeat})" if repeat > 1 else ""
                progress(f"{n} node(s) x {threads} thread(s): env-only ceiling{rep} ...")
                ceils[n].append(ray_ceiling_fps(cfg, n, seconds, warmup))
                progress(f"{n} node(s) x {threads} thread(s): training{rep} ...")
                trains[n].append(ray_train_fps(cfg, seconds, warmup))
                progress(f"{n} node(s): ceiling {ceils[n][-1]:,.0f}, train {trains[n][-1]['train_fps']:,.0f} frames/s")
    rows = []
    for n in nodes_list:
        cfg, cs, ts = first_cfg[n], ceils[n], trains[n]
        ceil, train = statistics.median(cs), statistics.median(t["train_fps"] for t in ts)
        rows.append(dict(
            env=cfg.env.env, algo=cfg.algo.algo, nodes=n, threads=threads, envs_per_thread=cfg.env.envs_per_thread,
            ceiling_fps=ceil, train_fps=train, ratio=train / ceil if ceil > 0 else float("nan"),
            train_fps_per_thread=train / (n * threads), rss_start_mb=ts[0]["rss_start_mb"],
            rss_end_mb=ts[0]["rss_end_mb"], seconds=seconds, warmup_s=warmup, backend=cfg.env.backend, repeat=repeat,
            ceiling_fps_each=cs, train_fps_each=[t["train_fps"] for t in ts],
            ratios=[t["train_fps"] / c if c > 0 else float("nan") for t, c in zip(ts, cs)],
            placement=f"{n} node actor(s) x {threads} thread(s), SPREAD over the Ray cluster",
        ))
    one = next((r for r in rows if r["nodes"] == 1), None)
    for r in rows:
        r["efficiency"] = r["train_fps"] / (r["nodes"] * one["train_fps"]) if one and one["train_fps"] > 0 else None
    return rows, first_cfg[nodes_list[0]]
