"""Which CPU each learner thread (and its env batch's worker thread) runs on.

A learner and its envpool worker take turns: the learner blocks in ``env.step`` while the
worker steps the batch, then the worker sleeps while the learner computes. Unpinned, the
two wake up on whichever core the scheduler picks, so each step moves the frames (and the
learner's activations and weights) between cores' private caches, and wakes an idle core.
Pinned as a pair to one core, the worker writes the frames into the cache the learner reads
them from, and no core idles while the other runs two threads. Measured on the 2-core
development machine, 2 threads: +15% training frames/s (bench/RESULTS.md, 2026-11-27
session 3); the env-only ceiling is unchanged.

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


def cpu_plan(threads: int, pin: bool) -> list[int] | None:
    """The CPU of learner i (``plan[i]``), or None when threads are not pinned."""
    if not pin or not hasattr(os, "sched_setaffinity"):
        return None
    cpus = allowed_cpus()
    if threads > len(cpus):
        return None
    return cpus[:threads]


def pin_current_thread(cpu: int | None) -> bool:
    """Pin the calling thread to ``cpu`` (None: leave it). False if the OS refused."""
    if cpu is None:
        return False
    try:
        os.sched_setaffinity(0, {cpu})  # pid 0 = the calling thread on Linux
    except OSError:
        return False
    return True


def describe(plan: list[int] | None) -> str:
    """One line for reports: where the learners run."""
    if plan is None:
        return "not pinned (the OS schedules learner and env worker threads)"
    return "learner i (with its envpool worker) pinned to CPU " + ", ".join(
        f"{i}->{c}" for i, c in enumerate(plan)
    )
