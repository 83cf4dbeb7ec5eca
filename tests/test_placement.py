"""Learner thread placement: each learner and its envpool worker pinned to one CPU."""

import os

import pytest
from click.testing import CliRunner

from fastasync import placement
from fastasync.cli import main

linux_only = pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="thread affinity is Linux-only")


def test_cpu_plan_pins_only_when_asked_and_when_every_learner_gets_a_cpu(monkeypatch):
    monkeypatch.setattr(placement, "allowed_cpus", lambda: [2, 5, 7])
    monkeypatch.setattr(os, "sched_setaffinity", lambda pid, cpus: None, raising=False)
    assert placement.cpu_plan(2, True) == [2, 5]
    assert placement.cpu_plan(3, True) == [2, 5, 7]
    assert placement.cpu_plan(4, True) is None  # more learners than CPUs: the OS balances them
    assert placement.cpu_plan(2, False) is None
    assert placement.describe(None).startswith("not pinned")
    assert placement.describe([2, 5]) == "learner i (with its envpool worker) pinned to CPU 0->2, 1->5"


def test_no_affinity_call_means_no_pinning(monkeypatch):
    monkeypatch.delattr(os, "sched_setaffinity", raising=False)
    assert placement.cpu_plan(1, True) is None
    assert placement.pin_current_thread(None) is False


def _thread_cpus():
    """{thread id: allowed CPUs} of every thread of this process (Linux /proc)."""
    out = {}
    for tid in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{tid}/status") as fh:
            for line in fh:
                if line.startswith("Cpus_allowed_list:"):
                    out[int(tid)] = line.split(":", 1)[1].strip()
    return out


@linux_only
@pytest.mark.parametrize("pin", [True, False])
def test_trainer_pins_each_learner_and_its_env_worker(tmp_path, monkeypatch, pin):
    """With pinning, learner i runs on plan[i] and so does one envpool worker thread; without, nothing is pinned."""
    from fastasync import learner as L

    allowed = placement.allowed_cpus()
    threads = min(2, len(allowed))
    seen = {}
    orig = L.Learner.segment

    def spy(self):
        if self.index not in seen:
            seen[self.index] = (os.sched_getaffinity(0), _thread_cpus())
        return orig(self)

    monkeypatch.setattr(L.Learner, "segment", spy)
    args = ["train", "--env", "CartPole-v1", "--backend", "envpool", "--threads", str(threads), "--frames", "4k",
            "--run-dir", str(tmp_path / "run"), "--pin-threads" if pin else "--no-pin-threads"]
    r = CliRunner().invoke(main, args, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert sorted(seen) == list(range(threads))
    for i in range(threads):
        mine, every = seen[i]
        if pin:
            assert mine == {allowed[i]}
            assert "pinned to CPU 0->" in r.output
            # the learner itself and at least one envpool worker thread are pinned to its CPU
            assert sum(v == str(allowed[i]) for v in every.values()) >= 2, every
        else:
            assert mine == set(allowed)
            assert "not pinned" in r.output


def test_default_threads_are_the_cpus_this_process_may_use(monkeypatch):
    """threads 0 resolves to the allowed CPUs (taskset/cpuset), not every core of the host."""
    from fastasync import config as C

    monkeypatch.setattr(placement, "allowed_cpus", lambda: [3, 4, 5])
    monkeypatch.setattr(placement, "cpu_quota", lambda: None)  # whatever quota the test machine has
    cfg = C.resolve(C.build(dict(env="CartPole-v1", run_dir="unused")))
    assert cfg.run.threads == 3
    assert C.resolve(C.build(dict(env="CartPole-v1", threads=2, run_dir="unused"))).run.threads == 2


def _cgroup(tmp_path, proc_lines, files):
    root = tmp_path / "cg"
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    proc = tmp_path / "proc_cgroup"
    proc.write_text("".join(f"{line}\n" for line in proc_lines))
    return str(root), str(proc)


def test_cpu_quota_reads_cgroup_v2_and_v1(tmp_path):
    # v2 (docker --cpus=2.5 seen from inside the container: the namespace root)
    root, proc = _cgroup(tmp_path / "a", ["0::/"], {"cpu.max": "250000 100000\n"})
    assert placement.cpu_quota(root, proc) == 2.5
    # v2, no limit; and a limit on the process's own cgroup below the root
    root, proc = _cgroup(tmp_path / "b", ["0::/app"], {"cpu.max": "max 100000\n", "app/cpu.max": "50000 100000\n"})
    assert placement.cpu_quota(root, proc) == 0.5
    root, proc = _cgroup(tmp_path / "c", ["0::/"], {"cpu.max": "max 100000\n"})
    assert placement.cpu_quota(root, proc) is None
    # v1: quota over period, -1 = none
    root, proc = _cgroup(tmp_path / "d", ["4:memory:/x", "1:cpu,cpuacct:/"],
                         {"cpu/cpu.cfs_quota_us": "300000\n", "cpu/cpu.cfs_period_us": "100000\n"})
    assert placement.cpu_quota(root, proc) == 3.0
    root, proc = _cgroup(tmp_path / "e", ["1:cpu:/"], {"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"})
    assert placement.cpu_quota(root, proc) is None
    # nothing readable, or garbage: no quota
    assert placement.cpu_quota(str(tmp_path / "none"), str(tmp_path / "none.txt")) is None
    root, proc = _cgroup(tmp_path / "f", ["0::/"], {"cpu.max": "lots\n"})
    assert placement.cpu_quota(root, proc) is None


def test_default_threads_respects_affinity_and_quota(monkeypatch):
    from fastasync import config as C

    monkeypatch.setattr(placement, "allowed_cpus", lambda: list(range(8)))
    monkeypatch.setattr(placement, "cpu_quota", lambda: None)
    assert placement.default_threads() == 8
    monkeypatch.setattr(placement, "cpu_quota", lambda: 2.5)  # docker --cpus=2.5 on an 8-CPU host
    assert placement.default_threads() == 2
    monkeypatch.setattr(placement, "cpu_quota", lambda: 0.5)
    assert placement.default_threads() == 1
    monkeypatch.setattr(placement, "cpu_quota", lambda: 32.0)  # a quota above the CPUs allowed
    assert placement.default_threads() == 8
    cfg = C.resolve(C.build(dict(env="CartPole-v1", backend="gymnasium")))
    assert cfg.run.threads == 8
    cfg = C.resolve(C.build(dict(env="CartPole-v1", backend="gymnasium", threads=3)))
    assert cfg.run.threads == 3


@linux_only
def test_refused_pinning_is_reported_not_hidden(tmp_path, monkeypatch):
    """If the OS refuses an affinity call (a sandbox, a cpuset change), the run goes on unpinned
    and says so: the trainer prints it and the reports' placement line names the threads."""
    monkeypatch.setattr(placement, "pin_current_thread", lambda cpu: False)
    args = ["train", "--env", "CartPole-v1", "--backend", "envpool", "--threads", "1", "--frames", "2k",
            "--run-dir", str(tmp_path / "run"), "--pin-threads"]
    r = CliRunner().invoke(main, args, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "learner 0: the OS refused to pin it to CPU" in r.output
    line = placement.describe([4, 6], refused=[1, 1])
    assert line.endswith("the OS REFUSED it for thread(s) 1, which ran unpinned")
    assert "REFUSED" not in placement.describe([4, 6], refused=[])
