"""Which CPU each learner thread (and its env batch's worker thread) runs on.

A learner and its envpool worker take turns: the learner blocks in ``env.step`` while the
worker steps the batch, then the worker sleeps while the learner computes. Unpinned, the
two wake up on whichever core the scheduler picks, so each step moves the frames (and the
learner's activations and weights) between cores' private caches, and wakes an idle core.
Pinned as a pair to one core, the worker writes the frames into the cache the learner reads
them from, and no core idles while the other runs two threads. Measured on the 2-core
development machine, 2 threads: +15% training frames/s (bench/RESULTS-history.md, 2026-11-27
09:26, e6a8a5d); the env-only ceiling is unchanged.

Pinning applies only where it cannot hurt: Linux (``os.sched_setaffinity``), and no more
learners than the CPUs this process may use (with more, the scheduler balances them).
"""

from __future__ import annotations

import os


def allowed_cpus() -> list[int]:
    """The CPUs this process may run on, in order (all of them where the OS cannot say)."""
    if hasattr(os, "sched_getaffinity"):
        try:
            return sorted(os.sched_getaffinity(0))
        except OSError:
            pass
    return list(range(os.cpu_count() or 1))


def cpu_quota(root: str = "/sys/fs/cgroup", proc_cgroup: str = "/proc/self/cgroup") -> float | None:
    """CPUs' worth of time the cgroup quota grants this process (docker ``--cpus``), or None.

    cgroup v2: ``cpu.max`` = ``"<quota> <period>"`` or ``"max <period>"``; cgroup v1:
    ``cpu/cpu.cfs_quota_us`` (-1: none) over ``cpu.cfs_period_us``. Read in the process's own
    cgroup and in the hierarchy's root (what a container sees); the smallest quota wins.
    """
    v2, v1 = [], []
    try:
        with open(proc_cgroup) as fh:
            for line in fh:
                parts = line.strip().split(":", 2)
                if len(parts) != 3:
                    continue
                path = parts[2].lstrip("/")
                if parts[0] == "0" and parts[1] == "":
                    v2.append(os.path.join(root, path))
                elif "cpu" in parts[1].split(","):
                    v1.append(os.path.join(root, "cpu", path))
    except OSError:
        pass
    quotas = []
    for d in dict.fromkeys([*v2, root]):
        q = _read_quota(os.path.join(d, "cpu.max"), None)
        if q is not None:
            quotas.append(q)
    for d in dict.fromkeys([*v1, os.path.join(root, "cpu")]):
        q = _read_quota(os.path.join(d, "cpu.cfs_quota_us"), os.path.join(d, "cpu.cfs_period_us"))
        if q is not None:
            quotas.append(q)
    return min(quotas) if quotas else None


def _read_quota(quota_file: str, period_file: str | None) -> float | None:
    try:
        with open(quota_file) as fh:
            fields = fh.read().split()
        if period_file is not None:
            with open(period_file) as fh:
                fields = fields[:1] + fh.read().split()[:1]
        quota, period = fields[0], fields[1]
        if quota in ("max", "-1"):
            return None
        q, p = float(quota), float(period)
    except (OSError, IndexError, ValueError):
        return None
    return q / p if q > 0 and p > 0 else None


def default_threads() -> int:
    """Learner threads when --threads is not given: the CPUs this process may use
    (affinity), but no more than a CPU quota lets run flat out (floor, at least 1)."""
    n = len(allowed_cpus())
    quota = cpu_quota()
    if quota is not None:
        n = min(n, max(1, int(quota)))
    return n


def cpu_plan(threads: int, pin: bool, offset: int = 0) -> list[int] | None:
    """The CPU of learner i (``plan[i]``), or None when threads are not pinned. ``offset``:
    the first allowed CPU to use (learners of several processes on one machine)."""
    if not pin or not hasattr(os, "sched_setaffinity"):
        return None
    cpus = allowed_cpus()
    if offset + threads > len(cpus):
        return None
    return cpus[offset : offset + threads]


def pin_current_thread(cpu: int | None) -> bool:
    """Pin the calling thread to ``cpu`` (None: leave it). False if the OS refused."""
    if cpu is None:
        return False
    try:
        os.sched_setaffinity(0, {cpu})  # pid 0 = the calling thread on Linux
    except OSError:
        return False
    return True


def describe(plan: list[int] | None, refused=()) -> str:
    """One line for reports: where the learners run. ``refused``: the learners (or
    stepping threads) whose pinning the OS refused; they ran unpinned, and the line says so."""
    if plan is None:
        return "not pinned (the OS schedules learner and env worker threads)"
    line = "learner i (with its envpool worker) pinned to CPU " + ", ".join(f"{i}->{c}" for i, c in enumerate(plan))
    if refused:
        line += f"; the OS REFUSED it for thread(s) {', '.join(map(str, sorted(set(refused))))}, which ran unpinned"
    return line
