"""n-step returns and the learner's episode bookkeeping against hand-computed arrays."""

import threading

import numpy as np
import pytest

from fastasync.kernels.returns import gather_column, nstep_returns, step_weights


def _run(r, term, trunc, reset, values, gamma):
    out = np.full(r.shape, np.nan, np.float32)
    nstep_returns(
        np.asarray(r, np.float32),
        np.asarray(term, np.uint8),
        np.asarray(trunc, np.uint8),
        np.asarray(reset, np.uint8),
        np.asarray(values, np.float32),
        gamma,
        out,
    )
    return out


def test_nstep_returns_hand_computed():
    # columns: env0 no boundary; env1 terminal at t=1 then auto-reset step t=2;
    # env2 truncated at t=0 (bootstrap from V(s_1) = 10), auto-reset step at t=1.
    r = np.array([[1, 1, 1], [0, 1, 0], [0, 0, 1], [1, 1, 0]], float)
    term = np.array([[0, 0, 0], [0, 1, 0], [0, 0, 0], [0, 0, 0]])
    trunc = np.array([[0, 0, 1], [0, 0, 0], [0, 0, 0], [0, 0, 0]])
    reset = np.array([[0, 0, 0], [0, 0, 1], [0, 1, 0], [0, 0, 0]])
    values = np.array([[9, 9, 9], [9, 9, 10], [9, 9, 9], [9, 9, 9], [2, 4, 0]], float)
    got = _run(r, term, trunc, reset, values, 0.5)
    expected = np.array(
        [
            [1.25, 1.5, 6.0],  # env0: 1 + .5*.5 ; env1: 1 + .5*1 ; env2: 1 + .5*10
            [0.5, 1.0, 0.0],  # env1 terminal: r only; env2 reset step: 0
            [1.0, 0.0, 1.0],  # env1 reset step
            [2.0, 3.0, 0.0],  # bootstrap: 1 + .5*2 ; 1 + .5*4 ; 0 + .5*0
        ]
    )
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)


def test_life_loss_is_terminal_for_training():
    # a life loss is a training terminal (no bootstrap) even though the game goes on
    r = np.array([[0.0], [1.0], [0.0]])
    got = _run(r, [[0], [1], [0]], [[0], [0], [0]], [[0], [0], [1]], [[5], [5], [5], [7]], 0.9)
    np.testing.assert_allclose(got[:, 0], [0.9, 1.0, 0.0], atol=1e-6)


def test_no_boundary_matches_discounted_sum():
    rng = np.random.default_rng(0)
    T, E, g = 7, 5, 0.97
    r = rng.normal(size=(T, E))
    v = rng.normal(size=(T + 1, E))
    z = np.zeros((T, E))
    got = _run(r, z, z, z, v, g)
    for t in range(T):
        want = sum(g ** (k - t) * r[k] for k in range(t, T)) + g ** (T - t) * v[T]
        np.testing.assert_allclose(got[t], want, rtol=1e-5)


def test_weights_and_value_column():
    reset = np.array([[0, 1], [1, 0]], np.uint8)
    w = np.zeros((2, 2), np.float32)
    step_weights(reset, 0.5, w)
    np.testing.assert_array_equal(w, [[0.5, 0.0], [0.0, 0.5]])
    out = np.arange(12, dtype=np.float32).reshape(4, 3)  # 2 slots x 2 envs, 3 columns
    vals = np.zeros((2, 2), np.float32)
    gather_column(out, 2, vals)
    np.testing.assert_array_equal(vals, [[2, 5], [8, 11]])


# -- the learner's bookkeeping with a scripted env -------------------------------------------


class ScriptedEnv:
    """An env batch of E=2 that plays a fixed script; obs are small float vectors."""

    def __init__(self, script):
        from fastasync.envs import EnvInfo

        self.info = EnvInfo("Scripted", "test", (3,), np.dtype(np.float32), 2, True, 4, False)
        self.num_envs = 2
        self.script = script
        self.t = 0
        self.actions = []

    def reset(self):
        return np.zeros((2, 3), np.float32)

    def step(self, actions):
        from fastasync.envs import Step

        self.actions.append(actions.copy())
        row = self.script[self.t % len(self.script)]
        self.t += 1
        b = lambda k: np.array(row[k], bool)  # noqa: E731
        return Step(
            obs=np.full((2, 3), self.t, np.float32),
            reward=np.clip(np.array(row["raw"], np.float32), -1, 1),
            terminated=b("term"),
            truncated=b("trunc"),
            game_over=b("over"),
            raw_reward=np.array(row["raw"], np.float32),
        )

    def close(self):
        pass


def _step(raw, term=(0, 0), trunc=(0, 0), over=(0, 0)):
    return dict(raw=raw, term=term, trunc=trunc, over=over)


def test_learner_true_score_sums_lives_and_masks_reset_steps():
    from fastasync.algorithms import make_algorithm
    from fastasync.config import build
    from fastasync.kernels.rng import seed_state
    from fastasync.learner import Learner
    from fastasync.nets import make_net
    from fastasync.trainer import SharedState

    # env0: reward 5, loses a life (terminated, not game over), reset step, reward 3, game over.
    # env1: reward 2, truncated (game over by time limit), reset step, then nothing.
    script = [
        _step([5, 2], trunc=(0, 1), over=(0, 1)),
        _step([0, 0], term=(1, 0)),
        _step([0, 0]),  # env0 reset step (after life loss), env1 reset step (after truncation)
        _step([3, 0], term=(1, 0), over=(1, 0)),
        _step([0, 0]),
    ]
    cfg = build({"t_max": 5, "envs_per_thread": 2, "env": "CartPole-v1"})
    env = ScriptedEnv(script)
    net = make_net((3,), 2, "a3c", (4,))
    shared = SharedState(net.init_params(0), net.layout.zeros(), total_frames=40, frames=0, lr=1e-3)
    learner = Learner(0, shared, net, make_algorithm("a3c", cfg, net, env.info), env, cfg, seed_state(0))
    learner.obs = env.reset()
    learner.segment()
    seg = learner.seg
    np.testing.assert_array_equal(seg.reset[:, 0], [0, 0, 1, 0, 1])
    np.testing.assert_array_equal(seg.reset[:, 1], [0, 1, 0, 0, 0])
    np.testing.assert_array_equal(seg.weight[:, 0], [0.5, 0.5, 0, 0.5, 0])
    games = sorted((g[2], g[3], g[4]) for g in shared.games)
    # env1's game: 2 points in 1 step; env0's game: 5 + 3 over two lives, 3 agent steps (reset step not counted)
    assert games == [(0, 2.0, 1), (0, 8.0, 3)]
    # frames the agent played: 10 env steps less the 3 auto-reset steps, x frame skip 4
    assert shared.frames == (5 * 2 - 3) * 4
    # the update moved the shared parameters and left them finite
    assert np.isfinite(shared.theta).all()
    assert not np.array_equal(shared.theta, net.init_params(0))


def test_lr_anneals_linearly_to_zero():
    from fastasync.trainer import SharedState

    s = SharedState(np.zeros(1, np.float32), np.zeros(1, np.float32), total_frames=1000, frames=0, lr=1.0)
    assert s.lr_at(0) == 1.0 and s.lr_at(250) == pytest.approx(0.75) and s.lr_at(1000) == 0.0
    assert s.lr_at(2000) == 0.0


def test_lr_warmup_ramps_from_zero_then_follows_the_annealing():
    from fastasync.state import annealed_lr
    from fastasync.trainer import SharedState

    s = SharedState(np.zeros(1, np.float32), np.zeros(1, np.float32), total_frames=1000, frames=0, lr=1.0,
                    lr_warmup_frames=100)
    assert s.lr_at(0) == 0.0
    assert s.lr_at(50) == pytest.approx(0.5 * 0.95)  # half the ramp, times the annealing at 50 frames
    assert s.lr_at(100) == pytest.approx(0.9) and s.lr_at(250) == pytest.approx(0.75)  # after it: unchanged
    assert s.lr_at(1000) == 0.0
    # the Ray driver reports the same schedule the threads use
    assert annealed_lr(1.0, 50, 1000, 100) == s.lr_at(50)
    assert annealed_lr(1.0, 50, 1000) == pytest.approx(0.95)


def test_shared_frame_counter_is_exact_under_threads():
    from fastasync.trainer import SharedState

    s = SharedState(np.zeros(1, np.float32), np.zeros(1, np.float32), total_frames=10, frames=0, lr=1.0)

    def add():
        for _ in range(20000):
            s.add_frames(1)

    th = [threading.Thread(target=add) for _ in range(4)]
    [t.start() for t in th]
    [t.join() for t in th]
    assert s.frames == 80000


def _record_reference(steps, E):
    """The learner's per-step bookkeeping written with NumPy (what record_step replaced)."""
    prev_done = np.zeros(E, bool)
    score, length = np.zeros(E), np.zeros(E, np.int64)
    rows, games = [], []
    for reward, term, trunc, raw, over in steps:
        reset = prev_done.astype(np.uint8)
        rows.append((reset, reward.copy(), term.astype(np.uint8), trunc.astype(np.uint8), reset.copy()))
        prev_done = term | trunc
        score += raw
        length += 1 - reset
        for e in np.flatnonzero(over):
            games.append((e, score[e], length[e]))
            score[e], length[e] = 0.0, 0
    return rows, games


def test_record_step_matches_numpy_bookkeeping():
    from fastasync.kernels.segment import record_step

    E, rng = 5, np.random.default_rng(3)
    steps = []
    for _ in range(300):
        term = rng.random(E) < 0.08
        trunc = ~term & (rng.random(E) < 0.03)
        over = (term & (rng.random(E) < 0.5)) | trunc  # life losses and real game ends
        raw = rng.choice([0.0, 0.0, 1.0, -1.0, 25.0], E).astype(np.float32)
        steps.append((np.sign(raw).astype(np.float32), term, trunc, raw, over))
    want_rows, want_games = _record_reference(steps, E)
    prev_done = np.zeros(E, bool)
    new_episode = np.zeros(E, np.uint8)
    score, length, ended = np.zeros(E), np.zeros(E, np.int64), np.zeros(E, np.int64)
    games = []
    for (reward, term, trunc, raw, over), want in zip(steps, want_rows):
        reset, rewards = np.full(E, 7, np.uint8), np.full(E, np.nan, np.float32)
        t_row, tr_row = np.full(E, 7, np.uint8), np.full(E, 7, np.uint8)
        n, any_trunc = record_step(reward, term, trunc, raw, over, prev_done, reset, rewards, t_row, tr_row,
                                   new_episode, score, length, ended)
        assert any_trunc == bool(trunc.any())
        for got, exp in zip((reset, rewards, t_row, tr_row, new_episode), want):
            assert np.array_equal(got, exp)
        assert list(ended[:n]) == list(np.flatnonzero(over))
        for e in ended[:n]:
            games.append((e, score[e], length[e]))
            score[e], length[e] = 0.0, 0
    assert len(games) == len(want_games) > 10
    for (e, s, n), (we, ws, wn) in zip(games, want_games):
        assert (e, n) == (we, wn) and s == pytest.approx(ws)
    assert any(s > 1 for _, s, _ in games)  # unclipped scores are summed, not signs
