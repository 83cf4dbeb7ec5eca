"""Tests for fastasync.envs: both backends, same shapes, same auto-reset semantics."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import numpy as np
import pytest

from fastasync import envs
from fastasync.envs import EnvError

HAVE_ENVPOOL = importlib.util.find_spec("envpool") is not None
HAVE_GYM = (
    importlib.util.find_spec("gymnasium") is not None
    and importlib.util.find_spec("ale_py") is not None
)

BACKENDS = [
    pytest.param(
        "envpool", marks=pytest.mark.skipif(not HAVE_ENVPOOL, reason="envpool not installed")
    ),
    pytest.param(
        "gymnasium",
        marks=pytest.mark.skipif(not HAVE_GYM, reason="gymnasium/ale-py not installed"),
    ),
]
both = pytest.mark.skipif(
    not (HAVE_ENVPOOL and HAVE_GYM), reason="needs both envpool and gymnasium+ale-py"
)


def _fields(s):
    return (s.reward, s.terminated, s.truncated, s.game_over, s.raw_reward)


def _check_step_types(s, e, info):
    assert s.obs.shape == (e, *info.obs_shape) and s.obs.dtype == info.obs_dtype
    assert s.obs.flags.c_contiguous
    for a, dt in zip(_fields(s), (np.float32, bool, bool, bool, np.float32)):
        assert a.shape == (e,) and a.dtype == dt


# --------------------------------------------------------------------------- catalog


@pytest.mark.parametrize("backend", BACKENDS)
def test_list_envs(backend):
    ids = envs.list_envs(backend)
    assert ids and ids == sorted(ids)
    for want in ("Pong-v5", "Breakout-v5", "CartPole-v1", "Acrobot-v1", "MountainCar-v0"):
        assert want in ids


@pytest.mark.parametrize("backend", BACKENDS)
def test_unknown_env_lists_close_matches(backend):
    with pytest.raises(EnvError, match=r"unknown env 'Pongg-v5' for backend .*did you mean: .*Pong-v5"):
        envs.make_env("Pongg-v5", 1, 0, backend)
    with pytest.raises(EnvError, match="did you mean: .*CartPole-v1"):
        envs.env_info("CartPol-v1", backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_arguments(backend):
    with pytest.raises(EnvError, match="num_envs"):
        envs.make_env("CartPole-v1", 0, 0, backend)
    with pytest.raises(EnvError, match="noop_max"):
        envs.make_env("Pong-v5", 1, 0, backend, noop_max=0)
    with pytest.raises(EnvError, match="unknown backend"):
        envs.make_env("CartPole-v1", 1, 0, "nope")
    assert isinstance(EnvError("x"), ValueError)


@pytest.mark.parametrize("backend", BACKENDS)
def test_env_info(backend):
    pong = envs.env_info("Pong-v5", backend)
    assert pong.obs_shape == (4, 84, 84) and pong.obs_dtype == np.uint8
    assert pong.is_atari and pong.discrete and pong.frame_skip == 4 and pong.num_actions == 6
    cp = envs.env_info("CartPole-v1", backend)
    assert cp.obs_shape == (4,) and cp.obs_dtype == np.float32
    assert not cp.is_atari and cp.discrete and cp.frame_skip == 1 and cp.num_actions == 2
    mcc = envs.env_info("MountainCarContinuous-v0", backend)
    assert not mcc.discrete and mcc.num_actions == 0 and mcc.action_shape == (1,)


def test_default_backend_and_cheap_import():
    assert envs.default_backend() == ("envpool" if HAVE_ENVPOOL else "gymnasium")
    code = (
        "import sys, fastasync.envs as e; e.default_backend(); "
        "bad = [m for m in ('envpool', 'gymnasium', 'ale_py') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


MULTIPLAYER_ONLY = ("Combat-v5", "Joust-v5", "MazeCraze-v5", "Warlords-v5")  # ale-py 0.12


@pytest.mark.skipif(not HAVE_GYM, reason="gymnasium/ale-py not installed")
def test_gymnasium_lists_exactly_ale_pys_single_player_games():
    """The Atari ids offered are the ROMs ale-py itself registers as single-player ``ALE/*-v5``
    gymnasium envs: its multiplayer-only ROMs (ALE would exit(1) loading one) are left out."""
    import gymnasium

    atari = {i for i in envs.list_envs("gymnasium") if envs.catalog("gymnasium")[i][0] == "atari"}
    registered = {i[len("ALE/"):] for i in gymnasium.registry if i.startswith("ALE/") and i.endswith("-v5")}
    assert atari == registered
    for env_id in MULTIPLAYER_ONLY:
        assert env_id not in atari


@pytest.mark.skipif(not HAVE_GYM, reason="gymnasium/ale-py not installed")
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("env_id", MULTIPLAYER_ONLY)
def test_multiplayer_only_game_is_a_clear_env_error(backend, env_id):
    assert env_id not in envs.list_envs(backend)  # first: asking ALE for one kills the process
    for ask in (envs.env_info, lambda e, b: envs.make_env(e, 1, 0, b)):
        with pytest.raises(EnvError, match=rf"^{env_id} is a multiplayer-only Atari game .*single-player"):
            ask(env_id, backend)


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_GYM, reason="gymnasium/ale-py not installed")
def test_train_on_multiplayer_only_game_exits_2_with_one_error_line(tmp_path):
    out = subprocess.run(
        [sys.executable, "-W", "ignore", "-m", "fastasync.cli", "train", "--env", "Combat-v5",
         "--backend", "gymnasium", "--frames", "1k", "--run-dir", str(tmp_path / "run")],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert out.stderr.strip().splitlines() == [
        "Error: Combat-v5 is a multiplayer-only Atari game (ALE has no single-player mode for its ROM "
        "'combat'); fastasync trains single-player games only, see `fastasync envs`"
    ]


# --------------------------------------------------------------------------- observations


@pytest.mark.parametrize("backend", BACKENDS)
def test_pong_observations(backend):
    e = 3
    with envs.make_env("Pong-v5", e, 0, backend) as env:
        assert env.num_envs == e and env.info.backend == backend
        obs = env.reset()
        assert obs.shape == (e, 4, 84, 84) and obs.dtype == np.uint8
        # after a game reset all 4 stack slots hold the same first frame
        assert all(np.array_equal(obs[i, 0], obs[i, k]) for i in range(e) for k in range(4))
        prev = obs
        for _ in range(5):
            s = env.step(np.full(e, 2, np.int32))
            _check_step_types(s, e, env.info)
            # frame stack shifts by one each ordinary step (oldest first)
            assert np.array_equal(s.obs[:, :3], prev[:, 1:])
            prev = s.obs
        assert 0 <= s.obs.min() and s.obs.max() <= 255 and s.obs.max() > s.obs.min()
        assert len(np.unique(s.obs)) > 3


@pytest.mark.parametrize("backend", BACKENDS)
def test_cartpole_observations(backend):
    with envs.make_env("CartPole-v1", 4, 1, backend) as env:
        obs = env.reset()
        assert obs.shape == (4, 4) and obs.dtype == np.float32
        assert np.abs(obs).max() <= 0.05  # CartPole starts in U(-0.05, 0.05)
        s = env.step(np.array([0, 1, 0, 1]))  # any int dtype is accepted
        _check_step_types(s, 4, env.info)


@both
def test_backends_give_the_same_atari_frames():
    # noop_max=1 makes the reset deterministic (FIRE or one no-op), and with no
    # sticky actions the emulators then follow the same trajectory.
    a = envs.make_env("Pong-v5", 1, 0, "envpool", noop_max=1)
    b = envs.make_env("Pong-v5", 1, 0, "gymnasium", noop_max=1)
    oa, ob = a.reset(), b.reset()
    assert np.abs(oa.astype(int) - ob.astype(int)).max() <= 1  # resize rounding
    rng = np.random.default_rng(0)
    for _ in range(30):
        act = rng.integers(0, 6, 1)
        sa, sb = a.step(act), b.step(act)
        assert np.abs(sa.obs.astype(int) - sb.obs.astype(int)).max() <= 1
    a.close()
    b.close()


# --------------------------------------------------------------------------- auto-reset


@pytest.mark.parametrize("backend", BACKENDS)
def test_cartpole_auto_reset(backend):
    e = 2
    with envs.make_env("CartPole-v1", e, 3, backend) as env:
        env.reset()
        ended = None
        for t in range(100):  # always pushing left ends an episode in ~10 steps
            s = env.step(np.zeros(e, np.int32))
            assert np.all(s.reward == 1.0)
            if s.terminated.any():
                ended = s.terminated.copy()
                break
        assert ended is not None, "pole never fell"
        assert np.array_equal(s.game_over, s.terminated | s.truncated)
        assert np.array_equal(s.raw_reward, s.reward)
        assert not s.truncated.any()
        s2 = env.step(np.ones(e, np.int32))  # action ignored for the ended envs
        assert np.all(s2.reward[ended] == 0.0)
        assert not (s2.terminated[ended] | s2.truncated[ended] | s2.game_over[ended]).any()
        assert np.abs(s2.obs[ended]).max() <= 0.05  # first obs of the new episode
        assert np.all(s2.reward[~ended] == 1.0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_atari_truncation(backend):
    # 400 emulator frames = 100 agent steps, then a truncation (not a termination)
    with envs.make_env("Pong-v5", 2, 0, backend, max_episode_frames=400) as env:
        env.reset()
        a = np.zeros(2, np.int32)
        for t in range(99):
            s = env.step(a)
            assert not (s.truncated | s.terminated | s.game_over).any()
        s = env.step(a)
        assert s.truncated.all() and s.game_over.all() and not s.terminated.any()
        s = env.step(a)
        assert not (s.truncated | s.terminated | s.game_over).any() and not s.reward.any()
        assert all(np.array_equal(s.obs[i, 0], s.obs[i, 3]) for i in range(2))  # full reset


def _run_breakout(backend, episodic_life, stop_after_game_overs, steps=600, e=2, seed=0):
    env = envs.make_env("Breakout-v5", e, seed, backend, episodic_life=episodic_life)
    obs = env.reset()
    rng = np.random.default_rng(seed)
    n_term = n_over = 0
    prev_done = np.zeros(e, bool)
    prev_over = np.zeros(e, bool)
    prev_obs = obs
    for _ in range(steps):
        s = env.step(rng.integers(0, env.info.num_actions, e, dtype=np.int32))
        # the step after any done is a reset step: no reward, no done
        assert not s.reward[prev_done].any() and not s.raw_reward[prev_done].any()
        assert not (s.terminated | s.truncated | s.game_over)[prev_done].any()
        # game_over implies a done, and a done without game_over is a life loss
        assert not (s.game_over & ~(s.terminated | s.truncated)).any()
        n_term += int(s.terminated.sum())
        n_over += int(s.game_over.sum())
        life_reset = prev_done & ~prev_over
        # after a life loss the game is not reset: one new frame is pushed onto the stack
        assert np.array_equal(s.obs[life_reset, :3], prev_obs[life_reset, 1:])
        prev_done = s.terminated | s.truncated
        prev_over = s.game_over
        prev_obs = s.obs
        if n_over >= stop_after_game_overs:
            break
    env.close()
    return n_term, n_over


@pytest.mark.parametrize("backend", BACKENDS)
def test_breakout_life_loss_vs_game_over(backend):
    n_term, n_over = _run_breakout(backend, episodic_life=True, stop_after_game_overs=2)
    assert n_over >= 1, "no game ended"
    assert n_term >= 4 * n_over  # Breakout has 5 lives
    n_term, n_over = _run_breakout(backend, episodic_life=False, stop_after_game_overs=1)
    assert n_over >= 1 and n_term == n_over


@pytest.mark.parametrize("backend", BACKENDS)
def test_raw_reward_is_unclipped_true_score(backend):
    # Space Invaders pays 5..30 points per alien: clipped training reward != score
    e = 2
    with envs.make_env("SpaceInvaders-v5", e, 0, backend) as env:
        env.reset()
        rng = np.random.default_rng(1)
        clipped = np.zeros(e)
        raw = np.zeros(e)
        for _ in range(300):
            s = env.step(rng.integers(0, env.info.num_actions, e, dtype=np.int32))
            assert set(np.unique(s.reward)) <= {-1.0, 0.0, 1.0}
            assert np.array_equal(np.sign(s.raw_reward), s.reward)
            clipped += s.reward
            raw += s.raw_reward
            if raw.sum() >= 2 * clipped.sum() > 0:
                break
        assert raw.sum() > clipped.sum() > 0
    with envs.make_env("SpaceInvaders-v5", 1, 0, backend, reward_clip=False) as env:
        env.reset()
        total = 0.0
        for _ in range(200):
            s = env.step(np.array([1], np.int32))  # FIRE
            assert np.array_equal(s.reward, s.raw_reward)
            total += float(s.reward[0])
            if total > 1:
                break
        assert total > 1


@both
def test_backends_agree_step_by_step_through_life_losses():
    # With noop_max=1 both backends are deterministic and must match exactly,
    # including life-loss resets, game overs and rewards.
    a = envs.make_env("Breakout-v5", 1, 0, "envpool", noop_max=1)
    b = envs.make_env("Breakout-v5", 1, 0, "gymnasium", noop_max=1)
    a.reset()
    b.reset()
    rng = np.random.default_rng(0)
    n_term = n_over = 0
    for _ in range(400):
        act = rng.integers(0, 4, 1)
        sa, sb = a.step(act), b.step(act)
        for x, y in zip(_fields(sa), _fields(sb)):
            assert np.array_equal(x, y)
        assert np.abs(sa.obs.astype(int) - sb.obs.astype(int)).max() <= 1
        n_term += int(sa.terminated[0])
        n_over += int(sa.game_over[0])
    assert n_over >= 1 and n_term > n_over


@pytest.mark.skipif(not HAVE_ENVPOOL, reason="envpool not installed")
@pytest.mark.parametrize(
    "env_id, kw, steps",
    [
        # the Atari twins step long enough for their events, seconds each: the slow set's
        # life losses, a game over, rewards
        pytest.param("Breakout-v5", dict(episodic_life=True), 700, marks=pytest.mark.slow),
        # raw != clipped, truncation
        pytest.param("SpaceInvaders-v5", dict(max_episode_frames=800), 450, marks=pytest.mark.slow),
        ("CartPole-v1", {}, 300),
        ("Pendulum-v1", {}, 220),  # continuous actions, time-limit truncation
    ],
)
def test_envpool_direct_path_matches_public_api(env_id, kw, steps):
    # the batch steps envpool through its C++ _send/_recv (less GIL per step); twin batches,
    # one forced onto envpool's public send/recv, must give identical steps
    fast = envs.make_env(env_id, 3, 5, "envpool", **kw)
    slow = envs.make_env(env_id, 3, 5, "envpool", **kw)
    assert fast._direct is not None, "envpool's private API changed: the direct path is off"
    slow._direct = None
    info = fast.info
    assert np.array_equal(fast.reset(), slow.reset())
    rng = np.random.default_rng(0)
    ends = 0
    for _ in range(steps):
        if info.discrete:
            act = rng.integers(0, info.num_actions, 3).astype(np.int32)
        else:
            act = rng.uniform(-2, 2, (3, *info.action_shape)).astype(np.float32)
        a, b = fast.step(act), slow.step(act)
        _check_step_types(a, 3, info)
        assert np.array_equal(a.obs, b.obs)
        for x, y in zip(_fields(a), _fields(b)):
            assert np.array_equal(x, y)
        ends += int((a.terminated | a.truncated).sum())
    assert ends >= 1
    fast.close()
    slow.close()


# --------------------------------------------------------------------------- misc


@pytest.mark.parametrize("backend", BACKENDS)
def test_send_recv_and_determinism(backend):
    def rollout():
        env = envs.make_env("Pong-v5", 2, 7, backend)
        out = [env.reset()]
        for t in range(20):
            env.send(np.full(2, t % 6, np.int32))
            out.append(env.recv().obs)
        env.close()
        return np.stack(out)

    assert np.array_equal(rollout(), rollout())
    with envs.make_env("CartPole-v1", 2, 0, backend) as env:
        env.reset()
        env.send(np.zeros(2, np.int32))
        with pytest.raises(EnvError):
            env.send(np.zeros(2, np.int32))
        env.recv()
        with pytest.raises(EnvError):
            env.recv()
        with pytest.raises(EnvError, match="shape"):
            env.step(np.zeros(3, np.int32))
        s1 = env.step(np.zeros(2, np.int32))
        keep = s1.obs.copy()
        env.step(np.zeros(2, np.int32))
        assert np.array_equal(keep, s1.obs)  # returned arrays are not reused


@pytest.mark.parametrize("backend", BACKENDS)
def test_continuous_classic_control(backend):
    with envs.make_env("Pendulum-v1", 2, 0, backend) as env:
        obs = env.reset()
        assert obs.shape == (2, 3) and obs.dtype == np.float32
        s = env.step(np.zeros((2, 1), np.float32))
        _check_step_types(s, 2, env.info)
