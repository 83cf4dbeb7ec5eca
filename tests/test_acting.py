"""The one acting path (fastasync/acting.py): the Actor against the code it replaced.

Each test compares the actor with the plain sequence of calls the learner, ``evaluate`` and
``Policy`` each made before (a forward workspace of their own, the sampling kernel, the
normaliser), on odd sizes: 7 envs, 5-dimensional observations, 3 actions, t_max 4.
"""

import numpy as np
import pytest

from fastasync.acting import Actor
from fastasync.algorithms import make_algorithm
from fastasync.algorithms._q import EVAL_EPSILON
from fastasync.config import build
from fastasync.kernels import rng as krng
from fastasync.kernels.rng import seed_state
from fastasync.nets import make_net
from fastasync.obsnorm import ObsNorm

E, D, A, T = 7, 5, 3, 4
LOW, HIGH = (-1.0, -0.2), (1.0, 0.3)  # a Gaussian policy's bounds: narrow, so some samples get clipped


def _info(gaussian=False):
    from fastasync.envs import EnvInfo

    if gaussian:
        return EnvInfo("Test-v0", "test", (D,), np.dtype(np.float32), 0, False, 1, False, (2,), "classic", LOW, HIGH)
    return EnvInfo("Test-v0", "test", (D,), np.dtype(np.float32), A, True, 1, False, (), "classic")


def _agent_parts(algo_name, gaussian=False, lstm=0, seed=1):
    """(net, algo, theta): a small net with weights large enough that every choice matters."""
    info = _info(gaussian)
    cfg = build({"env": "CartPole-v1", "algo": algo_name, "eps_anneal_frames": "1000"})
    head = "gaussian" if gaussian else ("a3c" if algo_name.startswith("a3c") else "q")
    net = make_net((D,), 2 if gaussian else A, head, hidden=(8,), lstm=lstm)
    theta = net.init_params(seed)
    theta += np.random.default_rng(seed).uniform(-0.5, 0.5, theta.shape).astype(np.float32)
    return net, make_algorithm(algo_name, cfg, net, info), theta


def _obs(k, rs=None):
    rs = rs or np.random.default_rng(100 + k)
    return rs.standard_normal((E, D)).astype(np.float32)


class OldStepwise:
    """What evaluate() and Policy.act did before the Actor: their own 2-slot workspace, slot
    0 only, the recurrent state carried with begin_segment, the kernels called directly."""

    def __init__(self, net, theta, seed):
        self.net, self.ws, self.rng = net, net.workspace(2, E, theta), seed_state(seed)

    def out(self, obs, reset):
        if self.net.recurrent:
            self.net.begin_segment(self.ws)
            self.ws.reset_in[0] = reset
        return self.net.forward(self.ws, obs, 0)


# -- the same actions as the old paths -------------------------------------------------------------


@pytest.mark.parametrize("lstm", [0, 6])
@pytest.mark.parametrize("greedy", [False, True])
def test_softmax_actions_are_the_old_paths(lstm, greedy):
    net, algo, theta = _agent_parts("a3c-lstm" if lstm else "a3c", lstm=lstm)
    actor, old = Actor(net, algo, E, theta, seed_state(3)), OldStepwise(net, theta, 3)
    for k in range(6):
        reset = np.arange(E) == k % E if k else np.zeros(E, bool)  # one env starts a new episode per step
        got = actor.act(_obs(k), reset, greedy).copy()
        out, want = old.out(_obs(k), reset), np.zeros(E, np.int32)
        if greedy:
            krng.argmax_rows(out, A, want)
        else:
            krng.sample_softmax(out, A, old.rng, want)
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(actor.rng_state, old.rng)  # the same draws, no more


@pytest.mark.parametrize("lstm", [0, 6])
def test_gaussian_samples_and_clipped_sends_are_the_old_paths(lstm):
    net, algo, theta = _agent_parts("a3c-lstm" if lstm else "a3c", gaussian=True, lstm=lstm)
    actor, old = Actor(net, algo, E, theta, seed_state(4)), OldStepwise(net, theta, 4)
    clipped = 0
    for k in range(6):
        greedy = k % 3 == 2
        sent = actor.act(_obs(k), False, greedy)
        out = old.out(_obs(k), False)
        want, want_sent = np.zeros((E, 2), np.float32), np.zeros((E, 2), np.float32)
        if greedy:
            krng.gaussian_greedy(out, algo.mean_bound, algo.low, algo.high, want, want_sent)
        else:
            krng.sample_gaussian(out, algo.VAR_MIN, algo.mean_bound, algo.low, algo.high, old.rng, want, want_sent)
        np.testing.assert_array_equal(actor.actions[0], want)  # unclipped: what the loss reads
        np.testing.assert_array_equal(sent, want_sent)  # clipped: what the env is sent
        assert sent is actor.sent
        clipped += int((want != want_sent).sum())
    assert clipped > 0  # the bounds were met, so the two buffers were both checked


def test_q_methods_greedy_evaluation_and_annealed_epsilon_are_the_old_paths():
    net, algo, theta = _agent_parts("nstep-q")
    algo.set_final_epsilon(0.1)
    assert algo.final_epsilon == 0.1 and algo.epsilon(500) == pytest.approx(0.55)
    stepwise, old = Actor(net, algo, E, theta, seed_state(5)), OldStepwise(net, theta, 5)
    for k in range(6):
        greedy = k % 2 == 0
        got = stepwise.act(_obs(k), False, greedy).copy()
        out, want = old.out(_obs(k), False), np.zeros(E, np.int32)
        if greedy:
            krng.argmax_rows(out, A, want)
        else:  # eval without --greedy: epsilon 0.05
            krng.epsilon_greedy(out, EVAL_EPSILON, old.rng, want)
        np.testing.assert_array_equal(got, want)
    # the learner's behaviour policy: epsilon annealed by the frame count
    learner = Actor(net, algo, E, theta.copy(), seed_state(6), slots=T + 1, grad=net.layout.zeros(), training=True)
    ws, state = net.workspace(T + 1, E, theta.copy()), seed_state(6)
    learner.begin()
    for t, frames in enumerate((0, 300, 500, 2000)):
        got = learner.choose(learner.forward(_obs(t), t, frames, 0), t, frames)
        want = np.zeros(E, np.int32)
        krng.epsilon_greedy(net.forward(ws, _obs(t), t), algo.epsilon(frames), state, want)
        np.testing.assert_array_equal(got, want)
        assert np.shares_memory(got, learner.actions) and np.array_equal(learner.actions[t], want)


def test_sarsa_takes_the_action_picked_at_the_bootstrap_slot_first():
    net, algo, theta = _agent_parts("onestep-sarsa")
    algo.set_final_epsilon(0.5)
    actor = Actor(net, algo, E, theta, seed_state(7), slots=T + 1, grad=net.layout.zeros(), training=True)
    actor.begin()
    for t in range(T):
        actor.choose(actor.forward(_obs(t), t, 100, 0), t, 100)
    assert not actor.carrying
    actor.bootstrap(_obs(T), 100, 0)
    a_T, state = actor.actions[T].copy(), actor.rng_state.copy()
    actor.begin()
    got = actor.choose(actor.forward(_obs(T + 1), 0, 100, 0), 0, 100)
    np.testing.assert_array_equal(got, a_T)  # a_T is taken, as its target assumed
    np.testing.assert_array_equal(actor.rng_state, state)  # and nothing was drawn for it


# -- recurrent state, observation statistics, buffers -----------------------------------------------


def test_lstm_state_resets_only_for_the_env_whose_episode_ended():
    net, algo, theta = _agent_parts("a3c-lstm", lstm=6)
    actor = Actor(net, algo, E, theta, seed_state(8))
    for k in range(3):
        actor.act(_obs(k))
    ended = np.zeros(E, bool)
    ended[3] = True
    actor.begin()
    out = actor.forward(_obs(9), 0, 0, ended).copy()
    fresh = Actor(net, algo, E, theta, seed_state(8))
    fresh.begin()
    first = fresh.forward(_obs(9), 0, 0, False)
    np.testing.assert_allclose(out[3], first[3], rtol=1e-6, atol=1e-7)  # env 3 starts from a zero state
    others = np.flatnonzero(~ended)
    assert np.all(np.abs(out[others] - first[others]).max(axis=1) > 1e-4)  # the others carry theirs
    # Policy.reset: every env restarts
    actor.begin()
    np.testing.assert_allclose(actor.forward(_obs(9), 0, 0, True), first, rtol=1e-6, atol=1e-7)


def test_observation_normalisation_is_frozen_and_reads_the_statistics_only():
    net, algo, theta = _agent_parts("a3c", gaussian=True)
    stats = ObsNorm(D, True)
    stats.merge((3.0 + 2.0 * np.random.default_rng(0).standard_normal((50, D))).astype(np.float32))
    before = [stats.count.copy(), stats.mean.copy(), stats.m2.copy()]
    actor = Actor(net, algo, E, theta, seed_state(9), slots=T + 1, obsnorm=stats, training=True)
    obs = _obs(0) * 20.0  # far enough out that some entries are clipped at +-10
    actor.begin()
    actor.choose(actor.forward(obs, 2, 0, 0), 2, 0)
    want = np.clip((obs - stats.mean) / np.sqrt(stats.var + 1e-8), -10, 10)
    np.testing.assert_allclose(actor.obs_in[2], want, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(actor.obs_raw[2], obs)  # the raw copy the learner merges
    assert (np.abs(want) == 10).any()
    for a, b in zip(before, (stats.count, stats.mean, stats.m2)):
        np.testing.assert_array_equal(a, b)  # acting never writes the shared statistics
    mean = actor.obs_mean.copy()
    stats.merge(np.full((9, D), 50.0, np.float32))  # another learner's segment
    actor.forward(obs, 3, 0, 0)
    np.testing.assert_array_equal(actor.obs_mean, mean)  # frozen until the next freeze
    np.testing.assert_allclose(actor.obs_in[3], actor.obs_in[2])
    actor.freeze()
    assert not np.array_equal(actor.obs_mean, mean)


def test_a_non_finite_observation_raises_the_callers_error_naming_env_and_slot():
    net, algo, theta = _agent_parts("a3c")

    class Bad(Exception):
        pass

    actor = Actor(net, algo, E, theta, seed_state(0), slots=T + 1, obsnorm=ObsNorm(D, False),
                  nonfinite=lambda obs, env, t, frames: Bad(env, t, frames))
    obs = _obs(0)
    obs[5, 1] = np.nan
    with pytest.raises(Bad) as exc:
        actor.forward(obs, 2, 1234, 0)
    assert exc.value.args == (5, 2, 1234)


def test_buffers_are_allocated_once():
    net, algo, theta = _agent_parts("a3c-lstm", gaussian=True, lstm=6)
    actor = Actor(net, algo, E, theta, seed_state(1), slots=T + 1, grad=net.layout.zeros(), obsnorm=ObsNorm(D, True),
                  training=True)
    held = [actor.ws, actor.actions, actor.sent, actor.obs_in, actor.obs_raw, actor.obs_mean, actor.obs_istd,
            actor.ws.reset_in]
    for _ in range(3):  # three segments
        actor.freeze()
        actor.begin()
        for t in range(T):
            sent = actor.choose(actor.forward(_obs(t), t, 0, np.zeros(E, np.uint8)), t, 0)
            assert sent is actor.sent
        actor.bootstrap(_obs(T), 0, np.zeros(E, np.uint8))
    now = [actor.ws, actor.actions, actor.sent, actor.obs_in, actor.obs_raw, actor.obs_mean, actor.obs_istd,
           actor.ws.reset_in]
    assert all(a is b for a, b in zip(held, now))
    net, algo, theta = _agent_parts("a3c")
    discrete = Actor(net, algo, E, theta, seed_state(1))
    first = discrete.act(_obs(0))
    assert discrete.act(_obs(1)) is first and np.shares_memory(first, discrete.actions)


# -- the three callers act through it -------------------------------------------------------------------


def _agent(algo_name="a3c", lstm=0):
    from fastasync.evaluate import Agent

    net, algo, theta = _agent_parts(algo_name, lstm=lstm)
    cfg = build({"env": "CartPole-v1", "algo": algo_name})
    return Agent(cfg, net, theta, _info(), "envpool", 1000, {}), algo


def test_policy_acts_through_the_actor():
    from fastasync.api import Policy

    agent, algo = _agent("a3c-lstm", lstm=6)
    policy = Policy(agent, seed=11)
    actor, old = Actor(agent.net, algo, E, agent.theta, seed_state(11)), OldStepwise(agent.net, agent.theta, 11)
    for k in range(4):
        if k == 2:
            policy.reset()
        batch = _obs(k)
        got = policy.act(batch)
        assert isinstance(policy._actors[E], Actor) and not np.shares_memory(got, policy._actors[E].actions)
        np.testing.assert_array_equal(got, actor.act(batch, k == 2))
        want = np.zeros(E, np.int32)
        krng.sample_softmax(old.out(batch, k == 2), A, old.rng, want)
        np.testing.assert_array_equal(got, want)


def test_evaluate_acts_through_the_actor(monkeypatch):
    from fastasync import acting
    from fastasync.envs import env_info
    from fastasync.evaluate import Agent, evaluate

    info = env_info("CartPole-v1", "envpool")
    cfg = build({"env": "CartPole-v1", "algo": "a3c"})
    net = make_net(info.obs_shape, info.num_actions, "a3c", hidden=(8,))
    theta = net.init_params(2)
    agent = Agent(cfg, net, theta, info, "envpool", 0, {})
    seen = []
    act = acting.Actor.act

    def spy(self, obs, reset=False, greedy=False, frames=0):
        sent = act(self, obs, reset, greedy, frames)
        seen.append((obs.copy(), np.array(reset, copy=True), greedy, sent.copy()))
        return sent

    monkeypatch.setattr(acting.Actor, "act", spy)
    res = evaluate(agent, episodes=3, seed=13)
    monkeypatch.undo()
    assert len(res["scores"]) == 3 and len(seen) >= 9  # 3 envs, one game each, at least 9 steps in CartPole
    replay = Actor(net, make_algorithm("a3c", cfg, net, info), 3, theta, seed_state(13))
    for obs, reset, greedy, sent in seen:
        np.testing.assert_array_equal(replay.act(obs, reset, greedy), sent)


class RandomEnv:
    """E envs of random 5-vectors; every fifth step ends env 2's episode. Records what it is sent."""

    def __init__(self):
        from fastasync.envs import EnvInfo

        self.info = EnvInfo("Random-v0", "test", (D,), np.dtype(np.float32), A, True, 1, False, (), "classic")
        self.num_envs = E
        self.rs = np.random.default_rng(0)
        self.t = 0
        self.obs, self.sent = [], []

    def reset(self):
        self.obs.append(self.rs.standard_normal((E, D)).astype(np.float32))
        return self.obs[-1]

    def step(self, actions):
        from fastasync.envs import Step

        self.sent.append(actions.copy())
        self.t += 1
        done = np.zeros(E, bool)
        done[2] = self.t % 5 == 0
        self.obs.append(self.rs.standard_normal((E, D)).astype(np.float32))
        f = np.zeros(E, np.float32)
        return Step(obs=self.obs[-1], reward=f, terminated=done, truncated=np.zeros(E, bool), game_over=done,
                    raw_reward=f)

    def close(self):
        pass


def test_the_learner_acts_through_the_actor():
    from fastasync.learner import Learner
    from fastasync.trainer import SharedState

    net, algo, theta = _agent_parts("a3c-lstm", lstm=6)
    cfg = build({"env": "CartPole-v1", "algo": "a3c-lstm", "t_max": str(T), "envs_per_thread": str(E)})
    env = RandomEnv()
    shared = SharedState(theta.copy(), net.layout.zeros(), total_frames=10**6, frames=0, lr=1e-3)
    learner = Learner(0, shared, net, algo, env, cfg, seed_state(21))
    assert learner.seg.actions is learner.actor.actions and learner.ws is learner.actor.ws
    learner.obs = env.reset()
    old = OldStepwise(net, theta, 21)  # one segment, as evaluation would act on the same frames
    learner.segment()
    reset = np.zeros(E, bool)
    for t in range(T):
        want = np.zeros(E, np.int32)
        krng.sample_softmax(old.out(env.obs[t], reset), A, old.rng, want)
        np.testing.assert_array_equal(env.sent[t], want)
        np.testing.assert_array_equal(learner.seg.actions[t], want)
