"""Videos (fastasync/video.py): the encoder, the score overlay, the recorder, the screens of
each family (make_env's ``screen`` hook), ``eval --video`` and ``train --video-every``.

The recorded game must be the game eval plays and scores: each family's eval test checks the
recorded games' scores against eval's, the video's frames against the games' lengths x the
frame skip, and the same games played without a recorder (the hook changes nothing).
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from click.testing import CliRunner

from fastasync import video
from fastasync.cli import main

pytestmark = pytest.mark.skipif(not video.importlib.util.find_spec("imageio_ffmpeg"),
                                reason='needs imageio-ffmpeg: pip install -e ".[video]"')


def invoke(args):
    return CliRunner().invoke(main, args, catch_exceptions=False)


def untrained_checkpoint(run_dir, **options):
    """An untrained agent's checkpoint in ``run_dir`` (a run's config for ``options``), written
    without training: its parameters as a fresh run starts them."""
    from fastasync import checkpoint
    from fastasync.algorithms import build_net
    from fastasync.config import build, resolve
    from fastasync.envs import env_info, view_options
    from fastasync.state import measure_frame_center

    os.makedirs(run_dir, exist_ok=True)
    cfg = measure_frame_center(resolve(build({"threads": 1, "run_dir": str(run_dir), **options})))
    info = env_info(cfg.env.env, cfg.env.backend, **view_options(cfg.env))
    net = build_net(cfg, info)
    theta = net.init_params(0)
    extra = {}
    if info.vector_obs and cfg.env.obs_norm:  # statistics of one observation: mean 0, variance 1
        d = int(np.prod(info.obs_shape))
        extra = {"obs_count": np.ones(1), "obs_mean": np.zeros(d), "obs_m2": np.ones(d)}
    checkpoint.save(os.path.join(run_dir, "checkpoint.npz"), theta=theta, rms_g=np.zeros_like(theta), frames=0,
                    wall_s=0, games=0, rng_states=np.zeros((1, 2), np.uint64), config=cfg.to_dict(),
                    layout_signature=net.layout.signature(), extra=extra)
    return str(run_dir)


def recorded_and_plain(path, out, episodes, seed=7, **make_env_options):
    """eval's games with a video of them, and the same games played without a recorder (the
    gymnasium backend, one env, as --video plays them)."""
    from fastasync.evaluate import evaluate, load_agent

    agent = load_agent(path, backend="gymnasium")
    res = evaluate(agent, episodes=episodes, seed=seed, recorder=video.recorder_for(agent, str(out)))
    plain = evaluate(agent, episodes=episodes, seed=seed, max_envs=1)
    return agent, res, plain


def check_recording(agent, res, plain, out, shape):
    """The recorded games are eval's: same scores, frames = length x frame skip, in the file."""
    v = res["video"]
    assert v["path"] == os.path.abspath(out)
    assert v["scores"] == list(res["scores"])  # the score drawn at the end of each game is eval's
    assert v["game_frames"] == [int(n) * agent.info.frame_skip for n in res["lengths"]]
    assert video.frame_count(str(out)) == v["frames"] == sum(v["game_frames"])
    np.testing.assert_array_equal(res["scores"], plain["scores"])  # recording changed nothing in the games
    np.testing.assert_array_equal(res["lengths"], plain["lengths"])
    f = video.read_frame(str(out), v["frames"] // 2)
    assert f.shape == shape
    assert np.abs(f.astype(int) - f[..., [1, 2, 0]]).mean() > 1  # colour, not grey
    assert not [n for n in os.listdir(os.path.dirname(out)) if ".tmp-" in n]  # the temp file is gone


# --------------------------------------------------------------------------- the parts


def test_writer_streams_to_a_temp_file_and_renames_it(tmp_path):
    out = tmp_path / "v.mp4"
    out.write_bytes(b"old")
    w = video.VideoWriter(str(out), 30)
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (21, 30, 3), np.uint8) for _ in range(7)]  # an odd side: padded
    for f in frames:
        w.write(f)
    assert out.read_bytes() == b"old"  # nothing replaced until the video is whole
    assert w.close() == 7
    assert video.frame_count(str(out)) == 7
    assert video.read_frame(str(out), 3).shape == (22, 30, 3)
    assert sorted(os.listdir(tmp_path)) == ["v.mp4"]
    w = video.VideoWriter(str(tmp_path / "gone.mp4"), 30)
    w.write(frames[0])
    w.abort()
    assert sorted(os.listdir(tmp_path)) == ["v.mp4"]
    with pytest.raises(ValueError, match="H, W, 3"):
        video.VideoWriter(str(tmp_path / "x.mp4"), 30).write(np.zeros((4, 4), np.uint8))


def test_overlay_draws_the_score_in_the_top_left_corner():
    frame = np.full((210, 160, 3), 100, np.uint8)
    out = video.ScoreOverlay().draw(frame, "score -3")
    assert (frame == 100).all()  # a copy
    changed = np.argwhere((out != 100).any(-1))
    assert changed[:, 0].max() < 30 and changed[:, 1].max() < 100  # the corner only
    assert out.max() > 200 and out[changed[:, 0], changed[:, 1]].min() <= 50  # white text on a darkened box
    assert [video.score_text(s) for s in (21.0, -0.0123, 812.4, 1234.5678)] == ["21", "-0.0123", "812.4", "1234.57"]


def test_recorder_pads_a_step_cut_short_and_keeps_games_apart(tmp_path):
    rec = video.GameRecorder(str(tmp_path / "r.mp4"), 60, 4)
    screen = lambda v: rec.screen(np.full((64, 96, 3), v, np.uint8))  # noqa: E731
    for _ in range(4):
        screen(10)
    rec.step(1.0, False)
    screen(20)  # the game ends at the second frame of the step: held for the other 3
    screen(30)
    rec.step(2.0, True)
    for _ in range(4):
        screen(40)
    rec.step(-1.0, True)  # a second game of one step
    v = rec.close()
    assert v["scores"] == [3.0, -1.0] and v["game_frames"] == [8, 4] and v["frames"] == 12
    assert video.frame_count(v["path"]) == 12
    last_of_game_1 = video.read_frame(v["path"], 7)
    assert abs(int(last_of_game_1[-1, -1, 0]) - 30) <= 4  # the held frame (away from the overlay)


def test_atari_screen_hook_gives_every_emulator_frame():
    from fastasync.envs import make_env, screen_fps

    screens = []
    env = make_env("Pong-v5", 2, seed=1, backend="gymnasium", screen=screens.append)
    env.reset()
    env.step(np.zeros(2, np.int32))
    assert len(screens) == 4 and screens[0].shape == (210, 160, 3) and screens[0].dtype == np.uint8
    env.close()
    assert screen_fps("Pong-v5") == 60 and screen_fps("CartPole-v1") == 50 and screen_fps("HalfCheetah-v4") == 20
    with pytest.raises(ValueError, match="gymnasium backend"):
        make_env("Pong-v5", 1, seed=1, backend="envpool", screen=screens.append)


def test_without_the_package_video_says_how_to_install_and_exits_2(tmp_path, monkeypatch):
    real = video.importlib.util.find_spec
    monkeypatch.setattr(video.importlib.util, "find_spec", lambda n, *a: None if n == "imageio_ffmpeg" else real(n, *a))
    out = tmp_path / "o.mp4"
    r = invoke(["eval", str(tmp_path / "no-run"), "--video", str(out)])
    assert r.exit_code == 2 and "pip install" in r.output and ".[video]" in r.output, r.output
    assert len(r.output.strip().splitlines()) == 1 and not out.exists()
    r = invoke(["train", "--env", "CartPole-v1", "--video-every", "10k", "--run-dir", str(tmp_path / "run")])
    assert r.exit_code == 2 and ".[video]" in r.output and not (tmp_path / "run").exists(), r.output
    r = invoke(["eval", str(tmp_path / "no-run"), "--video", str(out), "--backend", "envpool"])
    assert r.exit_code == 2 and "gymnasium backend" in r.output


def test_mujoco_without_offscreen_opengl_is_one_line_and_exit_2(tmp_path, monkeypatch):
    monkeypatch.setattr(video, "_gl_works", lambda backend: (False, f"cannot start {backend}"))
    monkeypatch.setattr(video, "_GL", {})
    monkeypatch.delenv("MUJOCO_GL", raising=False)
    r = invoke(["train", "--env", "HalfCheetah-v4", "--video-every", "10k", "--run-dir", str(tmp_path / "run")])
    assert r.exit_code == 2, r.output
    assert r.output.count("\n") == 1 and "EGL nor OSMESA" in r.output and "cannot start osmesa" in r.output
    assert not (tmp_path / "run").exists()


def test_video_every_is_a_frame_count_and_off_by_default(tmp_path):
    from fastasync.config import ConfigError, RunConfig, build

    assert RunConfig().video_every == 0
    assert build({"env": "CartPole-v1", "video_every": "10k"}).run.video_every == 10_000
    assert build({"env": "CartPole-v1", "video_every": 0}).run.video_every == 0
    with pytest.raises(ConfigError, match="video-every"):
        build({"env": "CartPole-v1", "video_every": "-1"})


# --------------------------------------------------------------------------- eval --video, per family


@pytest.mark.slow
def test_eval_video_atari(tmp_path):
    """Two Pong games (the first cut at 600 agent steps) of an untrained agent: the recorded
    scores are eval's, 4 frames an agent step, ALE's 210x160 RGB screen at 60 frames/s."""
    run = untrained_checkpoint(tmp_path / "run", env="Pong-v5", max_episode_frames=2400)
    out = tmp_path / "pong.mp4"
    agent, res, plain = recorded_and_plain(run, out, episodes=2)
    check_recording(agent, res, plain, out, (210, 160, 3))
    assert res["video"]["fps"] == 60 and len(res["scores"]) == 2
    r = invoke(["eval", run, "--episodes", "1", "--video", str(tmp_path / "cli.mp4")])
    assert r.exit_code == 0 and "wrote" in r.output and "frames at 60 frames/s" in r.output, r.output
    assert video.frame_count(str(tmp_path / "cli.mp4")) > 0


@pytest.mark.slow
def test_eval_video_vizdoom(tmp_path):
    """HealthGathering: the engine's 320x240 screen every tic (35/s), status bar included; the
    tics run one at a time while recording and the game is the same."""
    pytest.importorskip("vizdoom")
    run = untrained_checkpoint(tmp_path / "run", env="HealthGathering-v1")
    out = tmp_path / "doom.mp4"
    agent, res, plain = recorded_and_plain(run, out, episodes=1)
    check_recording(agent, res, plain, out, (240, 320, 3))
    assert res["video"]["fps"] == 35


@pytest.mark.slow
def test_eval_video_carracing(tmp_path, monkeypatch):
    """CarRacing: gymnasium's 600x400 render every env step of the repeat (50/s); the episode
    shortened to 60 env steps (15 agent steps)."""
    pytest.importorskip("Box2D")
    import functools

    import fastasync.envs as envs

    monkeypatch.setattr(envs, "make_env", functools.partial(envs.make_env, car_max_steps=60))
    run = untrained_checkpoint(tmp_path / "run", env="CarRacing-v3")
    out = tmp_path / "car.mp4"
    agent, res, plain = recorded_and_plain(run, out, episodes=1)
    check_recording(agent, res, plain, out, (400, 600, 3))
    assert res["video"]["fps"] == 50 and res["video"]["frames"] == 60


@pytest.mark.slow
def test_eval_video_mujoco(tmp_path):
    """MuJoCo's own offscreen renderer (480x480) where EGL or OSMesa starts here."""
    pytest.importorskip("mujoco")
    try:
        video.select_mujoco_gl()
    except video.VideoError as exc:
        pytest.skip(f"no offscreen OpenGL here: {exc}")
    run = untrained_checkpoint(tmp_path / "run", env="InvertedPendulum-v4")
    out = tmp_path / "mujoco.mp4"
    agent, res, plain = recorded_and_plain(run, out, episodes=1)
    check_recording(agent, res, plain, out, (480, 480, 3))
    assert res["video"]["fps"] == 25  # InvertedPendulum-v4: 1 / (0.02 s x 2)


# --------------------------------------------------------------------------- train --video-every


@pytest.mark.slow
def test_video_every_on_cartpole(tmp_path):
    """One video per multiple of N frames the run passes, in RUN_DIR/videos and TensorBoard;
    a 1-thread run learns exactly what it learns without them."""
    pytest.importorskip("tensorboard")
    import fastasync

    plain = fastasync.train(env="CartPole-v1", frames="20k", threads=1, seed=3, run_dir=str(tmp_path / "plain"),
                            quiet=True)
    lines = []
    run = fastasync.train(env="CartPole-v1", frames="20k", threads=1, seed=3, run_dir=str(tmp_path / "video"),
                          video_every="8k", tensorboard=True, out=lines.append)
    assert run.config.run.video_every == 8_000
    names = sorted(os.listdir(tmp_path / "video" / "videos"), key=lambda n: int(n[7:-4]))
    assert names == [f"frames-{k * 8_000}.mp4" for k in range(1, run.frames // 8_000 + 1)]  # 8k and 16k
    said = [ln for ln in lines if ln.startswith("video: ")]
    assert len(said) == len(names)
    for name, line in zip(names, said):  # one game, frame skip 1: its length in frames
        steps = int(line.split(", ")[-1].split()[0].replace(",", ""))
        assert video.frame_count(str(tmp_path / "video" / "videos" / name)) == steps
    theta = [np.load(tmp_path / d / "checkpoint.npz")["theta"] for d in ("plain", "video")]
    assert plain.frames == run.frames and np.array_equal(*theta)

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tmp_path / "video"), size_guidance={"images": 0, "scalars": 0})
    acc.Reload()
    assert [e.step for e in acc.Scalars("video/score")] == [8_000, 16_000]
    gifs = acc.Images("video/game")
    assert [e.step for e in gifs] == [8_000, 16_000] and gifs[0].encoded_image_string[:6] == b"GIF89a"
