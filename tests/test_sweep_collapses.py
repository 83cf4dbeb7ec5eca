"""bench/sweep_collapses.py: reads the trainer's own progress lines and says what stands out
in a sweep's trials that missed their target."""

import importlib.util
import json
import math
import os

import numpy as np
import pytest

from fastasync.stats import learning_summary, progress_line
from test_sweep import _fake_sweep

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_spec = importlib.util.spec_from_file_location("sweep_collapses", os.path.join(ROOT, "bench", "sweep_collapses.py"))
SC = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(SC)


def _a3c_line(frames, mean10, entropy, value_loss, grad):
    # diag sums: [w*policy loss, w*value loss, w*entropy, w, grad norm sum, updates]
    diag = np.array([0.0, value_loss * 10, entropy * 10, 10.0, grad * 4, 4.0])
    return progress_line(frames, 12_000_000, 9000.0, 100, mean10, 60.0, 600.0, learning_summary(diag, "a3c"))


def _q_line(frames, mean10, td, grad):
    diag = np.array([td * 10, 0.0, 0.0, 10.0, grad * 4, 4.0])
    return progress_line(frames, 12_000_000, 9000.0, 100, mean10, 60.0, 600.0, learning_summary(diag, "q"))


def test_progress_lines_of_the_trainer_are_read_back():
    text = "\n".join([
        "# 2026-12-07 03:00:00 fastasync train --config trial.toml",
        progress_line(20_000, 12_000_000, 9000.0, 0, math.nan, 2.0, 600.0),  # before any update
        _a3c_line(1_500_000, -20.5, 1.79, 0.031, 2.5),
        _a3c_line(3_250_000, -3.0, 0.9, 0.05, float("inf")),
        "saved checkpoint",
    ])
    p = SC.parse_progress(text)
    assert list(p["frames"]) == [20_000, 1_500_000, 3_250_000]
    assert math.isnan(p["mean10"][0]) and list(p["mean10"][1:]) == [-20.5, -3.0]
    assert math.isnan(p["entropy"][0]) and list(p["entropy"][1:]) == [1.79, 0.9]
    assert list(p["value_loss"][1:]) == [0.031, 0.05] and math.isinf(p["grad_norm"][2])
    assert np.isnan(p["td_loss"]).all()
    q = SC.parse_progress(_q_line(2_000_000, 1.0, 0.0123, 7.5))
    assert q["td_loss"][0] == 0.0123 and q["grad_norm"][0] == 7.5 and np.isnan(q["entropy"]).all()


def test_facts_and_verdicts_name_what_stands_out():
    lines = [_a3c_line(f * 1_000_000, 0.0, e, 0.05, g) for f, e, g in
             [(1, 1.79, 2.0), (2, 1.2, 2.1), (3, 0.05, 80.0), (4, 0.02, 2.2)]]
    facts = SC.learning_facts(SC.parse_progress("\n".join(lines)), num_actions=6)
    assert facts["entropy_first"] == 1.79 and facts["entropy_min"] == 0.02 and facts["entropy_last"] == 0.02
    assert facts["grad_max"] == 80.0 and facts["grad_median"] == pytest.approx(2.15) and facts["grad_last"] == 2.2
    assert facts["ln_a"] == pytest.approx(math.log(6)) and facts["value_loss_last"] == 0.05
    dead = [("conv1", 16, 0.25, 0.01, 0.0, True), ("conv2", 32, 0.9, 0.3, 0.1, True),
            ("head", 6, 0.0, 0.0, 0.2, False)]  # a linear head negative on every frame is not dead
    v = SC.verdict({"final_mean10": -21.0, "best_mean10": 19.0}, 18.0, facts, dead)
    assert v.startswith("reached 18, then fell to -21")
    assert "entropy collapsed to 0.02" in v and "gradient-norm spikes (largest 80" in v
    assert "conv1: 75% of its units dead" in v and "conv2" not in v and "head" not in v
    calm = SC.learning_facts(SC.parse_progress(_a3c_line(1_000_000, -20.0, 1.78, 0.01, 1.0)), 6)
    v = SC.verdict({"final_mean10": -20.0, "best_mean10": -19.5}, 18.0, calm, None)
    assert v == "never reached 18 (best -19.5); the policy stayed near uniform (entropy 1.78 of ln A 1.79)"
    assert SC.verdict({"final_mean10": math.nan, "best_mean10": math.nan}, 18.0, {}, None) == "no games"


def _sweep_dir(d, finals):
    """test_sweep's finished sweep (lr 1e-4, 1e-3, 1e-2; target 18), each trial with a train.log."""
    _fake_sweep(d, finals)
    for i, final in enumerate(finals):
        (d / f"trial-{i:03d}" / "train.log").write_text(_a3c_line(12_000, final, 1.0 + i, 0.01, 3.0 * (i + 1)) + "\n")
    return d


def test_report_lists_the_trials_below_the_target_and_writes_collapses_md(tmp_path, capsys):
    d = _sweep_dir(tmp_path / "sw", finals=(5.0, 19.0, -20.0))
    assert SC.main([str(d)]) == 0
    text = (d / "COLLAPSES.md").read_text()
    assert capsys.readouterr().out == text
    rows = [x for x in text.splitlines() if x.startswith("| trial-")]
    assert [r.split(" | ")[0] for r in rows] == ["| trial-000", "| trial-002"]  # by lr; trial-001 reached 18
    assert "| 0.0001 | 5.0 | 5.0 | 5.0 | - | 1/1/1 | 0.01 | 3/3/3 | - | 0: +5.0 | never reached 18 (best 5) |" in rows[0]
    assert "2 of 3 finished trials" in text
    assert SC.main([str(d), "--all", "--target", "0"]) == 0
    text = (d / "COLLAPSES.md").read_text()
    assert len([x for x in text.splitlines() if x.startswith("| trial-")]) == 3 and "against 0" in text


def test_bad_input_one_line_exit_2(tmp_path, capsys):
    assert SC.main([str(tmp_path / "nowhere")]) == 2
    assert SC.main([str(tmp_path)]) == 2
    d = _sweep_dir(tmp_path / "sw", finals=(5.0, 19.0, -20.0))
    state = json.loads((d / "sweep.json").read_text())
    state["targets"] = []
    (d / "sweep.json").write_text(json.dumps(state))
    assert SC.main([str(d)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 3 and all(x.startswith("error: ") for x in err), err
    assert "no --target" in err[2] and not (d / "COLLAPSES.md").exists()


def test_census_marks_only_relu_layers_as_able_to_die():
    """bench/dead_units.py's census on the Atari net: conv1, conv2 and fc end in a ReLU; the
    head is linear, so its share of ever-positive outputs is reported but never called dead."""
    from fastasync.nets import make_net

    spec = importlib.util.spec_from_file_location("dead_units", os.path.join(ROOT, "bench", "dead_units.py"))
    du = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(du)
    net = make_net((4, 84, 84), 6, head="a3c")
    frames = np.random.default_rng(0).integers(0, 256, (5, 4, 84, 84)).astype(np.uint8)
    rows = du.census(net, net.init_params(0), frames)
    assert [(r[0], r[5]) for r in rows] == [("conv1", True), ("conv2", True), ("fc", True), ("head", False)]
    assert all(0.0 <= r[2] <= 1.0 for r in rows)
    theta = net.init_params(0).copy()
    theta[:] = -1.0  # every weight and bias negative: each ReLU layer is dead, the head is not
    v = SC.verdict({"final_mean10": -21.0, "best_mean10": -21.0}, 18.0, {}, du.census(net, theta, frames))
    assert "conv1: 100% of its units dead" in v and "head" not in v


def test_threads_with_their_own_epsilon_are_told_apart():
    """A Q method's two threads, one finishing at epsilon 0.5 and one at 0.01: the run's
    mean sits near 0 while the nearly greedy thread's own games are at +19; the verdict says so."""
    rng = np.random.default_rng(0)
    threads = [0, 1] * 100
    scores = [float(-15 + rng.integers(-2, 3)) if k == 0 else float(19 + rng.integers(-1, 2)) for k in threads]
    eps = np.array([0.5, 0.01])
    rows = SC.thread_scores({"thread": threads, "score": scores}, eps)
    assert [(k, e, n) for k, e, n, _m in rows] == [(0, 0.5, 100), (1, 0.01, 100)]
    assert rows[0][3] == pytest.approx(np.mean(scores[0::2][-50:])) and rows[1][3] >= 18
    assert SC._threads_text(rows).startswith("0 (eps 0.5): -1")
    v = SC.verdict({"final_mean10": 2.0, "best_mean10": 9.0}, 18.0, {}, None, rows)
    assert v == f"never reached 18 (best 9); thread 1 (final epsilon 0.01) alone at {rows[1][3]:+.1f} over its last 50 games"
    assert SC.verdict({"final_mean10": 18.5, "best_mean10": 19.0}, 18.0, {}, None, rows) == "ended at 18.5, at or above 18"
    assert SC._threads_text(SC.thread_scores({"thread": [0, 0], "score": [1.0, 3.0]})) == "0: +2.0"
    v = SC.verdict({"final_mean10": 2.0, "best_mean10": 9.0, "eval_mean": 19.5, "eval_policy": "greedy"}, 18.0, {}, None)
    assert v == "never reached 18 (best 9); the eval of its final checkpoint (greedy) at +19.5"
    same = SC.thread_scores({"thread": threads, "score": scores})  # no epsilons (A3C): chance, not named
    assert SC.verdict({"final_mean10": 2.0, "best_mean10": 9.0}, 18.0, {}, None, same) == "never reached 18 (best 9)"
