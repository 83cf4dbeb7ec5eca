"""state.assemble: the one assembly of a run's shared state, which the one-machine Trainer and
the Ray driver both start from (fresh and resumed), so that they cannot drift apart."""

from __future__ import annotations

import numpy as np
import pytest

from fastasync import checkpoint, state
from fastasync.config import build, resolve, resume_config


def _cfg(tmp_path, **kw):
    opts = dict(env="CartPole-v1", threads=2, envs_per_thread=3, frames="50k", run_dir=str(tmp_path / "run"),
                pin_threads=False, backend="gymnasium")
    opts.update(kw)
    return resolve(build(opts))


@pytest.fixture
def calls(monkeypatch):
    """Every call of state.assemble, wherever it is made from."""
    seen = []
    real = state.assemble

    def spy(cfg, resume=None, nodes=None):
        st = real(cfg, resume, nodes)
        seen.append((nodes, st))
        return st

    monkeypatch.setattr(state, "assemble", spy)
    return seen


def _ray_trainer(monkeypatch, cfg, resume=None):
    """The Ray driver's trainer without a Ray cluster (its constructor asks Ray only for the CPUs)."""
    from fastasync.distributed import driver

    monkeypatch.setattr(driver, "require_ray", lambda: object())
    monkeypatch.setattr(driver, "cluster_cpus", lambda ray: 64)
    return driver.RayTrainer(cfg, resume=resume, out=lambda msg: None)


@pytest.mark.parametrize("algo", ["a3c", "nstep-q"])
def test_trainer_and_ray_driver_start_from_the_same_assembly(tmp_path, monkeypatch, calls, algo):
    from fastasync.trainer import Trainer

    cfg = _cfg(tmp_path, algo=algo)
    tr = Trainer(cfg, out=lambda msg: None)
    ray_cfg = resolve(build(dict(cfg.to_dict()["env"], **{"algo": algo, "threads": 2, "nodes": 2, "frames": "50k",
                                                          "run_dir": str(tmp_path / "ray"), "envs_per_thread": 3})))
    rt = _ray_trainer(monkeypatch, ray_cfg)
    try:
        assert [n for n, _ in calls] == [None, 2]  # both built by state.assemble, the driver for its 2 nodes
        one, ray = calls[0][1], calls[1][1]
        assert tr.state is one and rt.state is ray
        np.testing.assert_array_equal(tr.shared.theta, rt.state.theta)  # the same seed: the same initial parameters
        np.testing.assert_array_equal(rt.state.rms_g, 0)
        assert ray.rng_states.shape == (4, 2)  # a generator per learner thread of every node
        np.testing.assert_array_equal(one.rng_states, ray.rng_states[:2])  # (the Q methods then draw from theirs)
        assert tr.head == rt.head == ("q" if algo == "nstep-q" else "a3c")
        if algo == "nstep-q":
            np.testing.assert_array_equal(tr.shared.target, rt.state.target)
            assert tr.shared.target is not tr.shared.theta
        else:
            assert tr.shared.target is None and rt.state.target is None
        assert tr.shared.obsnorm is not None  # vector observations: statistics beside theta
    finally:
        for lr in tr.learners:
            lr.env.close()


def test_the_lr_warmup_reaches_the_threads_schedule(tmp_path):
    """--lr-warmup-frames is in the schedule the learner threads read (a Ray node builds the same
    Trainer from the run's config, and its driver reports state.annealed_lr with the same value)."""
    from fastasync.trainer import Trainer

    cfg = _cfg(tmp_path, lr=1e-3, lr_warmup_frames="10k")
    tr = Trainer(cfg, out=lambda msg: None)
    try:
        s = tr.shared
        assert s.lr_at(0) == 0.0
        assert s.lr_at(5_000) == pytest.approx(0.5e-3 * (1 - 5_000 / 50_000))
        assert s.lr_at(20_000) == pytest.approx(state.annealed_lr(1e-3, 20_000, 50_000))
    finally:
        for lr in tr.learners:
            lr.env.close()


def test_a_resumed_run_restores_the_same_state_on_one_machine_and_on_ray(tmp_path, monkeypatch, calls):
    from fastasync.trainer import Trainer

    tr = Trainer(_cfg(tmp_path, algo="nstep-q", threads=1), out=lambda msg: None)
    tr.prepare_run_dir()
    tr.shared.theta += 0.5
    tr.shared.rms_g += 2.0
    tr.shared.target -= 1.0
    tr.shared.frames = 12_345
    tr.learners[0].algo.set_final_epsilon(0.3)
    assert tr.save_checkpoint(games=7)
    for lr in tr.learners:
        lr.env.close()
    ck = checkpoint.load(str(tmp_path / "run"))
    again = Trainer(resume_config(ck, {"threads": 2}), resume=ck, out=lambda msg: None)
    rt = _ray_trainer(monkeypatch, resume_config(ck, {"threads": 1, "nodes": 2}), resume=ck)
    try:
        for st in (again.state, rt.state):
            np.testing.assert_array_equal(st.theta, ck["theta"])
            np.testing.assert_array_equal(st.rms_g, ck["rms_g"])
            np.testing.assert_array_equal(st.target, ck["extra"]["target"])
            assert (st.frames, st.games, st.resume_path) == (12_345, 7, ck["path"])
            np.testing.assert_array_equal(st.final_epsilon, [0.3])
        assert again.learners[0].algo.final_epsilon == 0.3  # the thread keeps the epsilon it drew
        # the checkpoint had one thread: the second is seeded from the seed and the frame count
        rows = again.state.rng_for(2)  # what the learners were given (the Q methods then draw from them)
        np.testing.assert_array_equal(rows[0], ck["rng_states"][0])
        np.testing.assert_array_equal(rows[1], state.seed_states(0 + 12_345, 2, start=1)[0])
        assert rt.state.rng_states.shape == (1, 2)  # the driver hands the stored rows on (the nodes seed the rest)
    finally:
        for lr in again.learners:
            lr.env.close()


def test_the_budget_check_names_the_workers_of_either_way_of_running(tmp_path):
    cfg = _cfg(tmp_path, frames="50", envs_per_thread=8)
    with pytest.raises(ValueError, match=r"\(2 threads x 8 envs x t_max 5 x frame skip 1\), more than --frames 50"):
        state.check_budget(cfg, 1)
    with pytest.raises(ValueError, match=r"\(3 nodes x 2 threads x 8 envs"):
        state.check_budget(cfg, 1, nodes=3)
    state.check_budget(_cfg(tmp_path, frames="80"), 1)  # 2 x 3 x 5 x 1 = 30 frames a round: fits


def test_frame_center_auto_is_measured_at_the_start_not_by_resolve(tmp_path, monkeypatch):
    from fastasync import envs

    measured = []
    monkeypatch.setattr(envs, "frame_mean", lambda env_cfg, seed: measured.append(seed) or 0.25)
    cfg = _cfg(tmp_path, env="Pong-v5", frame_center="auto", seed=3, backend="envpool")
    assert cfg.algo.frame_center == "auto" and not measured  # resolve steps no env
    assert state.measure_frame_center(cfg).algo.frame_center == 0.25 and measured == [3]
    fixed = _cfg(tmp_path, env="Pong-v5", frame_center=0.1, backend="envpool")
    assert state.measure_frame_center(fixed) is fixed and measured == [3]


def test_extra_holds_the_observation_statistics_and_the_q_methods_state(tmp_path):
    st = state.assemble(_cfg(tmp_path, algo="a3c", obs_norm=True))
    st.obsnorm.merge(np.ones((5, 4), np.float32))
    ex = st.extra()
    assert ex["obs_count"][0] == 5 and "target" not in ex
    q = state.assemble(_cfg(tmp_path, algo="nstep-q"))
    ex = q.extra(q.target, [0.1, 0.5])
    assert {"target", "final_epsilon"} <= set(ex) and ex["target"] is not q.target
    np.testing.assert_array_equal(ex["target"], q.target)
    np.testing.assert_array_equal(ex["final_epsilon"], [0.1, 0.5])
