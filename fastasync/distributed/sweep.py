"""``fastasync sweep --ray``: the trials of a sweep as Ray tasks, one task per trial.

A task runs its trial as the local sweep does (``fastasync.sweep.plan_trial`` and
``launch_trial``, handed to :class:`RayTrials` by the sweep, which imports this module: a
plain ``fastasync train`` subprocess on the node the task landed on,
with its own ``--run-dir`` inside the sweep directory), so a trial is the same run whether
it ran here or there. Each task asks for ``--threads`` CPUs; Ray runs as many side by side
as the cluster's CPUs allow, and learner threads are not pinned (Ray does not say which CPUs
a task has, and two trials on one node must not pin to the same ones).

A node lost mid-sweep: Ray reruns the task (``TRIAL_RETRIES`` times), and the rerun resumes
the trial from its last checkpoint where it has one (a trial whose task's process died gets
SIGINT from Linux and writes a checkpoint first). This needs the sweep directory on a file
system every node shares (NFS, or one machine, as the local test cluster), at the same
path: the driver reads the trials' results from it and the nodes write them there. Where
the sweep asks for an eval of each final checkpoint, the task runs it after the training.

Ctrl-C (or SIGTERM) in the driver writes ``SWEEP_DIR/.stop``; every running task forwards
SIGINT to its trial (which writes its checkpoint and exits 130), and tasks not yet started
return without running. A file, not an actor's flag: a task that waits on ``ray.get`` (or
``ray.wait``) lends its CPU to the next queued task, and the trials would overrun the
cluster's CPUs. For the same reason a task tells the small control actor that it started
without waiting for an answer.
"""

from __future__ import annotations

import os
import signal
import socket
import time

from . import require_ray

TRIAL_RETRIES = 3  # Ray reruns a trial's task this many times when its worker or node is lost
POLL_S = 1.0  # how often a task looks at the stop flag


class SweepControl:
    """A Ray actor: which trial's task started where (attempts count the reruns of a lost one)."""

    def __init__(self):
        self.attempts = {}  # trial -> [(host, pid), ...]
        self.news = []

    def started(self, name: str, host: str, pid: int) -> None:
        self.attempts.setdefault(name, []).append((host, pid))
        self.news.append((name, host, len(self.attempts[name])))

    def report(self):
        """(every trial started so far, the starts since the last call)."""
        news, self.news = self.news, []
        return sorted(self.attempts), news


def _wait(p, stop_file: str) -> int:
    """The exit code of ``p``, sending it one SIGINT when the sweep stops."""
    sent = False
    while p.poll() is None:
        time.sleep(POLL_S)
        if not sent and os.path.exists(stop_file):
            p.send_signal(signal.SIGINT)
            sent = True
    return p.returncode


def run_trial(job: dict, control, plan_trial, launch_trial, eval_step=None) -> dict:
    """One trial, as a Ray task: resume it if its run directory holds a checkpoint, else start
    it; forward SIGINT when the sweep stops; then evaluate its final checkpoint where the
    sweep asks for that (``eval_step``). Returns code (None: not run, the sweep stopped
    first), wall_s, host, what (fresh, resume or done), and eval_code, eval_s after an eval."""
    host = socket.gethostname()
    control.started.remote(job["name"], host, os.getpid())  # no answer awaited (module docstring)
    if os.path.exists(job["stop_file"]):
        return {"code": None, "wall_s": 0.0, "host": host}
    t0 = time.monotonic()
    what, args = plan_trial(job)
    code = 0 if what == "done" else _wait(launch_trial(job, args + ["--no-pin-threads"]), job["stop_file"])
    res = {"code": code, "wall_s": time.monotonic() - t0 if what != "done" else 0.0, "host": host, "what": what}
    ev = eval_step(job) if eval_step is not None and code == 0 and not os.path.exists(job["stop_file"]) else None
    if ev is not None:
        t1 = time.monotonic()
        res.update(eval_code=_wait(launch_trial(job, ev), job["stop_file"]), eval_s=time.monotonic() - t1)
    return res


class RayTrials:
    """The executor of :func:`fastasync.sweep.run_trials` on Ray: every trial is submitted at
    once as a task of ``threads`` CPUs; Ray queues what does not fit."""

    def __init__(self, address: str | None, threads: int, plan_trial, launch_trial, eval_step=None):
        from ..errors import ConfigError, RayMissing
        from .driver import connect

        try:
            self.ray = ray = require_ray()
        except RayMissing as exc:
            raise ConfigError(str(exc)) from None
        connect(address)  # ValueError with one line when it cannot
        biggest = max((int(n.get("Resources", {}).get("CPU", 0)) for n in ray.nodes() if n.get("Alive")), default=0)
        if threads > biggest:
            ray.shutdown()
            raise ValueError(f"each trial needs --threads {threads} CPUs on one node; the largest node of the Ray "
                             f"cluster has {biggest}: lower --threads")
        self.threads = threads
        self.address = address
        self.fns = (plan_trial, launch_trial, eval_step)
        self.control = ray.remote(num_cpus=0)(SweepControl).remote()
        self.task = ray.remote(run_trial).options(num_cpus=threads, max_retries=TRIAL_RETRIES,
                                                  retry_exceptions=False)
        self.slots = max(1, int(ray.cluster_resources().get("CPU", 1)) // threads)
        self.started_names = set()
        self._news = []
        self._last_report = 0.0
        self._report = None  # the control actor's answer, while it is awaited

    def describe(self) -> str:
        return (f"on Ray ({int(self.ray.cluster_resources().get('CPU', 0))} CPUs, trials of {self.threads} "
                f"thread(s): up to {self.slots} side by side)")

    def room(self, running: int) -> bool:
        return True  # everything is submitted; Ray queues by CPUs

    def start(self, job: dict):
        return {"ref": self.task.remote(job, self.control, *self.fns), "name": job["name"], "stop_file": job["stop_file"]}

    def _refresh(self, wait_s: float = 0.0):
        """Take the control actor's answer when it has come, waiting for it at most ``wait_s``
        (a loaded or lost node must not stall the sweep's loop), and ask again at most every
        0.5 s (``wait_s`` > 0: at once)."""
        ray = self.ray
        if self._report is not None:
            ready, _ = ray.wait([self._report], timeout=wait_s)
            if not ready:
                return
            try:
                names, news = ray.get(self._report)
            except Exception:  # noqa: BLE001 - asked again below; the trials' own refs say how they end
                names, news = sorted(self.started_names), []
            self._report = None
            self._take(names, news)
        now = time.monotonic()
        if wait_s > 0 or now - self._last_report >= 0.5:
            self._last_report = now
            self._report = self.control.report.remote()

    def _take(self, names, news):
        self.started_names = set(names)
        for name, host, attempt in news:
            if attempt > 1:
                self._news.append(f"{name}: its task was lost; Ray reran it on {host} (attempt {attempt}), "
                                  "resuming from its checkpoint where it has one")

    def started(self, h) -> bool:
        self._refresh()
        return h["name"] in self.started_names

    def poll(self, h) -> dict | None:
        ray = self.ray
        ready, _ = ray.wait([h["ref"]], timeout=0)
        if not ready:
            return None
        try:
            return ray.get(h["ref"])
        except Exception as exc:  # noqa: BLE001 - the task's retries are spent (a node lost each time)
            msg = str(exc).strip().splitlines()
            return {"code": 1, "wall_s": 0.0, "error": f"{type(exc).__name__}: {msg[0] if msg else ''}"}

    def stop(self, handles) -> None:
        for h in handles:
            with open(h["stop_file"], "a"):
                pass

    def events(self, wait_s: float = 0.0) -> list:
        """What happened to the tasks since the last call (a lost task rerun); ``wait_s``: how
        long to wait for the latest word (the sweep's last call, after its trials ended)."""
        if wait_s > 0:
            self._refresh(wait_s)  # the answer asked before ...
            self._refresh(wait_s)  # ... and one asked now
        else:
            self._refresh()
        news, self._news = self._news, []
        return news

    def close(self) -> None:
        from .driver import disconnect

        disconnect()
