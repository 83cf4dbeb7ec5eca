"""`fastasync plot` with several runs: one figure, a legend, seeds grouped into a median and spread."""

import json

import numpy as np
from click.testing import CliRunner

from fastasync.cli import main
from fastasync.config import build, resolve
from fastasync.plot import group_runs


def _run(path, seed, lr=None, games=60):
    """A run directory with a config.json and an episodes.csv, as a run writes them."""
    path.mkdir()
    opts = {"env": "CartPole-v1", "threads": 1, "seed": seed, "run_dir": str(path)}
    if lr is not None:
        opts["lr"] = lr
    (path / "config.json").write_text(json.dumps(resolve(build(opts)).to_dict()))
    rng = np.random.default_rng(seed)
    rows = ["frames,wall_s,thread,score,length"]
    for i in range(games):
        score = min(500, 10 + 5 * i + int(rng.integers(0, 20)))
        rows.append(f"{(i + 1) * 1000 + seed * 7},{i * 0.5:.2f},0,{score},{score}")
    (path / "episodes.csv").write_text("\n".join(rows) + "\n")
    return path


def test_plot_two_seeds_and_another_lr(tmp_path):
    a, b = _run(tmp_path / "s1", 1), _run(tmp_path / "s2", 2)
    c = _run(tmp_path / "lr", 3, lr=1e-3)
    groups = group_runs([str(p / "episodes.csv") for p in (a, b, c)])
    assert [len(m) for _, m in groups] == [2, 1]
    assert groups[0][0] == "a3c on CartPole-v1 (lr 0.002), 2 seeds"
    assert groups[1][0] == "a3c on CartPole-v1 (lr 0.001)"
    out = tmp_path / "both.png"
    r = CliRunner().invoke(main, ["plot", str(a), str(b), str(c), "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # two runs, default output in the working directory; a missing one is the usual one-line error
    r = CliRunner().invoke(main, ["plot", str(a), str(tmp_path / "none")])
    assert r.exit_code == 2 and "no episodes.csv at" in r.output


def test_max_frames_cuts_runs_of_different_lengths_to_one_stretch(tmp_path):
    """--max-frames draws the games that ended within it: a long run beside short ones (a
    proof that went on to 40M beside seeds that stopped at their target) shares their axis;
    its curve there is the same rolling mean, not one restarted at the cut."""
    from fastasync.plot import _curve

    a, b = _run(tmp_path / "s1", 1, games=60), _run(tmp_path / "s2", 2, games=20)
    f, m = _curve(str(a / "episodes.csv"), 10, max_frames=20_500)
    full_f, full_m = _curve(str(a / "episodes.csv"), 10)
    assert f.max() <= 20_500 and len(f) == 20 and np.array_equal(m, full_m[:20]) and full_f.max() > 50_000
    out = tmp_path / "cut.png"
    r = CliRunner().invoke(main, ["plot", str(a), str(b), "--max-frames", "20k", "-o", str(out)])
    assert r.exit_code == 0 and out.stat().st_size > 1000, r.output
    r = CliRunner().invoke(main, ["plot", str(a), "--max-frames", "30k", "-o", str(tmp_path / "one.png")])
    assert r.exit_code == 0, r.output
    for bad, needle in (("ten", "--max-frames: cannot read 'ten' as a number of frames"),
                        ("0", "--max-frames: the number of frames must be positive"),
                        ("500", "no game ended within the first 500 frames")):
        r = CliRunner().invoke(main, ["plot", str(a), str(b), "--max-frames", bad, "-o", str(tmp_path / "x.png")])
        assert r.exit_code == 2 and needle in r.output and "Traceback" not in r.output, r.output


def test_plot_two_runs_default_output(tmp_path, monkeypatch):
    a, b = _run(tmp_path / "s1", 1), _run(tmp_path / "s2", 2)
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(main, ["plot", str(a), str(b)])
    assert r.exit_code == 0 and "wrote curves.png" in r.output, r.output
    assert (tmp_path / "curves.png").stat().st_size > 1000


def test_a_run_from_before_an_option_existed_is_a_seed_of_the_same_experiment(tmp_path):
    """A config.json written before an option was added (Pong seed 0's lacks the Ray and
    observation options) counts with that option's default: still one experiment with the
    seeds that record it; a label lists at most 4 differing options."""
    a, b = _run(tmp_path / "s1", 1), _run(tmp_path / "s2", 2)
    cfg = json.loads((a / "config.json").read_text())
    for name in ("nodes", "sync_every_s", "obs_norm", "reward_scale", "node_restarts"):
        for sec in cfg.values():
            sec.pop(name, None)
    (a / "config.json").write_text(json.dumps(cfg))
    groups = group_runs([str(p / "episodes.csv") for p in (a, b)])
    assert [len(m) for _, m in groups] == [2]
    c = _run(tmp_path / "many", 3)
    cfg = json.loads((c / "config.json").read_text())
    cfg["optim"].update(lr=0.01, rms_eps=0.1, rms_alpha=0.9)
    cfg["algo"].update(entropy=0.02, gamma=0.9)
    (c / "config.json").write_text(json.dumps(cfg))
    label = group_runs([str(p / "episodes.csv") for p in (a, c)])[1][0]
    assert label.count(",") == 4 and label.endswith(", ...)"), label
