"""Runs on Ray (fastasync.distributed): the parameter actor's arithmetic, the CLI's checks,
and real runs on a Ray cluster of two nodes on this machine (ray.cluster_utils.Cluster:
a head and a second node, 1 CPU each, shared by the tests of this module: tests/conftest.py).

The cluster tests are lean (the whole suite runs on 2 cores): one learning run that then
resumes on one machine, and one run that starts from a one-machine checkpoint, loses a node
actor's process and then a whole node, is stopped with Ctrl-C and resumes on Ray.
"""

import os
import re
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from click.testing import CliRunner

from fastasync.cli import main
from fastasync.distributed.server import ParamServer
from fastasync.stats import read_episodes


def _ps(P=5, nodes=2, threads=1, target=False, total=1000, period=100):
    theta = np.arange(P, dtype=np.float32)
    return ParamServer(theta, np.ones(P, np.float32), theta.copy() if target else None, 0, total, period, 0.0,
                       nodes, threads, np.arange(nodes * threads * 2, dtype=np.uint64).reshape(-1, 2))


def _sync(ps, node, delta, frames, games=(), tv=0, last=False):
    P = ps.theta.size
    return ps.sync(node, np.asarray(delta, np.float32), frames, list(games), np.zeros(6), np.full(P, node + 2.0, np.float32),
                   np.full((ps.threads, 2), 7 + node, np.uint64), None, tv, last)


def test_a_slow_sync_is_waited_for_and_never_sent_twice(monkeypatch):
    """A parameter actor that answers a sync late (seen: 120 s on a loaded 2-core machine)
    does not stop the node: the same answer is waited for (a second send would add the
    change twice) and the wait is reported; a dead actor still raises."""
    ray = pytest.importorskip("ray")
    from ray.exceptions import GetTimeoutError, RayActorError

    from fastasync.distributed import node as node_mod

    answers = iter([GetTimeoutError("slow"), GetTimeoutError("slow"), "answer"])
    asked = []

    def get(ref, timeout=None):
        asked.append((ref, timeout))
        a = next(answers)
        if isinstance(a, Exception):
            raise a
        return a

    monkeypatch.setattr(ray, "get", get)
    n = node_mod.Node.__new__(node_mod.Node)
    n.messages = []
    assert n._wait_sync("ref-1") == "answer"
    assert asked == [("ref-1", node_mod.SYNC_TIMEOUT_S)] * 3
    assert len(n.messages) == 3 and "answered after" in n.messages[-1]

    def dead(ref, timeout=None):
        raise RayActorError()

    monkeypatch.setattr(ray, "get", dead)
    with pytest.raises(RayActorError):
        n._wait_sync("ref-2")


def test_param_server_adds_deltas_counts_frames_and_stamps_games():
    ps = _ps()
    st = ps.join(0, "h", 1)
    assert st["rank"] == 0 and ps.join(1, "h", 2)["rank"] == 1  # two nodes on one machine: other CPUs
    assert ps.join(1, "h", 3)["rank"] == 1  # a restarted node keeps its rank
    theta, frames, target, _v, stop, _o = _sync(ps, 0, [1, 0, 0, 0, 0], 300, [(0.5, 0, 10.0, 10, 250)])
    assert theta.tolist() == [1, 1, 2, 3, 4] and frames == 300 and target is None and not stop
    theta, frames, _t, _v, stop, _o = _sync(ps, 1, [0, 1, 0, 0, 0], 800, [(0.0, 1, 5.0, 5, 9_999)])
    assert theta.tolist() == [1, 2, 2, 3, 4] and frames == 1100 and stop  # the budget is spent: every node stops
    c = ps.collect(with_state=True)
    # a game is never stamped past the global count that includes it
    assert [g[0] for g in c["games"]] == [250, 1100] and [g[2] for g in c["games"]] == [0, 1]
    assert ps.collect()["games"] == []
    st = c["state"]
    assert st["frames"] == 1100 and st["rng_states"][:, 0].tolist() == [7, 8]
    np.testing.assert_array_equal(st["rms_g"], np.full(5, 2.5, np.float32))  # the mean of the nodes' own


def test_param_server_merges_the_observation_statistics_of_its_nodes():
    """Vector observations: the parameter actor combines what every node merged since its
    last sync into the global statistics, gives them to nodes (joining or syncing) and puts
    them in the checkpoint's state; a run without them carries none."""
    from fastasync.obsnorm import combine, difference

    rs = np.random.default_rng(0)
    xs = [rs.normal(3.0, 2.0, (n, 4)) for n in (50, 20, 30)]

    def moments(x):
        return {"obs_count": np.array([len(x)], float), "obs_mean": x.mean(axis=0), "obs_m2": x.var(axis=0) * len(x)}

    theta = np.zeros(5, np.float32)
    ps = ParamServer(theta, np.ones(5, np.float32), None, 0, 1000, 100, 0.0, 2, 1,
                     np.arange(4, dtype=np.uint64).reshape(-1, 2), obs=moments(xs[0]))
    start = ps.join(0, "h", 1)["obs"]
    assert start["obs_count"][0] == 50
    mine = combine(start, moments(xs[1]))  # node 0's learners merged xs[1]
    *_, obs = ps.sync(0, theta, 20, [], np.zeros(6), theta, np.zeros((1, 2), np.uint64), None, 0, False, (), 0.0,
                      difference(mine, start))
    assert obs["obs_count"][0] == 70
    *_, obs = ps.sync(1, theta, 30, [], np.zeros(6), theta, np.zeros((1, 2), np.uint64), None, 0, False, (), 0.0,
                      moments(xs[2]))
    extra = ps.collect(with_state=True)["state"]["extra"]
    allx = np.concatenate(xs)
    assert extra["obs_count"][0] == obs["obs_count"][0] == 100
    np.testing.assert_allclose(extra["obs_mean"], allx.mean(axis=0), rtol=1e-10)
    np.testing.assert_allclose(extra["obs_m2"] / 100, allx.var(axis=0), rtol=1e-9)
    assert _ps().join(0, "h", 1)["obs"] is None and "obs_count" not in _ps().state()["extra"]


def test_param_server_logs_games_in_frame_order():
    """A node's view of the global count lags the syncs of the others since its own: its
    games are stamped no earlier than the last one logged, so episodes.csv is in frame order."""
    ps = _ps(total=10_000)
    ps.join(0, "h", 1)
    ps.join(1, "h", 2)
    _sync(ps, 0, np.zeros(5), 500, [(0.0, 0, 1.0, 1, 480)])
    _sync(ps, 1, np.zeros(5), 500, [(0.0, 1, 2.0, 1, 450), (0.0, 1, 3.0, 1, 300), (0.0, 1, 4.0, 1, 990)])
    games = ps.collect()["games"]
    assert [g[0] for g in games] == [480, 480, 480, 990] and [g[3] for g in games] == [1.0, 3.0, 2.0, 4.0]


def test_games_synced_after_a_checkpoint_are_stamped_past_its_frames():
    """A checkpoint counts the games logged so far; a game a lagging node syncs after it is
    stamped at the checkpoint's frame count or later, so that a resume (which keeps the rows
    up to the checkpoint's count of games) never sets aside a game stamped before it."""
    ps = _ps(total=10_000)
    _sync(ps, 0, np.zeros(5), 500, [(0.0, 0, 1.0, 1, 450)])
    _sync(ps, 1, np.zeros(5), 500)  # the global count: 1000
    st = ps.collect(with_state=True)
    assert st["state"]["frames"] == 1000 and [g[0] for g in st["games"]] == [450]
    _sync(ps, 0, np.zeros(5), 10, [(0.0, 0, 2.0, 1, 505)])  # node 0 saw 505 frames when its game ended
    assert [g[0] for g in ps.collect()["games"]] == [1000]


def test_param_server_owns_the_target_network():
    ps = _ps(target=True, period=100)
    ps.join(0, "h", 1)
    _th, _f, target, v, _s, _o = _sync(ps, 0, np.ones(5), 50)
    assert target is None and v == 0
    _th, _f, target, v, _s, _o = _sync(ps, 0, np.ones(5), 60)  # 110 frames: crosses 100
    assert v == 1 and target.tolist() == (np.arange(5) + 2).tolist()
    assert _sync(ps, 0, np.zeros(5), 1, tv=1)[2] is None  # sent only to nodes that hold an older one


def test_ray_options_need_ray(tmp_path):
    r = CliRunner().invoke(main, ["train", "--env", "CartPole-v1", "--nodes", "2", "--run-dir", str(tmp_path / "x")])
    assert r.exit_code == 2 and "add --ray" in r.output
    assert not (tmp_path / "x").exists()


def test_bench_nodes_need_ray():
    r = CliRunner().invoke(main, ["bench", "--env", "CartPole-v1", "--nodes", "1,2"])
    assert r.exit_code == 2 and "add --ray" in r.output
    r = CliRunner().invoke(main, ["bench", "--env", "CartPole-v1", "--ray", "--nodes", "1,1"])
    assert r.exit_code == 2 and "--nodes lists a count twice" in r.output


def test_ray_missing_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    r = CliRunner().invoke(main, ["train", "--env", "CartPole-v1", "--ray", "--nodes", "2",
                                  "--run-dir", str(tmp_path / "x")])
    assert r.exit_code == 2, r.output
    assert 'pip install "fastasync[ray]"' in r.output and "Traceback" not in r.output
    assert not (tmp_path / "x").exists()


def test_ray_address_nobody_answers_fails_fast(tmp_path):
    pytest.importorskip("ray")
    t = time.monotonic()
    r = CliRunner().invoke(main, ["train", "--env", "CartPole-v1", "--ray", "127.0.0.1:1", "--run-dir", str(tmp_path / "x")])
    assert r.exit_code == 2 and "cannot connect to the Ray cluster at 127.0.0.1:1" in r.output, r.output
    assert time.monotonic() - t < 30 and not (tmp_path / "x").exists()


def test_help_does_not_import_ray():
    code = "import sys; from fastasync.cli import main\ntry: main(['train', '--help'])\nexcept SystemExit: pass\n" \
           "assert 'ray' not in sys.modules, 'ray imported'"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert "--ray [ADDRESS]" in p.stdout


# -- a real cluster (tests/conftest.py's ray_cluster: a head and a second node, 1 CPU each) --


def _train(args):
    return CliRunner().invoke(main, ["train", *args], catch_exceptions=False)


@pytest.mark.slow  # a Ray cluster on this machine
def test_ray_two_nodes_learn_cartpole_then_resume_on_one_machine(ray_cluster, tmp_path):
    """Two nodes of one learner thread each reach the bar of the one-machine Hogwild test
    (test_train.test_a3c_hogwild_learns_cartpole): a 20-game mean >= 195 within 500k frames.
    TensorBoard and the videos of --video-every are a one-machine run's, and so is the run
    directory: its checkpoint resumes without Ray."""
    pytest.importorskip("tensorboard")
    pytest.importorskip("imageio_ffmpeg")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from fastasync import checkpoint, video

    c, _ = ray_cluster
    run = tmp_path / "cp"
    r = _train(["--env", "CartPole-v1", "--ray", c.address, "--nodes", "2", "--threads", "1", "--frames", "500k",
                "--lr", "2e-3", "--rms-eps", "0.1", "--seed", "1", "--run-dir", str(run), "--tensorboard",
                "--video-every", "200k"])
    assert r.exit_code == 0, r.output
    eps = read_episodes(run / "episodes.csv")
    scores = np.asarray(eps["score"], float)
    best = np.convolve(scores, np.ones(20) / 20, "valid").max()
    assert best >= 195, f"best mean of 20 consecutive games {best:.1f}"
    assert set(eps["thread"]) == {0, 1}, "thread indices are unique across nodes"
    ck = checkpoint.load(str(run))
    assert ck["frames"] >= 500_000 and max(eps["frames"]) <= ck["frames"]
    assert ck["games"] == len(scores) and ck["rng_states"].shape == (2, 2)

    acc = EventAccumulator(str(run), size_guidance={"images": 0, "scalars": 0})
    acc.Reload()
    games = acc.Scalars("score/game")  # every game logged, with its true score, at its frame count
    assert [e.value for e in games] == list(scores) and [e.step for e in games] == list(eps["frames"])
    tags = set(acc.Tags()["scalars"])
    assert {"score/length", "score/mean10", "train/fps", "train/lr", "train/entropy", "train/value_loss",
            "train/grad_norm", "video/score"} <= tags, tags
    lrs = acc.Scalars("train/lr")  # annealed from --lr to 0 over the run, as on one machine
    assert lrs and all(abs(e.value - 2e-3 * max(0.0, 1 - e.step / 500_000)) < 1e-8 for e in lrs)
    names = sorted(os.listdir(run / "videos"), key=lambda n: int(n[7:-4]))
    assert names == ["frames-200000.mp4", "frames-400000.mp4"]
    assert [e.step for e in acc.Scalars("video/score")] == [200_000, 400_000]
    said = [ln for ln in r.output.splitlines() if ln.startswith("video: ")]
    assert len(said) == 2
    for name, line in zip(names, said):  # one game, frame skip 1: its length in frames
        steps = int(line.split(", ")[-1].split()[0].replace(",", ""))
        assert video.frame_count(str(run / "videos" / name)) == steps
    r = _train(["--resume", str(run), "--frames", str(ck["frames"] + 10_000)])  # and back: one machine
    assert r.exit_code == 0, r.output
    assert checkpoint.load(str(run))["frames"] >= ck["frames"] + 10_000


@pytest.mark.slow  # a Ray cluster on this machine
def test_ray_normalises_vector_observations_with_global_statistics(ray_cluster, tmp_path):
    """A Gaussian A3C on Pendulum (its family normalises observations) trains on two nodes:
    the checkpoint holds the global statistics of every observation the nodes merged, eval
    plays with them, and one machine resumes from them."""
    from fastasync import checkpoint

    c, _ = ray_cluster
    run = tmp_path / "pendulum"
    r = _train(["--env", "Pendulum-v1", "--ray", c.address, "--nodes", "2", "--threads", "1", "--frames", "20k",
                "--run-dir", str(run)])
    assert r.exit_code == 0, r.output
    ck = checkpoint.load(str(run))
    assert ck["config"]["env"]["obs_norm"]
    # every node's observations, each once: one per env step counted in the frames, plus the
    # reset steps of envpool's auto-reset (not counted in frames), at most one per game
    assert ck["frames"] >= 20_000 and ck["frames"] < ck["extra"]["obs_count"][0] <= ck["frames"] + ck["games"]
    assert np.isfinite(ck["extra"]["obs_mean"]).all() and (ck["extra"]["obs_m2"] > 0).all()
    r = CliRunner().invoke(main, ["eval", str(run), "--episodes", "1"])
    assert r.exit_code == 0, r.output
    r = _train(["--resume", str(run), "--frames", str(ck["frames"] + 2_000)])  # and on one machine
    assert r.exit_code == 0, r.output
    ck2 = checkpoint.load(str(run))
    assert ck2["frames"] < ck2["extra"]["obs_count"][0] <= ck2["frames"] + ck2["games"]


class _Lines:
    """A subprocess's stderr lines, read in a thread (the test waits for some of them)."""

    def __init__(self, stream):
        self.lines = []
        self.t = threading.Thread(target=lambda: [self.lines.append(x) for x in stream], daemon=True)
        self.t.start()

    def wait(self, pattern, after=0, idle=120, cap=900):
        """The first line from ``after`` on that matches. The wait follows the run's progress:
        it fails only after ``idle`` seconds without a new line (the runs here print progress
        every 0.5 s: a silent run is stuck), or ``cap`` seconds in all; a loaded machine that
        restarts a node slowly but keeps printing is waited for."""
        start = last = time.monotonic()
        seen = len(self.lines)
        while True:
            for i, line in enumerate(self.lines[after:], after):
                m = re.search(pattern, line)
                if m:
                    return i, m
            now = time.monotonic()
            if len(self.lines) != seen:
                seen, last = len(self.lines), now
            if now - last > idle or now - start > cap:
                break
            time.sleep(0.1)
        pytest.fail(f"no line matching {pattern!r} ({now - last:.0f}s without output, {now - start:.0f}s in all); "
                    "got:\n" + "".join(self.lines[-30:]))


@pytest.mark.slow  # a Ray cluster on this machine
def test_ray_node_faults_ctrl_c_and_resume(ray_cluster, tmp_path):
    """A one-machine checkpoint resumed on two Ray nodes; one node actor's process is killed,
    then the second Ray node is removed (a new one joins): both times the node is restarted
    from the global parameters and the run goes on. Ctrl-C stops every node with a
    checkpoint that counts every logged game. The Ray run resumes with one node; its
    parameter actor dies: the run stops with a message, its last checkpoint resumes."""
    from fastasync import checkpoint

    c, second = ray_cluster
    run = tmp_path / "f"
    r = _train(["--env", "CartPole-v1", "--threads", "1", "--frames", "20k", "--run-dir", str(run)])
    assert r.exit_code == 0, r.output
    f0 = checkpoint.load(str(run))["frames"]
    cmd = [sys.executable, "-W", "ignore", "-m", "fastasync.cli", "train", "--resume", str(run), "--ray", c.address,
           "--nodes", "2", "--frames", "100M", "--progress-every-s", "0.5", "--sync-every-s", "0.5"]
    p = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                         env=dict(os.environ, PYTHONUNBUFFERED="1"))
    out = _Lines(p.stderr)
    try:
        _i, m = out.wait(r"node 1: started on .*Ray node (\w+), pid (\d+)\)")
        i, _ = out.wait(r"node 1: kernels ready")  # it trained and synced
        os.kill(int(m.group(2)), signal.SIGKILL)  # a node actor's process dies
        i, _ = out.wait(r"node 1: restarted", i)
        i, _ = out.wait(r"node 1: kernels ready", i)
        on_second = [k for k in (0, 1) if re.search(rf"node {k}: .*Ray node {second.node_id[:8]}",
                                                    "".join(out.lines))][-1:]
        k = on_second[0] if on_second else 1
        i, _ = out.wait(rf"^frames .*\d fps", i)
        c.remove_node(second)  # a whole machine is lost, its node actor with it
        c.add_node(num_cpus=1)  # and another joins, where Ray restarts it
        i, _ = out.wait(rf"node {k}: restarted", i)
        i, _ = out.wait(rf"node {k}: kernels ready", i)
        out.wait(r"^frames ", i + 1)
        p.send_signal(signal.SIGINT)
        assert p.wait(timeout=60) == 130, "".join(out.lines[-20:])
    finally:
        if p.poll() is None:
            p.kill()
    out.t.join(5)
    text = "".join(out.lines)
    assert "Resume with" in text
    ck = checkpoint.load(str(run))
    eps = read_episodes(run / "episodes.csv")
    assert ck["frames"] > f0 and max(eps["frames"]) <= ck["frames"], text
    assert ck["games"] == len(eps["score"]), "the checkpoint counts every game in the log"
    assert {0, 1} <= set(eps["thread"]), text
    # the Ray run resumes on Ray with another node count; then its parameter actor dies
    cmd = [sys.executable, "-W", "ignore", "-m", "fastasync.cli", "train", "--resume", str(run), "--ray", c.address,
           "--nodes", "1", "--progress-every-s", "0.5"]
    p = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                         env=dict(os.environ, PYTHONUNBUFFERED="1"))
    out = _Lines(p.stderr)
    try:
        _i, m = out.wait(r"parameter actor on .*pid (\d+)\)")
        i, _ = out.wait(r"node 0: kernels ready")
        out.wait(r"^frames .*\d fps", i)
        os.kill(int(m.group(1)), signal.SIGKILL)
        assert p.wait(timeout=60) == 1, "".join(out.lines[-20:])
    finally:
        if p.poll() is None:
            p.kill()
    out.t.join(5)
    text = "".join(out.lines)
    assert "the parameter actor died" in text and f"resume with fastasync train --resume {run}" in text, text
    assert "Traceback" not in text
    assert checkpoint.load(str(run))["frames"] == ck["frames"]  # the last good checkpoint is kept
    r = _train(["--resume", str(run), "--frames", str(ck["frames"] + 10_000)])  # ... and resumes, here on one machine
    assert r.exit_code == 0, r.output
    ck2 = checkpoint.load(str(run))
    assert ck2["frames"] >= ck["frames"] + 10_000 and ck2["games"] == len(read_episodes(run / "episodes.csv")["score"])


@pytest.mark.slow  # a Ray cluster on this machine
def test_bench_on_ray_gives_a_row_per_node_count(ray_cluster):
    import json

    c, _ = ray_cluster
    r = CliRunner().invoke(main, ["bench", "--env", "CartPole-v1", "--ray", c.address, "--nodes", "1,2", "--threads", "1",
                                  "--seconds", "2", "--warmup", "0.5", "--json"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    assert [(x["nodes"], x["threads"]) for x in rows] == [(1, 1), (2, 1)]
    # (frames reach the parameter actor with the syncs, at least one a second per node)
    assert all(x["ceiling_fps"] > 0 and x["train_fps"] > 0 for x in rows), rows
    assert rows[0]["efficiency"] == 1.0
