"""ViZDoom (fastasync/envs/doom.py): the scenario's reward rebuilt from what the env reports
and checked against the engine's own, the action set, the preprocessing, the two backends
step by step, the outcome statistics, and a short training run."""

import os
import tempfile

import numpy as np
import pytest
from click.testing import CliRunner

from fastasync.envs import doom

vzd = pytest.importorskip("vizdoom")
envpool = pytest.importorskip("envpool")

from fastasync.cli import main  # noqa: E402
from fastasync.envs import env_info, list_envs, make_env  # noqa: E402


def _engine(env_id, seed):
    g = vzd.DoomGame()
    g.load_config(os.path.join(vzd.scenarios_path, doom.DOOM[env_id].cfg + ".cfg"))
    g.set_window_visible(False)
    g.set_mode(vzd.Mode.PLAYER)
    g.set_doom_config_path(os.path.join(tempfile.gettempdir(), "fastasync-vizdoom.ini"))
    g.set_screen_resolution(vzd.ScreenResolution.RES_320X240)
    g.set_seed(seed)
    g.init()
    return g


@pytest.mark.parametrize("env_id", ["HealthGathering-v1", "MyWayHome-v1"])
def test_scenario_reward_is_the_engines_own(env_id):
    """Summed over an episode, the rebuilt reward is ViZDoom's own total reward (living
    reward per tic, the map script's vest / the death penalty), to the tics of the last step."""
    sc = doom.DOOM[env_id]
    g = _engine(env_id, 11)
    table = doom.action_table([int(b) for b in g.get_available_buttons()])
    rng = np.random.default_rng(0)
    ends = set()
    for _ in range(3):
        g.new_episode()
        rebuilt, steps = 0.0, 0
        while not g.is_episode_finished():
            g.make_action(list(table[rng.integers(len(table))]), doom.FRAME_SKIP)
            steps += 1
            term = g.is_episode_finished() and g.get_episode_time() - g.get_episode_start_time() < doom.EPISODE_TICS
            rebuilt += float(doom.scenario_reward(sc, np.array([term]))[0])
        ends.add(term)
        # the last step counts 4 tics in full: at most 3 tics of living reward apart
        assert abs(rebuilt - g.get_total_reward()) <= 3 * abs(sc.living) + 1e-6, (rebuilt, g.get_total_reward())
    g.close()
    if env_id == "HealthGathering-v1":
        assert ends == {True}  # a random player dies: the -100 was checked


def test_action_table_is_envpools_combined_set():
    b = vzd.Button
    mwh = doom.action_table([int(x) for x in (b.TURN_LEFT, b.TURN_RIGHT, b.MOVE_FORWARD, b.MOVE_LEFT, b.MOVE_RIGHT)])
    hg = doom.action_table([int(x) for x in (b.TURN_LEFT, b.TURN_RIGHT, b.MOVE_FORWARD)])
    assert mwh.shape == (18, 5) and hg.shape == (6, 3)
    for t, pairs in ((mwh, [(0, 1), (3, 4)]), (hg, [(0, 1)])):
        assert len({tuple(r) for r in t}) == len(t)  # no action twice
        for i, j in pairs:  # opposite buttons never together
            assert not (t[:, i] * t[:, j]).any()
    assert (mwh[0] == 0).all()  # action 0 presses nothing
    # the sizes envpool builds for the same scenarios
    assert env_info("MyWayHome-v1", "envpool").num_actions == 18
    assert env_info("HealthGathering-v1", "envpool").num_actions == 6
    with pytest.raises(ValueError, match="not supported"):
        doom.action_table([int(b.SELECT_WEAPON1)])


def test_envpool_batch_episode_semantics():
    """Preprocessing, the truncation at 2,100 tics, the reset step's zero reward and the
    true score of a timed-out MyWayHome episode (-0.21)."""
    info = env_info("MyWayHome-v1", "envpool")
    assert (info.obs_shape, info.obs_dtype, info.frame_skip, info.family) == ((12, 84, 84), np.uint8, 4, "doom")
    env = make_env("MyWayHome-v1", 2, seed=3, backend="envpool")
    obs = env.reset()
    assert obs.shape == (2, 12, 84, 84) and obs.dtype == np.uint8
    assert (obs[:, 0:3] == obs[:, 9:12]).all()  # a new episode fills the stack with its first frame
    score = np.zeros(2)
    ended = np.zeros(2, bool)
    for t in range(doom.MAX_STEPS):
        s = env.step(np.zeros(2, np.int32))  # stand still: the vest is never reached
        assert not s.terminated.any()
        score += s.raw_reward
        ended |= s.game_over
        assert s.truncated.all() == (t == doom.MAX_STEPS - 1)
    assert ended.all()
    np.testing.assert_allclose(score, -0.0001 * doom.EPISODE_TICS, rtol=1e-4)
    s = env.step(np.zeros(2, np.int32))  # the reset step: a new episode, nothing earned
    assert (s.raw_reward == 0).all() and (s.reward == 0).all() and not s.game_over.any()
    env.close()


def test_health_gathering_death_and_envpool_shaping_option():
    env = make_env("HealthGathering-v1", 1, seed=5, backend="envpool")
    shaped = make_env("HealthGathering-v1", 1, seed=5, backend="envpool", doom_reward="envpool")
    env.reset(), shaped.reset()
    for _ in range(doom.MAX_STEPS):
        s, z = env.step(np.zeros(1, np.int32)), shaped.step(np.zeros(1, np.int32))  # no turning: dies of the acid floor
        np.testing.assert_array_equal(s.raw_reward, z.raw_reward)  # the true score is the scenario's either way
        if s.game_over[0]:
            break
    assert s.terminated[0] and s.raw_reward[0] == pytest.approx(4 - 100)
    assert s.reward[0] == pytest.approx((4 - 100) / 100)  # for training: the death is worth -1
    assert doom.outcome("HealthGathering-v1", 400.0, 100) is False
    assert doom.outcome("HealthGathering-v1", 2100.0, doom.MAX_STEPS) is True
    assert doom.outcome("MyWayHome-v1", 0.97, 75) is True and doom.outcome("MyWayHome-v1", -0.21, 525) is False
    assert doom.outcome("Pong-v5", 21, 1000) is None
    env.close(), shaped.close()


@pytest.mark.parametrize("hud", [False, True])
def test_backends_agree_step_by_step(hud):
    """envpool's ViZDoom and the vizdoom package, same seed and actions: the same episode
    ends on the same step with the same rewards, and the frames agree (area resize of
    each: rounding apart), with the status bar rendered (--doom-hud) or not."""
    a = make_env("HealthGathering-v1", 1, seed=7, backend="envpool", doom_hud=hud)
    b = make_env("HealthGathering-v1", 1, seed=7, backend="gymnasium", doom_hud=hud)
    a.reset(), b.reset()
    rng = np.random.default_rng(0)
    diffs = []
    for _ in range(doom.MAX_STEPS):
        act = rng.integers(a.info.num_actions, size=1)
        sa, sb = a.step(act), b.step(act)
        for f in ("raw_reward", "reward", "terminated", "truncated", "game_over"):
            np.testing.assert_array_equal(getattr(sa, f), getattr(sb, f), err_msg=f)
        diffs.append(np.abs(sa.obs.astype(int) - sb.obs.astype(int)).mean())
        if sa.game_over[0]:
            break
    assert sa.game_over[0]
    assert np.median(diffs) < 0.5, np.median(diffs)
    a.close(), b.close()


def test_the_status_bar_shows_the_health_the_frames_otherwise_hide():
    """--doom-hud: Doom's status bar fills the bottom ~13 of 84 rows (320x240: 32 rows),
    and it changes as the acid floor takes health; without it nothing on screen tells the
    health (HealthGathering's .cfg: render_hud = false)."""
    on = make_env("HealthGathering-v1", 1, seed=3, backend="envpool", doom_hud=True)
    off = make_env("HealthGathering-v1", 1, seed=3, backend="envpool")
    bar = slice(72, 84)
    first_on, first_off = on.reset()[0, 9:12, bar].astype(int), off.reset()[0, 9:12, bar].astype(int)
    assert np.abs(first_on - first_off).mean() > 10  # a grey bar with red digits, not floor
    for _ in range(40):  # stand still: 40 steps of acid, no medkit
        s_on, s_off = on.step(np.zeros(1, np.int32)), off.step(np.zeros(1, np.int32))
    assert not s_on.game_over[0]
    digits_on = s_on.obs[0, 9:12, bar].astype(int)
    assert np.abs(digits_on - first_on).max() > 50  # the health figures (and the face) changed
    # the view above the bar is the same scene (the bar shortens it: not pixel for pixel)
    assert on.info.obs_shape == off.info.obs_shape == (12, 84, 84)
    on.close(), off.close()
    # the copied .cfg differs from the scenario's in its render_hud line only
    spec = envpool.make_spec("HealthGathering-v1").config
    with open(spec.cfg_path) as fh, open(doom.envpool_kwargs("HealthGathering-v1")["cfg_path"]) as gh:
        src, hud = fh.read().splitlines(), gh.read().splitlines()
    assert [a for a, b in zip(src, hud) if a != b] == ["render_hud = false"]
    assert [b for a, b in zip(src, hud) if a != b] == ["render_hud = true"]


def test_a_checkpoint_older_than_doom_hud_resumes_without_the_status_bar(monkeypatch):
    """A net that learned without the status bar keeps seeing none when resumed, whatever the
    family's default for a new run; a stored choice is kept either way."""
    from fastasync import config

    doom_defaults = {**config.FAMILY_DEFAULTS[("doom", None)], "doom_hud": True}
    monkeypatch.setitem(config.FAMILY_DEFAULTS, ("doom", None), doom_defaults)
    cfg = config.build({"env": "HealthGathering-v1", "algo": "a3c", "frame_center": 0.17, "threads": 1})
    assert cfg.env.doom_hud is True  # a new run: the family's default
    stored = cfg.to_dict()
    del stored["env"]["doom_hud"]  # as an older fastasync wrote it
    assert config.resume_config({"config": stored, "path": "old.npz"}, {}).env.doom_hud is False
    assert config.TrainConfig.from_dict(stored).env.doom_hud is False  # eval and fastasync.load
    stored["env"]["doom_hud"] = True
    assert config.resume_config({"config": stored, "path": "new.npz"}, {}).env.doom_hud is True


def test_eval_plays_on_the_view_the_run_trained_on(monkeypatch):
    """eval's envs get the run's status-bar choice (a net trained with the bar, played
    without it, scored 30% survived where its training games had 90%)."""
    from fastasync import envs, evaluate
    from fastasync.config import build

    seen = []

    class Stop(Exception):
        pass

    def spy(env_id, num_envs, **kwargs):
        seen.append(kwargs)
        raise Stop

    monkeypatch.setattr(envs, "make_env", spy)
    monkeypatch.setattr("fastasync.algorithms.make_algorithm", lambda *a: type("A", (), {"head": "pi"})())
    for hud in (True, False):
        cfg = build({"env": "HealthGathering-v1", "algo": "a3c", "frame_center": 0.17, "threads": 1,
                     "doom_hud": hud, "backend": "envpool"})
        agent = type("Agent", (), {"cfg": cfg, "net": None, "info": env_info("HealthGathering-v1"),
                                   "backend": "envpool"})()
        with pytest.raises(Stop):
            evaluate.evaluate(agent, episodes=1)
        assert seen[-1]["doom_hud"] is hud


def test_listed_and_refused_clearly(tmp_path):
    assert {"MyWayHome-v1", "HealthGathering-v1"} <= set(list_envs("envpool"))
    r = CliRunner().invoke(main, ["train", "--env", "MyWayHome-v1", "--backend", "gymnasium", "--doom-reward", "envpool",
                                  "--threads", "1", "--frames", "8k", "--run-dir", str(tmp_path / "x")])
    assert r.exit_code == 2 and "envpool backend" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_maze_trains_with_the_lstm_by_default(tmp_path):
    """A bare `--env MyWayHome-v1` trains A3C-LSTM (the paper's Labyrinth agent) on RGB frames,
    shows the goal rate, resumes, and evaluates."""
    run = tmp_path / "maze"
    r = CliRunner().invoke(main, ["train", "--env", "MyWayHome-v1", "--threads", "1", "--envs-per-thread", "2",
                                  "--frames", "6k", "--progress-every-s", "0.5", "--run-dir", str(run)])
    assert r.exit_code == 0, r.output
    assert "a3c-lstm on MyWayHome-v1" in r.output
    r = CliRunner().invoke(main, ["train", "--resume", str(run), "--frames", "8k"])
    assert r.exit_code == 0, r.output
    gif = tmp_path / "maze.gif"
    r = CliRunner().invoke(main, ["eval", str(run), "--episodes", "1", "--gif", str(gif)])
    assert r.exit_code == 0, r.output
    assert "reached the goal" in r.output
    from PIL import Image

    im = Image.open(gif)  # the first game's RGB frames (one per agent step), at 84x84 x2
    assert im.size == (168, 168) and im.n_frames > 10
    assert len(im.convert("RGB").getcolors(1 << 16) or ()) > 16  # colour, not a grey channel
    # the library's gymnasium env of the policy: the observations it acts on, the true score
    import fastasync

    policy = fastasync.load(str(run))
    env = policy.env(render_mode="rgb_array")
    obs, _ = env.reset(seed=3)
    assert obs.shape == policy.observation_shape and obs.dtype == np.uint8
    # it sees what the net learned on: the status bar, the family's default
    from fastasync.config import defaults_for

    assert policy.config.env.doom_hud is defaults_for("MyWayHome-v1", "a3c-lstm")["doom_hud"]
    for hud in (True, False):
        ref = make_env("MyWayHome-v1", 1, seed=3, backend=policy.config.env.backend, doom_hud=hud)
        assert np.array_equal(ref.reset()[0], obs) is (hud is policy.config.env.doom_hud)
        ref.close()
    total, steps, done = 0.0, 0, False
    while not done and steps < 600:  # a timed-out MyWayHome episode: 525 agent steps
        obs, r, term, trunc, _ = env.step(policy.act(obs))
        total, steps, done = total + r, steps + 1, term or trunc
    assert done and (total > 0 or abs(total - (-0.0001 * 2100)) < 1e-6), total  # the vest, or the time penalty
    assert env.render().shape == (84, 84, 3)
    obs, _ = env.reset()  # a new episode after the end
    assert obs.shape == policy.observation_shape
    env.close()


_STUCK_START = r"""
import subprocess, sys, threading
from fastasync.envs import doom

class StuckEnvpool:  # an engine is started, then the start waits for good (as envpool's did)
    @staticmethod
    def make(env_id, **kwargs):
        engine = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
        print(engine.pid, flush=True)
        threading.Event().wait()

class QuickEnvpool:
    @staticmethod
    def make(env_id, **kwargs):
        return ("env", env_id, kwargs)

assert doom.make_watched(QuickEnvpool, "MyWayHome-v1", {"num_envs": 2}, timeout_s=30) == ("env", "MyWayHome-v1", {"num_envs": 2})
print("quick start returned", flush=True)
doom.make_watched(StuckEnvpool, "MyWayHome-v1", {}, timeout_s=1.5)
print("not reached")
"""


@pytest.mark.slow
def test_a_start_that_hangs_stops_with_one_line_and_takes_its_engines_along():
    """envpool's ViZDoom start has hung for good, holding the GIL: the watchdog process says
    why, kills the engines and the process; a start that finishes stops the watchdog."""
    import signal
    import subprocess
    import sys
    import time

    t0 = time.monotonic()
    out = subprocess.run([sys.executable, "-c", _STUCK_START], capture_output=True, text=True, timeout=60)
    assert out.returncode == -signal.SIGKILL and time.monotonic() - t0 < 30
    lines = out.stdout.split()
    assert lines[:3] == ["quick", "start", "returned"] and "not reached" not in out.stdout
    assert "did not start MyWayHome-v1 within 1.5 s" in out.stderr and "Traceback" not in out.stderr
    engine = int(lines[3])
    for _ in range(50):  # the engine is killed (a zombie until init reaps it at most)
        try:
            with open(f"/proc/{engine}/stat") as fh:
                if fh.read().rsplit(")", 1)[1].split()[0] in "ZX":
                    break
        except FileNotFoundError:
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"engine {engine} still running")
