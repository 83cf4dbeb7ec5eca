"""CarRacing (fastasync/envs/car.py): the action repeat across envpool's auto-reset against
the raw env stepped by hand (both backends), the preprocessing, the discrete table against
gymnasium's own discrete env, what the two backends can share, the conv torso at 96x96,
bad input, and a short training run."""

import collections
import warnings

import numpy as np
import pytest
from click.testing import CliRunner

from fastasync.cli import main
from fastasync.envs import EnvError, car, env_info, list_envs, make_env

envpool = pytest.importorskip("envpool")
needs_box2d = pytest.mark.skipif(not car.has_box2d(), reason="gymnasium's CarRacing needs box2d and pygame")


def _raw_envpool(seed, max_steps):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return envpool.make("CarRacing-v3", env_type="gymnasium", num_envs=1, batch_size=1, seed=seed,
                            max_episode_steps=max_steps)


class _ByHand:
    """One raw env stepped by hand the way the batch must step it: an agent step repeats
    its action ``repeat`` times and stops at the sub-step that ends the episode; the agent
    step after an end is the reset step (one env step, action ignored)."""

    def __init__(self, raw, repeat, grey=True, reset_obs=None, step=None, reset=None):
        self.raw, self.repeat, self.grey = raw, repeat, grey
        self.step_fn = step or (lambda a: raw.step(a[None]))
        self.reset_fn = reset  # gymnasium: no auto-reset, the reset step is reset()
        self.done = False
        self.env_steps = 0
        o = reset_obs if reset_obs is not None else raw.reset()[0]
        self.stack = collections.deque([self._f(o)] * 4, maxlen=4)

    def _f(self, o):
        o = np.asarray(o).reshape(96, 96, 3)
        return car.grey_frames(o)[None] if self.grey else o.transpose(2, 0, 1)

    def agent_step(self, a):
        if self.done:  # the reset step
            o, r, te, tr, _ = self.step_fn(a) if self.reset_fn is None else (self.reset_fn(), 0.0, False, False, {})
            assert float(np.sum(r)) == 0.0 and not np.any(te) and not np.any(tr)
            self.stack.extend([self._f(o)] * 4)
            self.done = False
            return 0.0, False, False
        total, te, tr = 0.0, False, False
        for _ in range(self.repeat):
            o, r, te, tr, _ = self.step_fn(a)
            te, tr = bool(np.any(te)), bool(np.any(tr))
            total += float(np.sum(r))
            self.env_steps += 1
            if te or tr:
                break
        self.stack.append(self._f(o))
        self.done = te or tr
        return total, te and not tr, tr

    def obs(self):
        return np.concatenate(list(self.stack), axis=0)


def _actions(rng, n, discrete):
    if discrete:
        return rng.integers(0, 5, n).astype(np.int32)
    a = rng.uniform([-1.2, -0.2, -0.2], [1.2, 1.2, 0.4], (n, 3)).astype(np.float32)  # out of bounds too
    return a


def _sent(a, discrete):
    return car.ACTIONS[a].astype(np.float32) if discrete else np.clip(a, car.LOW, car.HIGH).astype(np.float32)


@pytest.mark.parametrize("repeat,max_steps,env_id", [
    (4, 7, "CarRacing-v3"),          # episodes end at sub-step 3 of 4, then 2 of 4 ...
    (4, 8, "CarRacingDiscrete-v3"),  # ... at sub-step 4: the repeat and the end coincide
    (3, 10, "CarRacing-v3"),         # ... at sub-step 1 of 3
])
def test_envpool_repeat_matches_the_raw_env_by_hand(repeat, max_steps, env_id):
    """Rewards summed over the repeat, the episode ending exactly where the raw env ended,
    the next agent step a reset step (first frame, reward 0), the frame stack, the frames."""
    E, seed = 3, 11
    discrete = env_id != "CarRacing-v3"
    env = make_env(env_id, E, seed=seed, backend="envpool", car_frame_skip=repeat, car_max_steps=max_steps)
    assert env.info.frame_skip == repeat
    refs = [_ByHand(_raw_envpool(seed + i, max_steps), repeat) for i in range(E)]  # env i is seeded seed + i
    obs = env.reset()
    assert obs.shape == (E, 4, 96, 96) and obs.dtype == np.uint8
    for i in range(E):
        np.testing.assert_array_equal(obs[i], refs[i].obs())
    rng = np.random.default_rng(0)
    ends, frames = 0, 0
    for t in range(3 * (max_steps // repeat + 2)):
        a = _actions(rng, E, discrete)
        s = env.step(a)
        frames += int((~np.array([r.done for r in refs])).sum()) * repeat  # the learner's count: resets excluded
        for i in range(E):
            rew, te, tr = refs[i].agent_step(_sent(a, discrete)[i])
            assert s.raw_reward[i] == pytest.approx(rew, abs=1e-4), (t, i)
            assert (s.terminated[i], s.truncated[i], s.game_over[i]) == (te, tr, te or tr), (t, i)
            np.testing.assert_array_equal(s.obs[i], refs[i].obs(), err_msg=f"step {t} env {i}")
        assert s.reward.dtype == np.float32 and s.obs.dtype == np.uint8
        ends += int(s.truncated.sum())
    assert ends >= 2 * E
    assert env.env_steps == sum(r.env_steps for r in refs)  # exactly the env steps run, reset steps excluded
    assert env.env_steps <= frames < env.env_steps + ends * repeat  # the last step of an episode counts in full
    env.close()


class _FakePool:
    """envpool's asynchronous public API for scripted episodes: env i's episodes last
    ``lengths[i]`` env steps and end terminated (or truncated where ``trunc``); results come
    back in a random order, as envpool's worker threads return them."""

    def __init__(self, lengths, trunc=False, seed=0):
        self.lengths, self.trunc = lengths, trunc
        n = len(lengths)
        self.elapsed = np.zeros(n, int)
        self.episode = np.zeros(n, int)
        self.done = np.zeros(n, bool)
        self.queue = []
        self.rng = np.random.default_rng(seed)

    def async_reset(self):
        self.queue = [(i, None) for i in range(len(self.lengths))]

    def send(self, a, ids):
        self.queue += [(int(i), a[k].copy()) for k, i in enumerate(ids)]

    def recv(self):
        i, a = self.queue.pop(int(self.rng.integers(len(self.queue))))
        if a is None or self.done[i]:  # reset (action ignored)
            if a is not None:
                self.episode[i] += 1
            self.elapsed[i], self.done[i], r = 0, False, 0.0
        else:
            self.elapsed[i] += 1
            r = float(self.elapsed[i])
            self.done[i] = self.elapsed[i] >= self.lengths[i]
        obs = np.full((1, 96, 96, 3), 16 * self.episode[i] + self.elapsed[i], np.uint8)
        d, tr = bool(self.done[i]), bool(self.done[i] and self.trunc)
        return obs, np.array([r], np.float32), np.array([d and not tr]), np.array([tr]), {"env_id": np.array([i])}


@pytest.mark.parametrize("trunc", [False, True])
def test_async_bookkeeping_with_scripted_ends_in_any_order(trunc):
    """Episodes of 1..6 env steps under a repeat of 4, results out of order: each agent step
    sums exactly its env steps, stops at the end, then one reset step; terminated and
    truncated reach the learner as the env gave them."""
    lengths = [1, 2, 3, 4, 5, 6]
    info = car.info("CarRacing-v3", "envpool", 4, True)
    b = car.CarEnvpoolBatch(_FakePool(lengths, trunc, seed=3), info, len(lengths), reward_clip=False)
    assert b._direct is None  # the public path of this fake
    obs = b.reset()
    assert (obs == 0).all()
    a = np.zeros((len(lengths), 3), np.float32)
    got = []  # per agent step: raw reward, ended, the newest and the oldest frame's value, for each env
    for t in range(5):
        s = b.step(a)
        got.append((s.raw_reward.copy(), s.game_over.copy(), s.obs[:, -1, 0, 0].copy(), s.obs[:, 0, 0, 0].copy()))
    for i, n in enumerate(lengths):
        k = 0  # env steps of the current episode so far
        done = False
        ep = 0
        for t, (rew, over, last, oldest) in enumerate(got):
            if done:  # reset step
                ep += 1
                assert rew[i] == 0 and not over[i] and last[i] == oldest[i] == 16 * ep, (i, t)
                k, done = 0, False
                continue
            m = min(4, n - k)
            assert rew[i] == sum(range(k + 1, k + m + 1)), (i, t)
            k += m
            done = k >= n
            assert over[i] == done and last[i] == 16 * ep + k, (i, t)
    ended = np.zeros(len(lengths), bool)
    for _ in range(3):
        s = b.step(a)
        assert not (s.terminated & s.truncated).any()
        assert (s.truncated if trunc else s.terminated).tolist() == s.game_over.tolist()
        ended |= s.game_over
    assert ended.all()
    # env steps counted exactly: the finished episodes' and the running ones', reset steps excluded
    assert b.env_steps == sum(b._env.elapsed) + sum(
        n * e for n, e in zip(lengths, b._env.episode))


@needs_box2d
def test_gymnasium_backend_matches_the_raw_env_by_hand():
    """The Python backend: same repeat, end and reset-step rules, gymnasium's own env (seeded
    seed + i) stepped by hand; discrete actions go through gymnasium's own discrete env."""
    import gymnasium

    for env_id, kw in (("CarRacing-v3", {}), ("CarRacingDiscrete-v3", {"continuous": False})):
        discrete = bool(kw)
        env = make_env(env_id, 1, seed=5, backend="gymnasium", car_max_steps=6, car_grey=False)
        assert env.info.obs_shape == (12, 96, 96)
        raw = gymnasium.make("CarRacing-v3", max_episode_steps=6, **kw)
        ref = _ByHand(raw, 4, grey=False, reset_obs=raw.reset(seed=5)[0], reset=lambda raw=raw: raw.reset()[0])
        obs = env.reset()
        np.testing.assert_array_equal(obs[0], ref.obs())
        rng = np.random.default_rng(1)
        for t in range(5):  # 6 env steps: 4 + 2, reset, 4 + 2
            a = _actions(rng, 1, discrete)
            s = env.step(a)
            ref.step_fn = (lambda x, raw=raw, k=int(a[0]): raw.step(k)) if discrete else (lambda x, raw=raw: raw.step(x))
            rew, te, tr = ref.agent_step(_sent(a, False)[0] if not discrete else None)
            assert s.raw_reward[0] == pytest.approx(rew, abs=1e-4)
            assert (bool(s.terminated[0]), bool(s.truncated[0])) == (te, tr)
            np.testing.assert_array_equal(s.obs[0], ref.obs(), err_msg=f"{env_id} step {t}")
        assert [bool(x) for x in (s.truncated[0],)] == [True]
        env.close()
        raw.close()


@needs_box2d
def test_discrete_table_is_gymnasiums_discrete_env():
    """Each row of car.ACTIONS, sent to the continuous env, is exactly gymnasium's discrete action."""
    import gymnasium

    cont, disc = gymnasium.make("CarRacing-v3"), gymnasium.make("CarRacing-v3", continuous=False)
    oc, od = cont.reset(seed=3)[0], disc.reset(seed=3)[0]
    np.testing.assert_array_equal(oc, od)
    for k in [3, 3, 3, 1, 1, 0, 2, 2, 4, 3]:
        oc, rc, *_ = cont.step(car.ACTIONS[k])
        od, rd, *_ = disc.step(k)
        np.testing.assert_array_equal(oc, od)
        assert rc == rd
    cont.close(), disc.close()


def test_preprocessing_grey_and_rgb():
    rgb = np.random.default_rng(0).integers(0, 256, (2, 96, 96, 3), dtype=np.uint8)
    g = car.grey_frames(rgb)
    expect = np.floor(0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2] + 0.5)
    assert g.dtype == np.uint8 and np.abs(g.astype(int) - expect).max() <= 1
    assert (car.channels_first(rgb, False) == rgb.transpose(0, 3, 1, 2)).all()
    for grey, c in ((True, 4), (False, 12)):
        i = env_info("CarRacing-v3", "envpool", 4, grey)
        assert (i.obs_shape, i.obs_dtype, i.action_shape, i.action_low, i.action_high) == (
            (c, 96, 96), np.uint8, (3,), (-1.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    d = env_info("CarRacingDiscrete-v3", "envpool")
    assert d.discrete and d.num_actions == 5 and d.frame_skip == 4 and d.family == "car"
    with pytest.raises(EnvError, match="car-frame-skip"):
        env_info("CarRacing-v3", "envpool", 0)


@needs_box2d
def test_backends_agree_where_they_can():
    """envpool and gymnasium build different tracks from the same seed (std::mt19937 vs
    NumPy's generator) and draw differently (envpool resizes a larger canvas), so frames
    and tile rewards cannot agree. What can: spaces, the reward of a car that stands still
    (-0.1 per env step once the start tiles are paid), where episodes end and the reset steps."""
    a = make_env("CarRacing-v3", 1, seed=2, backend="envpool", car_max_steps=9)
    b = make_env("CarRacing-v3", 1, seed=2, backend="gymnasium", car_max_steps=9)
    assert a.info == env_info("CarRacing-v3", "envpool") and b.info.obs_shape == a.info.obs_shape
    oa, ob = a.reset(), b.reset()
    assert oa.shape == ob.shape and oa.dtype == ob.dtype
    still = np.zeros((1, 3), np.float32)
    for t in range(8):  # 9 env steps: 4 + 4 + 1, reset, 4 + 4 ...
        sa, sb = a.step(still), b.step(still)
        for f in ("terminated", "truncated", "game_over"):
            np.testing.assert_array_equal(getattr(sa, f), getattr(sb, f), err_msg=f"{f} at {t}")
        if t % 4 != 0:  # not an episode's first agent step (which pays the start tiles, track-dependent)
            assert sa.raw_reward[0] == pytest.approx(sb.raw_reward[0], abs=1e-4), t
    a.close(), b.close()


def test_conv_torso_and_fused_kernels_take_96x96():
    """The conv torso at 4x96x96 (23x23x16 -> 10x10x32 -> 256) with the Gaussian head: the
    one-call forward and backward (kernels/fused.py) are bit for bit the layer loop's (which
    test_net_grads.py checks against finite differences at other sizes), and the forward
    matches the float64 reference."""
    import reference as ref
    from fastasync.nets import make_net

    net = make_net((4, 96, 96), 3, head="gaussian")
    assert net.fused and net.layers[0].out_shape == (23, 23, 16) and net.layers[1].out_shape == (10, 10, 32)
    assert net.head_outputs == 7
    rs = np.random.default_rng(0)
    T, E = 2, 3
    theta = net.init_params(0)
    obs = rs.integers(0, 256, (T, E, 4, 96, 96), dtype=np.uint8)
    grads = [np.full(net.num_params, np.nan, np.float32) for _ in range(2)]
    one, layers = (net.workspace(T, E, theta, g) for g in grads)
    dout = rs.standard_normal((T * E, net.head_outputs)).astype(np.float32)
    outs = []
    for t in range(T):
        outs.append(net.forward(one, obs[t], t).copy())
        np.testing.assert_array_equal(outs[-1], net.forward_layers(layers, obs[t], t))
    for ws in (one, layers):
        net.dout(ws, T)[...] = dout
    net.backward(one, T)
    net.backward_layers(layers, T)
    assert np.isfinite(grads[0]).all()
    np.testing.assert_array_equal(grads[0], grads[1])
    expect = ref.net_forward_ref(net, theta.astype(np.float64), obs.reshape(T * E, 4, 96, 96))
    np.testing.assert_allclose(np.concatenate(outs), expect, rtol=1e-4, atol=1e-4)


def test_listed_and_bad_input_refused(tmp_path):
    assert {"CarRacing-v3", "CarRacingDiscrete-v3"} <= set(list_envs("envpool"))
    r = CliRunner().invoke(main, ["envs", "--backend", "envpool"])
    assert r.exit_code == 0 and "4x96x96  3-dim continuous actions in [-1, 1] x [0, 1] x [0, 1]" in r.output, r.output
    assert "CarRacingDiscrete-v3" in r.output and "5 discrete actions" in r.output
    base = ["train", "--threads", "1", "--frames", "8k", "--run-dir", str(tmp_path / "x")]
    for extra, words in ((["--env", "CarRacing-v3", "--car-frame-skip", "0"], "car-frame-skip"),
                         (["--env", "CarRacing-v3", "--algo", "nstep-q"], "CarRacingDiscrete-v3")):
        r = CliRunner().invoke(main, base + extra)
        assert r.exit_code == 2 and words in r.output and "Traceback" not in r.output, r.output
        assert len(r.output.strip().splitlines()) == 1, r.output
    assert not (tmp_path / "x").exists()


def test_gymnasium_backend_without_box2d_is_one_line(tmp_path, monkeypatch):
    import fastasync.envs as envs

    monkeypatch.setattr(car, "has_box2d", lambda: False)
    envs.catalog.cache_clear(), envs.env_info.cache_clear()
    try:
        r = CliRunner().invoke(main, ["train", "--env", "CarRacing-v3", "--backend", "gymnasium", "--threads", "1",
                                      "--frames", "8k", "--run-dir", str(tmp_path / "x")])
    finally:
        envs.catalog.cache_clear(), envs.env_info.cache_clear()
    assert r.exit_code == 2 and "box2d" in r.output and "Traceback" not in r.output, r.output
    assert len(r.output.strip().splitlines()) == 1 and not (tmp_path / "x").exists()


@pytest.mark.slow
def test_short_training_run_resume_refusal_and_eval(tmp_path):
    """A3C's Gaussian head on the pixels (defaults of the family), 1 thread, 2 envs; a resume
    onto another family is refused naming both; eval plays a whole game; the discrete
    variant trains with n-step Q."""
    run = tmp_path / "car"
    r = CliRunner().invoke(main, ["train", "--env", "CarRacing-v3", "--threads", "1", "--envs-per-thread", "2",
                                  "--frames", "2k", "--progress-every-s", "0.5", "--run-dir", str(run)])
    assert r.exit_code == 0, r.output
    assert "a3c on CarRacing-v3" in r.output
    import json

    from fastasync import config

    cfg = json.loads((run / "config.json").read_text())
    family = config.defaults_for("CarRacing-v3", "a3c")
    assert family["bounded_mean"] and family["frame_center"] == "auto"
    for name, value in family.items():  # config.json records the family's values (auto: measured)
        got = cfg[config.flat_fields()[name][0]][name]
        assert 0 < got < 1 if value == "auto" else got == value, (name, got)
    r = CliRunner().invoke(main, ["train", "--resume", str(run), "--env", "Pong-v5", "--frames", "4k"])
    assert r.exit_code == 2 and "CarRacing-v3 (env family car)" in r.output and "Pong-v5 (env family atari)" in r.output
    gif = tmp_path / "car.gif"
    r = CliRunner().invoke(main, ["eval", str(run), "--episodes", "1", "--gif", str(gif)])
    assert r.exit_code == 0, r.output
    from PIL import Image

    im = Image.open(gif)  # the whole game's grey frames, one per agent step (1000 env steps / repeat 4)
    assert im.size == (192, 192) and im.n_frames > 200
    import fastasync

    policy = fastasync.load(str(run))
    env = policy.env(render_mode="rgb_array")
    obs, _ = env.reset(seed=3)
    assert obs.shape == (4, 96, 96) and env.action_space.shape == (3,)
    for _ in range(5):
        obs, r, term, trunc, _ = env.step(policy.act(obs))
        assert obs.shape == (4, 96, 96) and isinstance(r, float)
    assert env.render().shape == (96, 96, 3)
    env.close()
    r = CliRunner().invoke(main, ["train", "--env", "CarRacingDiscrete-v3", "--algo", "nstep-q", "--threads", "1",
                                  "--envs-per-thread", "2", "--frames", "1k", "--run-dir", str(tmp_path / "q")])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "q" / "config.json").read_text())["algo"]["bounded_mean"] is False  # no Gaussian
    # a resume cannot switch the Gaussian mean: the weights mean something else through tanh
    r = CliRunner().invoke(main, ["train", "--resume", str(run), "--linear-mean", "--frames", "4k"])
    assert r.exit_code == 2 and "--resume cannot change it" in r.output, r.output
