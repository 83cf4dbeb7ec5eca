"""The CLI: cheap --help, clear errors with exit code 2 and nothing written, eval/plot/envs."""

import os
import subprocess
import sys
import tempfile

import numpy as np
import pytest
from click.testing import CliRunner

from fastasync.cli import main


def invoke(args):
    return CliRunner().invoke(main, args)


def test_help_does_not_import_numba_or_envpool():
    code = (
        "import sys; from fastasync.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "try:\n    main(['train', '--help'])\nexcept SystemExit:\n    pass\n"
        "bad = [m for m in ('numba', 'envpool', 'gymnasium', 'matplotlib') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "train" in out.stdout and "--frames" in out.stdout


def test_console_script_help():
    out = subprocess.run(["fastasync", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "eval" in out.stdout


def _bad(args, needle):
    runner = CliRunner()
    # an empty working directory of its own (Click's isolated_filesystem is deprecated)
    with tempfile.TemporaryDirectory() as d:
        cwd = os.getcwd()
        os.chdir(d)
        try:
            before = sorted(os.listdir(d))
            r = runner.invoke(main, args)
            after = sorted(os.listdir(d))
        finally:
            os.chdir(cwd)
        assert r.exit_code == 2, r.output
        assert needle in r.output, r.output
        assert "Traceback" not in r.output
        err_lines = [line for line in r.output.splitlines() if line.startswith("Error:")]
        assert len(err_lines) == 1
        assert after == before, "bad input must write nothing"


@pytest.mark.parametrize(
    "args,needle",
    [
        (["train", "--env", "Pongg-v5"], "Pong-v5"),  # close matches listed
        (["train", "--env", "CartPole-v1", "--threads", "0"], "--threads must be >= 1"),
        (["train", "--env", "CartPole-v1", "--frames", "ten"], "frames"),
        (["train", "--env", "CartPole-v1", "--frames", "-5"], "frames"),
        (["train", "--env", "CartPole-v1", "--algo", "ppo"], "unknown algo 'ppo'"),
        (["train", "--env", "CartPole-v1", "--gamma", "1.5"], "--gamma"),
        (["train", "--env", "CartPole-v1", "--envs-per-thread", "0"], "--envs-per-thread"),
        # sanity limits instead of a machine that hangs building 100,000 env batches
        (["train", "--env", "CartPole-v1", "--threads", "100000"], "--threads must be <= 1024"),
        (["train", "--env", "CartPole-v1", "--envs-per-thread", "100000"], "--envs-per-thread must be <= 1024"),
        # a segment longer than the budget would overshoot it many times over (was 1.5M frames for 8k)
        (["train", "--env", "CartPole-v1", "--frames", "8k", "--t-max", "100000"], "one update of every thread takes"),
        (["train", "--env", "CartPole-v1", "--frames", "1e16", "--t-max", "100000000000"], "not enough memory"),
        # the Gaussian head's options on a softmax policy would do nothing
        (["train", "--env", "CartPole-v1", "--bounded-mean"], "--bounded-mean applies to the Gaussian policy"),
        (["train", "--env", "CartPole-v1", "--algo", "nstep-q", "--capg"], "--capg applies to the Gaussian policy"),
        (["train", "--resume", "nowhere"], "no checkpoint"),
        (["train", "--config", "missing.toml"], "cannot read config file"),
        (["eval", "nowhere"], "no checkpoint"),
        (["eval", "nowhere", "--episodes", "0"], "--episodes"),
        (["plot", "nowhere"], "no episodes.csv"),
    ],
)
def test_bad_input_clear_error_exit_2_nothing_written(args, needle):
    _bad(args, needle)


def test_bad_toml_and_unknown_key(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("frames = [")
    _bad(["train", "--config", str(bad)], "not valid TOML")
    unk = tmp_path / "unk.toml"
    unk.write_text('env = "CartPole-v1"\nlearning_rate = 3\n')
    _bad(["train", "--config", str(unk)], "unknown option 'learning_rate'")


@pytest.fixture(scope="module")
def cartpole_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "cp"
    r = invoke(["train", "--env", "CartPole-v1", "--threads", "1", "--frames", "20k", "--run-dir", str(run)])
    assert r.exit_code == 0, r.output
    return run


def test_config_file_and_cli_override(tmp_path):
    cfgf = tmp_path / "c.toml"
    cfgf.write_text('[env]\nenv = "CartPole-v1"\n[run]\nframes = "8k"\nthreads = 1\n[optim]\nlr = 0.003\n')
    run = tmp_path / "r"
    r = invoke(["train", "--config", str(cfgf), "--lr", "0.001", "--rms-eps", "0.05", "--run-dir", str(run)])
    assert r.exit_code == 0, r.output
    import json

    cfg = json.loads((run / "config.json").read_text())
    assert cfg["env"]["env"] == "CartPole-v1" and cfg["run"]["frames"] == 8000
    assert cfg["optim"]["lr"] == 0.001 and cfg["run"]["threads"] == 1
    from fastasync.config import build

    assert cfg["optim"]["rms_eps"] == 0.05 and cfg["optim"]["grad_clip"] == build({"env": "CartPole-v1"}).optim.grad_clip


def test_truncated_checkpoint_is_rejected(cartpole_run, tmp_path):
    data = (cartpole_run / "checkpoint.npz").read_bytes()
    bad = tmp_path / "trunc.npz"
    bad.write_bytes(data[: len(data) // 2])
    _bad(["eval", str(bad)], "cannot read checkpoint")
    _bad(["train", "--resume", str(bad)], "cannot read checkpoint")


def test_mismatched_checkpoint_is_rejected(cartpole_run, tmp_path):
    from fastasync import checkpoint

    ck = checkpoint.load(str(cartpole_run))
    wrong = tmp_path / "wrong.npz"
    checkpoint.save(str(wrong), theta=ck["theta"][:-3], rms_g=ck["rms_g"][:-3], frames=ck["frames"],
                    wall_s=0, games=0, rng_states=ck["rng_states"], config=ck["config"],
                    layout_signature=[["head.W", [3, 64]]])
    _bad(["eval", str(wrong)], "different network")
    _bad(["train", "--resume", str(wrong), "--frames", "1M"], "different network")
    # resuming with an option that changes the env (and the net) is rejected too
    _bad(["train", "--resume", str(cartpole_run), "--env", "Acrobot-v1", "--frames", "1M"], "cannot switch")


def test_resume_needs_more_frames(cartpole_run):
    _bad(["train", "--resume", str(cartpole_run)], "pass a larger --frames")


def test_eval_plot_envs(cartpole_run, tmp_path):
    r = invoke(["eval", str(cartpole_run), "--episodes", "3"])
    assert r.exit_code == 0, r.output
    assert "3 games (sampled from the policy)" in r.output and "mean" in r.output
    r = invoke(["eval", str(cartpole_run / "checkpoint.npz"), "--episodes", "2", "--greedy"])
    assert r.exit_code == 0 and "(greedy)" in r.output
    assert not (cartpole_run / "eval.json").exists()  # only --save writes
    r = invoke(["eval", str(cartpole_run / "checkpoint.npz"), "--episodes", "3", "--greedy", "--save"])
    assert r.exit_code == 0 and "eval.json" in r.output, r.output
    from fastasync.evaluate import read_eval
    from fastasync.sweep import checkpoint_counts

    frames = checkpoint_counts(str(cartpole_run))[0]
    ev = read_eval(str(cartpole_run), frames)
    assert ev["games"] == 3 and len(ev["scores"]) == 3 and ev["policy"] == "greedy" and ev["frames"] == frames
    assert ev["mean"] == sum(ev["scores"]) / 3 and read_eval(str(cartpole_run), frames + 1) is None  # of another
    _bad(["eval", str(cartpole_run), "--gif", str(tmp_path / "x.gif")], "--gif needs an env with image observations")
    out = tmp_path / "curve.png"
    r = invoke(["plot", str(cartpole_run), "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    r = invoke(["envs", "--backend", "envpool"])
    assert r.exit_code == 0 and "Pong-v5" in r.output and "CartPole-v1" in r.output


def test_eval_says_how_a_q_method_acts(tmp_path):
    """--sample for a Q method is epsilon-greedy with a small epsilon, and eval says so."""
    run = tmp_path / "q"
    r = invoke(["train", "--env", "CartPole-v1", "--algo", "nstep-q", "--threads", "1", "--frames", "8k",
                "--run-dir", str(run)])
    assert r.exit_code == 0, r.output
    r = invoke(["eval", str(run), "--episodes", "2", "--sample"])
    assert r.exit_code == 0 and "2 games (epsilon-greedy, epsilon 0.05)" in r.output, r.output
    r = invoke(["eval", str(run), "--episodes", "2"])
    assert r.exit_code == 0 and "2 games (greedy)" in r.output, r.output


def pong_checkpoint(run_dir, frames):
    """An untrained Pong A3C checkpoint in run_dir, written without training."""
    from fastasync import checkpoint
    from fastasync.config import build, resolve
    from fastasync.nets import make_net
    from fastasync.state import measure_frame_center

    cfg = measure_frame_center(resolve(build({"env": "Pong-v5", "threads": 1, "run_dir": str(run_dir)})))
    net = make_net((4, 84, 84), 6, "a3c")
    theta = net.init_params(0)
    checkpoint.save(str(run_dir / "checkpoint.npz"), theta=theta, rms_g=np.zeros_like(theta), frames=frames, wall_s=0,
                    games=0, rng_states=np.zeros((1, 2), np.uint64), config=cfg.to_dict(),
                    layout_signature=net.layout.signature())


def test_eval_pong_gif(tmp_path):
    """eval plays full Atari games and writes an animated GIF of the first one."""
    pong_checkpoint(tmp_path, frames=0)
    gif = tmp_path / "pong.gif"
    r = invoke(["eval", str(tmp_path), "--episodes", "1", "--gif", str(gif)])
    assert r.exit_code == 0, r.output
    assert "1 games" in r.output
    from PIL import Image

    im = Image.open(gif)
    assert im.n_frames > 100


def test_fresh_run_never_overwrites_an_existing_run(cartpole_run):
    before = (cartpole_run / "checkpoint.npz").read_bytes()
    r = invoke(["train", "--env", "CartPole-v1", "--frames", "8k", "--run-dir", str(cartpole_run)])
    assert r.exit_code == 2 and "already holds a run" in r.output and "--resume" in r.output
    assert (cartpole_run / "checkpoint.npz").read_bytes() == before


def test_run_dir_that_is_a_file_and_npy_checkpoint(tmp_path):
    f = tmp_path / "afile"
    f.write_text("x")
    _bad(["train", "--env", "CartPole-v1", "--run-dir", str(f)], "not a directory")
    npy = tmp_path / "x.npy"
    np.save(npy, np.zeros(3))
    _bad(["eval", str(npy)], "not a fastasync checkpoint")
    _bad(["train", "--resume", str(npy), "--frames", "1M"], "not a fastasync checkpoint")


def test_resume_cannot_switch_game(tmp_path):
    pong_checkpoint(tmp_path, frames=10)
    # SpaceInvaders also has 6 actions: the net would fit, but it is another game
    _bad(["train", "--resume", str(tmp_path), "--env", "SpaceInvaders-v5", "--frames", "1M"], "cannot switch")
