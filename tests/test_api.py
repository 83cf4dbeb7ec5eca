"""The Python API: train -> Run -> Policy, load's refusals, users' own envs, TensorBoard."""

import json
import os
import sys

import numpy as np
import pytest
from click.testing import CliRunner

import fastasync
from fastasync.cli import main

import custom_envs  # noqa: F401  (tests/ is on sys.path: conftest)


def invoke(args):
    return CliRunner().invoke(main, args)


@pytest.fixture(scope="module")
def cartpole(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("api") / "cp"
    return fastasync.train(env="CartPole-v1", frames="20k", threads=1, run_dir=str(run_dir), quiet=True)


def _play(policy, seed, greedy=True):
    env = policy.env()
    obs, _ = env.reset(seed=seed)
    total, done = 0.0, False
    while not done:
        obs, r, term, trunc, _ = env.step(policy.act(obs, greedy=greedy))
        total += r
        done = term or trunc
    env.close()
    return total


def test_train_returns_a_run_whose_policy_scores_as_eval(cartpole):
    run = cartpole
    assert not run.interrupted and run.frames >= 20_000 and run.summary["checkpoint_saved"]
    assert os.path.exists(os.path.join(run.run_dir, "checkpoint.npz"))
    assert run.config.env.env == "CartPole-v1" and run.config.run.threads == 1
    assert len(run.episodes()["score"]) == run.summary["games"] > 0
    policy = run.policy()
    assert policy.observation_shape == (4,) and policy.num_actions == 2
    # one env per seed, greedy: the games `fastasync eval` plays on the same seeds (gymnasium's CartPole)
    ours = sorted(_play(policy, 100 + i) for i in range(3))
    res = fastasync.load(run.run_dir, backend="gymnasium").evaluate(episodes=3, greedy=True, seed=100)
    assert ours == sorted(res["scores"].tolist())
    r = invoke(["eval", run.run_dir, "--episodes", "3", "--greedy", "--seed", "100", "--backend", "gymnasium"])
    assert r.exit_code == 0 and f"mean {np.mean(ours):.2f}" in r.output, r.output


def test_act_takes_one_observation_or_a_batch(cartpole):
    policy = fastasync.load(cartpole.run_dir)
    obs, _ = policy.env().reset(seed=0)
    a = policy.act(obs)
    assert isinstance(a, int) and 0 <= a < 2
    batch = policy.act(np.stack([obs] * 5), greedy=True)
    assert batch.shape == (5,) and batch.dtype == np.int32 and (batch == batch[0]).all()
    with pytest.raises(ValueError, match=r"act takes one observation of shape \(4,\)"):
        policy.act(np.zeros(3))


def test_load_refuses_what_eval_refuses_with_the_same_message(cartpole, tmp_path):
    trunc = tmp_path / "trunc.npz"
    data = open(os.path.join(cartpole.run_dir, "checkpoint.npz"), "rb").read()
    trunc.write_bytes(data[: len(data) // 2])
    npy = tmp_path / "x.npy"
    np.save(npy, np.zeros(3))
    for path in [str(tmp_path / "nowhere"), str(trunc), str(npy)]:
        with pytest.raises(ValueError) as exc:
            fastasync.load(path)
        r = invoke(["eval", path])
        assert r.exit_code == 2 and f"Error: {exc.value}" in r.output, (r.output, exc.value)


def test_train_validates_as_the_cli(tmp_path):
    cases = [dict(threads=0), dict(frames="ten"), dict(algo="ppo"), dict(learning_rate=3)]
    for opts in cases:
        with pytest.raises(ValueError) as exc:
            fastasync.train(env="CartPole-v1", run_dir=str(tmp_path / "x"), quiet=True, **opts)
        args = ["train", "--env", "CartPole-v1", "--run-dir", str(tmp_path / "x")]
        if "learning_rate" not in opts:
            k, v = next(iter(opts.items()))
            r = invoke([*args, f"--{k}", str(v)])
            assert r.exit_code == 2 and f"Error: {exc.value}" in r.output, r.output
    assert not (tmp_path / "x").exists()
    with pytest.raises(ValueError, match="env must be an env id or a function"):
        fastasync.train(env=3, quiet=True)


def test_own_env_by_module_and_id_through_the_cli(tmp_path):
    run = tmp_path / "corridor"
    r = invoke(["train", "--env", "custom_envs:Corridor-v0", "--threads", "1", "--envs-per-thread", "4",
                "--frames", "6k", "--lr", "3e-3", "--run-dir", str(run)])
    assert r.exit_code == 0, r.output
    assert "(gymnasium)" in r.output
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["env"]["env"] == "custom_envs:Corridor-v0" and cfg["env"]["backend"] == "gymnasium"
    eps = fastasync.load(str(run)).config
    assert eps.env.env == "custom_envs:Corridor-v0"
    r = invoke(["eval", str(run), "--episodes", "3"])
    assert r.exit_code == 0 and "3 games" in r.output, r.output
    policy = fastasync.load(str(run))
    env = policy.env()  # Discrete(3, start=-1) counted from 0, as the net acts
    assert env.action_space.n == 3 and env.action_space.start == 0
    assert -1 < _play(policy, 0) <= 1


def test_own_env_as_a_function_through_the_api(tmp_path):
    run = fastasync.train(env=custom_envs.make_corridor, frames="4k", threads=1, envs_per_thread=4,
                          run_dir=str(tmp_path / "fn"), quiet=True)
    assert run.config.env.env == "custom_envs:make_corridor"
    from fastasync.config import build, resolve

    auto = resolve(build({"env": "custom_envs:make_corridor"})).run.run_dir  # a plain directory name
    assert os.path.basename(auto).startswith("custom_envs_make_corridor-a3c-")
    assert run.summary["games"] > 0
    run = fastasync.train(env=lambda: custom_envs.make_corridor(), frames="4k", threads=1, envs_per_thread=4,
                          run_dir=str(tmp_path / "lambda"), quiet=True)
    assert run.config.env.env.endswith(":test_own_env_as_a_function_through_the_api.<locals>.<lambda>")
    assert run.policy().act(np.zeros(2)) in (0, 1, 2)
    # another process does not have the lambda: loading the run there says why
    from fastasync import envs
    from fastasync.envs import custom as custom_env

    name = run.config.env.env
    fn = custom_env._FACTORIES.pop(name)
    envs.env_info.cache_clear()
    try:
        with pytest.raises(ValueError, match="can be loaded only by the process that trained with it"):
            fastasync.load(run.run_dir)
    finally:
        custom_env._FACTORIES[name] = fn
    # an id the user's code registered already (here: importing custom_envs)
    run = fastasync.train(env="Corridor-v0", frames="2k", threads=1, envs_per_thread=4,
                          run_dir=str(tmp_path / "id"), quiet=True)
    assert run.config.env.backend == "gymnasium" and run.summary["games"] > 0


def test_own_image_env_gets_the_conv_torso(tmp_path):
    from fastasync.envs import env_info

    info = env_info("custom_envs:Squares-v0", "gymnasium")
    assert info.obs_shape == (1, 36, 36) and info.obs_dtype == np.uint8 and info.num_actions == 2
    run = fastasync.train(env="custom_envs:Squares-v0", frames="2k", threads=1, envs_per_thread=2,
                          run_dir=str(tmp_path / "sq"), quiet=True)
    assert run.summary["checkpoint_saved"]
    policy = run.policy()
    obs, _ = policy.env().reset(seed=1)
    assert obs.shape == (1, 36, 36) and policy.act(obs) in (0, 1)


def test_frame_center_auto_is_the_mean_of_the_frames_and_config_json_records_it(tmp_path):
    """Squares-v0's frames are a 16x14 square of 255 on 36x36 zeros: every frame's mean of
    x/255 is 224/1296. ``auto`` measures it once, the run records the number, and a resume
    keeps it (and refuses another value: the weights were learned for those frames)."""
    run = fastasync.train(env="custom_envs:Squares-v0", frames="2k", threads=1, envs_per_thread=2,
                          frame_center="auto", run_dir=str(tmp_path / "sq"), quiet=True)
    assert run.config.algo.frame_center == round(224 / 1296, 3) == 0.173
    with open(tmp_path / "sq" / "config.json") as fh:
        assert json.load(fh)["algo"]["frame_center"] == 0.173
    assert run.policy()._agent.net.layers[0].center == pytest.approx(0.173)
    again = fastasync.train(resume=str(tmp_path / "sq"), frames="4k", quiet=True)
    assert again.config.algo.frame_center == 0.173
    r = invoke(["train", "--resume", str(tmp_path / "sq"), "--frames", "6k", "--frame-center", "0"])
    assert r.exit_code == 2 and "cannot change --frame-center" in r.output and "Traceback" not in r.output, r.output


def test_a_checkpoint_older_than_frame_center_resumes_and_evaluates_on_x_over_255(tmp_path):
    """A run written before --frame-center existed learned on x/255: resuming it, or loading
    its policy, must not take the family's default (auto) instead."""
    from fastasync import checkpoint

    run = fastasync.train(env="custom_envs:Squares-v0", frames="2k", threads=1, envs_per_thread=2,
                          run_dir=str(tmp_path / "old"), quiet=True)
    assert run.config.algo.frame_center == 0.173  # the family default (auto) for a new run
    path = str(tmp_path / "old" / checkpoint.CHECKPOINT_NAME)
    ck = checkpoint.load(path)
    del ck["config"]["algo"]["frame_center"]  # as an older fastasync wrote it
    checkpoint.save(path, theta=ck["theta"], rms_g=ck["rms_g"], frames=ck["frames"], wall_s=ck["wall_s"],
                    games=ck["games"], rng_states=ck["rng_states"], config=ck["config"],
                    layout_signature=ck["layout"], extra=ck["extra"])
    assert fastasync.load(path)._agent.net.layers[0].center == 0.0
    again = fastasync.train(resume=path, frames="4k", quiet=True)
    assert again.config.algo.frame_center == 0.0


@pytest.mark.parametrize("value", ["1.5", "-0.1", "nan", "middle"])
def test_bad_frame_center_is_one_line(value, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = invoke(["train", "--env", "Pong-v5", "--frame-center", value, "--frames", "4k"])
    assert r.exit_code == 2 and "frame-center" in r.output and "Traceback" not in r.output, r.output
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    "env,needle",
    [
        ("custom_envs:DictObs-v0", "has a Dict('pos': Box(0.0, 1.0, (2,), float32)) observation space"),
        ("custom_envs:MultiAction-v0", "has a MultiDiscrete([2 3]) action space"),
        ("no_such_module_here:Foo-v0", "there is no module 'no_such_module_here'"),
        ("custom_envs:Nope-v0", "module custom_envs registers no gymnasium id 'Nope-v0'"),
    ],
)
def test_own_env_that_cannot_be_trained_is_one_line(env, needle, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = invoke(["train", "--env", env, "--threads", "1", "--frames", "4k"])
    assert r.exit_code == 2, r.output
    assert needle in r.output and "Traceback" not in r.output, r.output
    assert os.listdir(tmp_path) == []
    r = invoke(["train", "--env", env, "--backend", "envpool", "--frames", "4k"])
    assert r.exit_code == 2 and ("not an envpool env" in r.output or "no module" in r.output), r.output


def test_tensorboard_events_have_the_progress_scalars(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = {}
    for algo in ("a3c", "nstep-q"):
        run = tmp_path / algo
        r = invoke(["train", "--env", "CartPole-v1", "--algo", algo, "--threads", "1", "--frames", "20k",
                    "--progress-every-s", "0.2", "--tensorboard", "--run-dir", str(run)])
        assert r.exit_code == 0, r.output
        acc = EventAccumulator(str(run))
        acc.Reload()
        tags[algo] = set(acc.Tags()["scalars"])
        games = acc.Scalars("score/game")
        assert len(games) == int(r.output.split(" games,")[0].rsplit(" ", 1)[1])
        with open(run / "config.json") as fh:
            cfg = json.load(fh)
        one_round = cfg["env"]["envs_per_thread"] * cfg["algo"]["t_max"]  # the last round may overshoot
        assert all(g.step <= 20_000 + one_round for g in games)
    # a resumed run adds its own event file, even when it starts within the same second
    r = invoke(["train", "--resume", str(tmp_path / "a3c"), "--frames", "30k"])
    assert r.exit_code == 0, r.output
    assert len([f for f in os.listdir(tmp_path / "a3c") if f.startswith("events.out.tfevents")]) == 2
    acc = EventAccumulator(str(tmp_path / "a3c"))
    acc.Reload()
    assert acc.Scalars("train/fps")[-1].step >= 30_000
    common = {"score/game", "score/length", "score/mean10", "train/fps", "train/lr", "train/grad_norm"}
    assert common | {"train/entropy", "train/value_loss"} <= tags["a3c"], tags["a3c"]
    assert common | {"train/td_loss", "train/epsilon"} <= tags["nstep-q"], tags["nstep-q"]


TB_NO_PROCESS = """
import multiprocessing, multiprocessing.context, multiprocessing.queues, subprocess, sys, threading
made = []
def spy(name, real):
    def f(*a, **k):
        made.append(name)
        return real(*a, **k)
    return f
multiprocessing.Process.start = spy("Process.start", multiprocessing.Process.start)
multiprocessing.queues.Queue.__init__ = spy("multiprocessing Queue", multiprocessing.queues.Queue.__init__)
subprocess.Popen.__init__ = spy("subprocess", subprocess.Popen.__init__)
import fastasync
run = fastasync.train(env="CartPole-v1", frames="20k", threads=1, tensorboard=True, run_dir=sys.argv[1], quiet=True,
                      progress_every_s=0.2)
assert run.summary["games"] > 0
assert not made and not multiprocessing.active_children(), made
print("threads left:", sorted(t.name for t in threading.enumerate() if t is not threading.main_thread()))
"""


@pytest.mark.slow
def test_tensorboard_writes_with_threads_only(tmp_path):
    """--tensorboard starts no child process and no multiprocessing queue (the writer is a
    thread): a run in a fresh interpreter whose process and queue constructors are spied on."""
    import subprocess

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = subprocess.run([sys.executable, "-c", TB_NO_PROCESS, str(tmp_path / "r")], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    acc = EventAccumulator(str(tmp_path / "r"))
    acc.Reload()
    assert {"score/game", "train/fps", "train/entropy"} <= set(acc.Tags()["scalars"])
    assert "threads left: []" in out.stdout  # the writer's thread ended with the run


def test_tensorboard_without_the_package_says_how_to_install(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else real(name, *a))
    monkeypatch.chdir(tmp_path)
    r = invoke(["train", "--env", "CartPole-v1", "--tensorboard", "--frames", "4k"])
    assert r.exit_code == 2 and "needs the tensorboard package: pip install tensorboard" in r.output, r.output
    assert os.listdir(tmp_path) == []
    (tmp_path / "c.toml").write_text('[run]\ntensorboard = true\n')
    r = invoke(["train", "--env", "CartPole-v1", "--config", "c.toml", "--frames", "4k"])
    assert r.exit_code == 2 and "tensorboard package" in r.output, r.output


@pytest.mark.slow
def test_example_runs(tmp_path):
    import subprocess

    env = dict(os.environ, FASTASYNC_EXAMPLE_FRAMES="8k", FASTASYNC_EXAMPLE_RUN_DIR=str(tmp_path / "ex"))
    env["PYTHONPATH"] = os.pathsep.join([os.path.dirname(os.path.dirname(fastasync.__file__)), env.get("PYTHONPATH", "")])
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, os.path.join(here, "examples", "cartpole.py")], env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "mean score over 3 games" in out.stdout, out.stdout


@pytest.mark.slow
def test_ctrl_c_stops_train_with_a_checkpoint_and_returns_the_run(tmp_path):
    import signal
    import subprocess
    import time

    code = ("import fastasync\n"
            f"run = fastasync.train(env='CartPole-v1', frames='100M', threads=1, run_dir={str(tmp_path / 'cc')!r})\n"
            "print('interrupted', run.interrupted, run.summary['checkpoint_saved'], run.frames)\n")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join([os.path.dirname(os.path.dirname(fastasync.__file__)), env.get("PYTHONPATH", "")])
    p = subprocess.Popen([sys.executable, "-W", "ignore", "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=env)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not p.stderr.readline().startswith("frames"):
            pass
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, err
    assert out.startswith("interrupted True True"), out
    assert "Resume with: fastasync train --resume" in err
    assert fastasync.load(str(tmp_path / "cc")).frames == int(out.split()[-1])


def test_own_env_module_in_the_working_directory(tmp_path, monkeypatch):
    """The `fastasync` script's sys.path has no working directory: ./my_module.py is found anyway."""
    (tmp_path / "wd_envs_for_fastasync.py").write_text(
        "import gymnasium as gym\nimport custom_envs\n"
        "gym.register('WdCorridor-v0', entry_point=custom_envs.Corridor, max_episode_steps=30)\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    monkeypatch.delitem(sys.modules, "wd_envs_for_fastasync", raising=False)
    r = invoke(["train", "--env", "wd_envs_for_fastasync:WdCorridor-v0", "--threads", "1", "--envs-per-thread", "4",
                "--frames", "2k", "--run-dir", "r"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "r" / "checkpoint.npz").exists()


def test_import_is_cheap():
    import subprocess

    code = ("import sys, fastasync\nfastasync.train, fastasync.load, fastasync.Run, fastasync.Policy\n"
            "bad = [m for m in ('numba', 'envpool', 'gymnasium', 'matplotlib', 'tensorboard') if m in sys.modules]\n"
            "assert not bad, bad\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([os.path.dirname(os.path.dirname(fastasync.__file__)), env.get("PYTHONPATH", "")])
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr


def test_atari_policy_env_is_preprocessed_as_in_training(tmp_path):
    from test_cli import pong_checkpoint

    pong_checkpoint(tmp_path, frames=0)
    policy = fastasync.load(str(tmp_path))
    env = policy.env()
    assert env.observation_space.shape == (4, 84, 84) and env.action_space.n == policy.num_actions == 6
    obs, info = env.reset(seed=3)
    assert obs.shape == (4, 84, 84) and obs.dtype == np.uint8 and info["lives"] == 0
    first = obs.copy()
    for _ in range(30):
        obs, r, term, trunc, _ = env.step(policy.act(obs))
        assert r in (-1.0, 0.0, 1.0) and not trunc
    assert not np.array_equal(obs, first)
    again, _ = env.reset(seed=3)  # the same seed, the same start
    assert np.array_equal(again, first)
    from fastasync.envs import make_env

    with make_env("Pong-v5", 1, 3, "gymnasium", episodic_life=False, reward_clip=False) as batch:
        assert np.array_equal(batch.reset()[0], first)  # what eval's env 0 sees with --seed 3
    assert policy.act(np.stack([obs, again])).shape == (2,)


def test_policy_acts_on_continuous_actions(tmp_path):
    """A Gaussian policy through the API: one observation gives one action vector, a batch a
    matrix, inside the env's bounds; the greedy action (the mean) is repeatable; the action
    steps policy.env()."""
    import numpy as np

    import fastasync

    run = fastasync.train(env="InvertedPendulum-v4", frames="4k", threads=1, run_dir=str(tmp_path / "ip"), quiet=True)
    policy = run.policy()
    obs = np.zeros(policy.observation_shape, np.float32)
    a = policy.act(obs)
    assert a.shape == (1,) and a.dtype == np.float32
    batch = policy.act(np.stack([obs, obs + 1, obs - 1]))
    assert batch.shape == (3, 1)
    low, high = policy.info.action_low[0], policy.info.action_high[0]
    assert (batch >= low).all() and (batch <= high).all()
    assert policy.act(obs, greedy=True) == policy.act(obs, greedy=True)
    env = policy.env()
    o, _ = env.reset(seed=0)
    o, r, term, trunc, _ = env.step(policy.act(o))
    env.close()


def test_import_sets_openblas_to_one_thread_unless_the_user_did():
    """OpenBLAS's thread pool deadlocked envpool's ViZDoom starts (fastasync/__init__.py):
    importing fastasync sets OPENBLAS_NUM_THREADS=1 before numpy/scipy load, and keeps a
    value the user set."""
    import subprocess
    import sys

    code = "import os, fastasync; print(os.environ['OPENBLAS_NUM_THREADS'])"
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert out.stdout.strip() == "1", out.stderr
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={**env, "OPENBLAS_NUM_THREADS": "4"})
    assert out.stdout.strip() == "4", out.stderr
