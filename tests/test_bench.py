"""`fastasync bench` and `fastasync profile` on CartPole: output shape, not speed.

Performance itself is checked by running the benchmarks (bench/RESULTS-history.md), never by
thresholds in unit tests: timings on a shared machine are noise.
"""

import json
import re

import numpy as np
import pytest
from click.testing import CliRunner

from fastasync.cli import main

REQUIRED = {"env", "algo", "threads", "envs_per_thread", "ceiling_fps", "train_fps", "ratio"}


def invoke(args):
    return CliRunner().invoke(main, args, catch_exceptions=False)


@pytest.mark.slow
def test_bench_json_one_line_per_thread_count():
    r = invoke(["bench", "--env", "CartPole-v1", "--threads", "1", "--seconds", "1", "--warmup", "1",
                "--envs-per-thread", "3", "--json"])
    assert r.exit_code == 0, r.output
    lines = [ln for ln in r.stdout.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stdout
    row = json.loads(lines[0])
    assert REQUIRED <= set(row)
    assert (row["env"], row["algo"], row["threads"], row["envs_per_thread"]) == ("CartPole-v1", "a3c", 1, 3)
    assert row["ceiling_fps"] > 0 and row["train_fps"] > 0
    assert row["ratio"] == pytest.approx(row["train_fps"] / row["ceiling_fps"])
    assert row["efficiency"] == pytest.approx(1.0)
    assert row["rss_start_mb"] > 0 and row["rss_end_mb"] > 0


@pytest.mark.slow
def test_profile_prints_every_phase_and_shares_sum_to_100():
    from fastasync.profile import PHASE_LABELS, phases

    r = invoke(["profile", "--env", "CartPole-v1", "--seconds", "1", "--warmup", "0.5"])
    assert r.exit_code == 0, r.output
    out = r.stdout
    shares = {}
    for p in phases():
        label = PHASE_LABELS[p]
        m = re.search(re.escape(label) + r"\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)%", out)
        assert m, f"phase {p} missing:\n{out}"
        shares[p] = float(m.group(3))
    assert set(shares) >= {"snapshot", "forward", "act", "env_step", "glue", "loss", "backward", "apply"}
    assert 95.0 <= sum(shares.values()) <= 100.5, shares
    assert "GFLOP/s" in out and "% of peak" in out
    assert "fp32 peak" in out


@pytest.mark.parametrize("cmd,threads", [("bench", "0"), ("bench", "a,b"), ("bench", ""), ("bench", "1,2,1"),
                                         ("profile", "1,2"), ("profile", "-1")])
def test_bad_threads_exit_2(cmd, threads):
    r = CliRunner().invoke(main, [cmd, "--env", "CartPole-v1", "--threads", threads, "--seconds", "1"])
    assert r.exit_code == 2, r.output
    assert r.output.startswith("Error: ") and len(r.output.strip().splitlines()) == 1


def test_unknown_env_exit_2():
    r = CliRunner().invoke(main, ["bench", "--env", "NoSuchGame-v5", "--seconds", "1", "--warmup", "0"])
    assert r.exit_code == 2, r.output
    assert r.output.strip().splitlines()[-1].startswith("Error: ")


@pytest.mark.slow
def test_bench_repeat_alternates_windows_and_reports_medians():
    r = invoke(["bench", "--env", "CartPole-v1", "--threads", "1", "--seconds", "0.5", "--warmup", "0.2",
                "--envs-per-thread", "2", "--repeat", "3", "--json"])
    assert r.exit_code == 0, r.output
    row = json.loads(r.stdout.strip())
    assert row["repeat"] == 3
    assert len(row["ceiling_fps_each"]) == len(row["train_fps_each"]) == len(row["ratios"]) == 3
    assert row["ceiling_fps"] == pytest.approx(float(np.median(row["ceiling_fps_each"])))
    assert row["train_fps"] == pytest.approx(float(np.median(row["train_fps_each"])))
    assert row["ratio"] == pytest.approx(row["train_fps"] / row["ceiling_fps"])
    for t, c, q in zip(row["train_fps_each"], row["ceiling_fps_each"], row["ratios"]):
        assert q == pytest.approx(t / c)


def test_bench_and_profile_measure_the_runs_train_would_make(monkeypatch):
    """--algo and --envs-per-thread left out: the env family's (MyWayHome-v1 trains A3C-LSTM,
    CartPole-v1 32 envs per thread), as `train` does; given, they win."""
    from fastasync import cli
    from fastasync.bench import bench_config
    from fastasync import config

    cfg = bench_config("MyWayHome-v1", None, 1, None, "auto", "unused")
    maze = config.defaults_for("MyWayHome-v1", config.default_algo("MyWayHome-v1"))
    assert (cfg.algo.algo, cfg.env.envs_per_thread) == (
        config.default_algo("MyWayHome-v1"), maze.get("envs_per_thread", config.EnvConfig.envs_per_thread))
    assert cfg.algo.algo != config.AlgoConfig.algo
    cfg = bench_config("CartPole-v1", None, 1, None, "auto", "unused")
    family = config.defaults_for("CartPole-v1", config.default_algo("CartPole-v1"))
    assert (cfg.algo.algo, cfg.env.envs_per_thread, cfg.optim.lr) == (
        config.default_algo("CartPole-v1"), family["envs_per_thread"], family["lr"])
    assert family["envs_per_thread"] != config.EnvConfig.envs_per_thread
    cfg = bench_config("CartPole-v1", "nstep-q", 1, 3, "auto", "unused")
    assert (cfg.algo.algo, cfg.env.envs_per_thread) == ("nstep-q", 3)

    seen = []

    def measured(env, algo, threads, envs_per_thread, backend, measure):
        seen.append((algo, envs_per_thread))
        raise SystemExit(0)

    monkeypatch.setattr(cli, "_measured", measured)
    for cmd in ("bench", "profile"):
        CliRunner().invoke(main, [cmd, "--env", "CartPole-v1", "--threads", "1"])
        CliRunner().invoke(main, [cmd, "--env", "CartPole-v1", "--threads", "1", "--algo", "a3c", "--envs-per-thread", "8"])
    assert seen == [(None, None), ("a3c", 8)] * 2


def test_bench_repeat_takes_thread_counts_in_turn(monkeypatch):
    """With --repeat the thread counts take turns (1, 2, 1, 2, ...), so that a machine whose
    speed drifts between windows weighs on every count alike; the efficiency divides the
    medians."""
    from fastasync import bench

    order, fps = [], {1: iter([100.0, 300.0, 200.0]), 2: iter([380.0, 400.0, 420.0])}

    def ceiling(cfg, seconds, warmup, refused=None):
        order.append(cfg.run.threads)
        return 1000.0

    def train(cfg, seconds, warmup):
        return dict(train_fps=next(fps[cfg.run.threads]), rss_start_mb=1.0, rss_end_mb=1.0, pin_refused=[])

    monkeypatch.setattr(bench, "ceiling_fps", ceiling)
    monkeypatch.setattr(bench, "train_fps", train)
    rows, _ = bench.run_bench("CartPole-v1", "a3c", [1, 2], 2, 0.1, 0.0, "auto", repeat=3)
    assert order == [1, 2, 1, 2, 1, 2]
    assert [r["train_fps_each"] for r in rows] == [[100.0, 300.0, 200.0], [380.0, 400.0, 420.0]]
    assert rows[1]["efficiency"] == pytest.approx(400.0 / (2 * 200.0))


def test_bench_repeat_must_be_positive():
    r = CliRunner().invoke(main, ["bench", "--env", "CartPole-v1", "--repeat", "0"])
    assert r.exit_code == 2, r.output
    assert r.output.startswith("Error: --repeat must be >= 1")


@pytest.mark.slow
def test_scaling_probe_measures_threads_and_processes():
    """bench/scaling_probe.py (threads against processes) runs each mode end to end: one
    process per learner (spawned, pinned), the replayed-steps env, one JSON line of rows."""
    import os
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    modes = "ceiling-procs,train-procs,replay-threads"
    out = subprocess.run(
        [sys.executable, "-W", "ignore", os.path.join(root, "bench", "scaling_probe.py"), "--env", "CartPole-v1",
         "--threads", "1", "--envs-per-thread", "2", "--seconds", "0.5", "--warmup", "0.2", "--modes", modes],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    rows = json.loads(next(ln for ln in out.stdout.splitlines() if ln.startswith("JSON "))[5:])
    assert [r["mode"] for r in rows] == modes.split(",")
    for r in rows:
        assert r["n"] == 1 and r["fps"] > 0 and r["efficiency"] == pytest.approx(1.0)
        if r["mode"].startswith("ceiling"):
            assert r["phases_ms"] is None
        else:  # the learners' clocks: every phase timed, the forward and backward nonzero
            assert set(r["phases_ms"]) == {"forward", "env_step", "backward", "apply", "snapshot", "rest"}
            assert r["phases_ms"]["forward"] > 0 and r["phases_ms"]["backward"] > 0


def test_replay_env_replays_its_recorded_steps_in_a_cycle():
    import importlib.util
    import os

    from fastasync.envs import make_env

    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench", "scaling_probe.py")
    spec = importlib.util.spec_from_file_location("scaling_probe_under_test", path)
    probe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(probe)
    env = probe.ReplayEnv(make_env("CartPole-v1", 3, seed=1, backend="envpool"), steps=4)
    first = env.reset()
    assert first.shape == (3, 4)
    a = np.zeros(3, np.int32)
    steps = [env.step(a) for _ in range(8)]
    for k in range(4):
        assert steps[k] is steps[k + 4]
    assert not all(np.array_equal(steps[0].obs, s.obs) for s in steps[1:4])


@pytest.fixture
def no_work(monkeypatch):
    """Make every costly step of bench/profile fail the test if it is reached: env batches
    (the ceiling), the trainer, the sgemm peak."""
    import fastasync.bench
    import fastasync.perf

    def reached(what):
        def f(*args, **kwargs):
            raise AssertionError(f"{what} was started before the input was checked")

        return f

    monkeypatch.setattr(fastasync.bench, "make_batches", reached("the env-only ceiling"))
    monkeypatch.setattr(fastasync.bench, "make_trainer", reached("the trainer"))
    monkeypatch.setattr(fastasync.perf, "fp32_peak_gflops", reached("the fp32 peak measurement"))


@pytest.mark.parametrize("cmd", ["bench", "profile"])
@pytest.mark.parametrize("algo", ["nstep-q", "onestep-sarsa"])
def test_q_method_on_continuous_actions_fails_before_any_work(no_work, cmd, algo):
    """A3C learns a Gaussian policy on Box actions (tests/test_continuous.py); the Q methods
    are refused up front, with the way out in the message."""
    r = invoke([cmd, "--env", "Pendulum-v1", "--algo", algo, "--seconds", "1", "--warmup", "0"])
    assert r.exit_code == 2, r.output
    assert r.output.strip().splitlines() == [
        f"Error: {algo} needs a discrete action space; Pendulum-v1 has continuous actions "
        "(use --algo a3c or a3c-lstm, which learn a Gaussian policy)"
    ]


def test_bench_config_and_run_profile_reject_q_methods_on_continuous_actions(no_work):
    from fastasync.bench import bench_config, run_bench
    from fastasync.profile import run_profile

    with pytest.raises(ValueError, match="needs a discrete action space; Pendulum-v1 has continuous"):
        bench_config("Pendulum-v1", "nstep-q", 1, 2, "auto", "unused")
    with pytest.raises(ValueError, match="needs a discrete action space"):
        run_bench("Pendulum-v1", "nstep-q", [1], 2, 1.0, 0.0, "auto")
    with pytest.raises(ValueError, match="needs a discrete action space"):
        run_profile("Pendulum-v1", "nstep-q", 1, 2, 1.0, 0.0, "auto")
