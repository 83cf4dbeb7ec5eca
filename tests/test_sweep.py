"""`fastasync sweep`: parsing and sampling of the search space, the summary (pure functions),
bad input refused in one line before anything is written, the scatter and `fastasync plot
SWEEP_DIR`; then (slow) real CartPole sweeps: three tiny trials with their files, a rerun that
starts no trial, another search space refused, Ctrl-C mid-sweep and the same command going
on, and the trials on a local Ray cluster, one of whose task processes is killed."""

import csv
import json
import math
import os
import re
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from click.testing import CliRunner

import fastasync
from fastasync import sweep as S
from fastasync.cli import main
from fastasync.errors import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _sweep(*args):
    return CliRunner().invoke(main, ["sweep", *args], catch_exceptions=False)


# -- parsing ---------------------------------------------------------------------------------


def test_distributions_give_values_of_the_option_type():
    d = S.parse_dist("lr", "loguniform:1e-4:1e-2")
    assert (d.kind, d.lo, d.hi, d.log, d.text) == ("loguniform", 1e-4, 1e-2, True, "loguniform:0.0001:0.01")
    d = S.parse_dist("seed", "range:0:5")
    assert (d.lo, d.hi) == (0, 5) and isinstance(d.lo, int)
    assert S.parse_dist("entropy", "choice:0.01, 0.001").values == (0.01, 0.001)
    assert S.parse_dist("frames", "list:10M,500k").values == (10_000_000, 500_000)  # counts, as --frames reads them
    assert S.parse_dist("capg", "choice:true,false").values == (True, False)
    assert S.parse_dist("algo", "choice:a3c,nstep-q").values == ("a3c", "nstep-q")
    assert S.parse_dist("t-max", "uniform:2:40").kind == "uniform"  # a whole-number option, drawn and rounded


def test_a_colon_in_an_env_id_is_no_distribution_but_a_word_before_a_number_is():
    space, fixed = S.split_options({"env": "my_envs:Corridor-v0", "lr": "normal:0:1", "seed": "3",
                                    "algo": "choice:a3c,nstep-q"})
    assert fixed == {"env": "my_envs:Corridor-v0", "seed": "3"}
    assert space == {"lr": "normal:0:1", "algo": "choice:a3c,nstep-q"}
    with pytest.raises(ConfigError, match="unknown distribution 'normal'"):
        S.parse_space(space)


@pytest.mark.parametrize("name, text, needle", [
    ("lr", "normal:0:1", "unknown distribution 'normal'"),
    ("seed", "range:5:5", "the range is empty"),
    ("seed", "range:5:2", "the range is empty"),
    ("lr", "uniform:0.1:0.01", "LO must be < HI"),
    ("lr", "loguniform:1e-2:1e-2", "LO must be < HI"),
    ("lr", "loguniform:0:1e-2", "loguniform needs bounds > 0"),
    ("lr", "loguniform:-1:1e-2", "loguniform needs bounds > 0"),
    ("lr", "uniform:-1:1", "--lr must be > 0"),
    ("lr", "loguniform:a:b", "two finite numbers"),
    ("lr", "uniform:0:inf", "two finite numbers"),
    ("lr", "range:1:3", "range draws whole numbers"),
    ("seed", "uniform:0.5:3", "whole numbers"),
    ("frames", "loguniform:1e6:1e7", "--frames takes choice: or list:"),
    ("capg", "uniform:0:1", "--capg takes choice: or list:"),
    ("seed", "choice:a,b", "invalid value 'a' for seed"),
    ("entropy", "choice:", "choice needs values"),
    ("entropy", "list:0.1,,0.2", "list needs values"),
    ("foo", "choice:1,2", "--foo is not an option of fastasync train"),
    ("run_dir", "choice:a,b", "--run-dir names the sweep directory"),
    ("threads", "range:1:4", "--threads is the sweep's"),
    ("nodes", "range:1:4", "training on Ray"),
])
def test_bad_distributions_say_why_in_one_line(name, text, needle):
    with pytest.raises(ConfigError) as e:
        S.parse_dist(name, text)
    assert needle in str(e.value) and "\n" not in str(e.value)


# -- sampling --------------------------------------------------------------------------------


def _space(**texts):
    return S.parse_space(texts)


def test_sampling_is_reproducible_per_trial_and_per_option():
    space = _space(lr="loguniform:1e-4:1e-2", seed="range:0:1000", entropy="choice:0.01,0.001,0.0001")
    a = S.sample_trials(space, 8, seed=1)
    assert a == S.sample_trials(space, 8, seed=1)
    assert a != S.sample_trials(space, 8, seed=2)
    assert S.sample_trials(space, 16, seed=1)[:8] == a  # a sweep grown to 16 keeps its first 8
    assert S.sample_trials(space, 8, seed=1, start=5) == a[5:]
    more = S.sample_trials({**space, **_space(gamma="uniform:0.9:0.999")}, 8, seed=1)
    assert [{k: v[k] for k in a[0]} for v in more] == a  # another option leaves these draws alone
    assert all(isinstance(v["seed"], int) and isinstance(v["lr"], float) for v in a)


def test_loguniform_stays_within_its_bounds_and_is_uniform_in_log():
    lr = np.array([v["lr"] for v in S.sample_trials(_space(lr="loguniform:1e-4:1e-2"), 2000, seed=0)])
    assert lr.min() >= 1e-4 and lr.max() <= 1e-2
    assert abs(np.mean(lr < 1e-3) - 0.5) < 0.05  # half of the draws below the geometric middle
    assert abs(np.mean(lr < 1e-2 ** 0.25 * 1e-4 ** 0.75) - 0.25) < 0.05
    assert all(float(f"{x:.4g}") == x for x in lr[:50])  # 4 significant digits


def test_range_choice_and_list():
    vals = S.sample_trials(_space(seed="range:3:7", entropy="choice:0.1,0.2", t_max="list:5,20,40"), 300, seed=0)
    seeds = [v["seed"] for v in vals]
    assert set(seeds) == {3, 4, 5, 6}  # HI excluded, as Python's range
    assert set(v["entropy"] for v in vals) == {0.1, 0.2}
    assert [v["t_max"] for v in vals[:7]] == [5, 20, 40, 5, 20, 40, 5]  # listed in turn, not drawn
    ints = [v["t_max"] for v in S.sample_trials(_space(t_max="loguniform:2:40"), 200, seed=0)]
    assert all(isinstance(t, int) and 2 <= t <= 40 for t in ints) and len(set(ints)) > 10


# -- the summary -------------------------------------------------------------------------------


def test_trial_stats_final_best_and_frames_to_target():
    frames = np.arange(1, 31) * 100
    scores = np.r_[np.zeros(10), np.full(10, 20.0), np.full(10, 10.0)]
    st = S.trial_stats(frames, scores, targets=(18, 30))
    assert st["games"] == 30 and st["final_mean10"] == 10.0 and st["best_mean10"] == 20.0
    # the first 10-game mean >= 18 is that of games 10..19 (0-based 9..18: mean 18): game 19 ends at 1900
    assert st["frames_to_18"] == 1900 and st["frames_to_30"] is None
    assert st["final_mean100"] == pytest.approx(10.0)  # fewer than 100 games: the mean of all 30
    # games out of order in the file (threads append as they finish): the last are by frames
    frames, scores = np.arange(1, 151), np.r_[np.zeros(50), np.full(50, 2.0), np.full(50, 4.0)]
    long = S.trial_stats(frames[::-1], scores[::-1])
    assert long["games"] == 150 and long["final_mean100"] == 3.0 and long["final_mean10"] == pytest.approx(4.0)
    few = S.trial_stats([5, 10, 15], [1.0, 2.0, 6.0], targets=(3,))
    assert few["final_mean10"] == 3.0 and few["best_mean10"] == 3.0 and few["frames_to_3"] == 15
    none = S.trial_stats([], [], targets=(1,))
    assert none["games"] == 0 and math.isnan(none["final_mean10"]) and none["frames_to_1"] is None
    assert math.isnan(none["final_mean100"])


def test_widest_interval_where_every_trial_reached():
    xs = [1e-4, 2e-4, 4e-4, 8e-4, 1.6e-3, 3.2e-3, 6.4e-3]
    ok = [False, True, True, True, False, True, False]
    w = S.widest_interval(xs, ok, log=True)
    assert (w["lo"], w["hi"], w["trials"]) == (2e-4, 8e-4, 3)
    assert w["width"] == pytest.approx(math.log10(4)) and w["between"] == [1e-4, 1.6e-3]
    assert S.widest_interval(xs, [False] * 7) is None
    w = S.widest_interval(xs, [True] * 7)
    assert w["between"] == [None, None] and w["trials"] == 7
    # a trial that failed at the same value as one that reached breaks the interval there
    w = S.widest_interval([1, 2, 2, 3, 10], [True, True, False, True, True], log=False)
    assert (w["lo"], w["hi"]) == (3, 10)
    assert S.widest_interval([2e-3, 2e-3], [True, False]) is None  # one value, reached and not: no interval


def test_summarise_counts_fractions_and_interval():
    rows = [dict(trial=f"trial-{i:03d}", lr=lr, status=st, final_mean10=f, best_mean10=b)
            for i, (lr, st, f, b) in enumerate([(1e-4, "done", 5.0, 12.0), (3e-4, "done", 19.0, 20.0),
                                                (1e-3, "done", 18.5, 19.0), (3e-3, "done", -20.0, 19.0),
                                                (2e-3, "stopped", 20.0, 20.0), (5e-3, "pending", math.nan, math.nan)])]
    s = S.summarise(rows, "lr", True, targets=[18, 0])
    assert (s["trials"], s["done"], s["stopped"], s["pending"]) == (6, 4, 1, 1)
    assert s["best"] == {"trial": "trial-001", "final_mean10": 19.0, "lr": 3e-4}
    assert s["final_mean10"] == {"median": 11.75, "min": -20.0, "max": 19.0}
    t18, t0 = s["targets"]
    assert (t18["reached_final"], t18["fraction_final"], t18["reached_best"]) == (2, 0.5, 3)
    w = t18["widest_all_reached"]
    assert (w["lo"], w["hi"], w["between"]) == (3e-4, 1e-3, [1e-4, 3e-3])
    assert t0["reached_final"] == 3 and t0["widest_all_reached"]["lo"] == 1e-4
    md = S.summary_markdown(s, "a3c on Pong-v5")
    assert "reached it in 2 of 4 finished trials (50%)" in md and "[0.0003, 0.001]" in md
    assert "last 100" not in md and "reached_last100" not in t18  # rows without final_mean100: not claimed
    # with the last-100 means: counted apart, and their own interval
    for r, last in zip(rows, (17.0, 18.2, 18.0, -19.0, 20.0, math.nan)):
        r["final_mean100"] = last
    s = S.summarise(rows, "lr", True, targets=[18])
    t = s["targets"][0]
    assert s["final_mean100"] == {"median": 17.5, "min": -19.0, "max": 18.2}
    assert (t["reached_last100"], t["fraction_last100"]) == (2, 0.5)
    w = t["widest_all_reached_last100"]
    assert (w["lo"], w["hi"], w["between"]) == (3e-4, 1e-3, [1e-4, 3e-3])
    md = S.summary_markdown(s, "a3c on Pong-v5")
    assert "the mean of the last 100 games in 2 (50%)" in md
    assert "By the mean of the last 100 games, the widest lr interval" in md
    # the default: its neighbours among the finished trials, and where it lies against the interval
    for default, where in ((7e-4, "inside it"), (2e-4, "between it and the nearest trial that did not"),
                           (5e-5, "outside it")):
        s = S.summarise(rows, "lr", True, targets=[18], default=default)
        md = S.summary_markdown(s, "a3c on Pong-v5")
        assert md.count(f"The default lies {where}") == 2, (default, md)
    assert [n["trial"] for n in S.summarise(rows, "lr", True, default=7e-4)["default"]["nearest"]] == \
        ["trial-001", "trial-002"]
    assert [n["trial"] for n in S.summarise(rows, "lr", True, default=5e-5)["default"]["nearest"]] == ["trial-000"]


def test_eta_schedules_the_trials_left_on_the_slots():
    assert S.eta_s([], [], 3, 1) is None
    assert S.eta_s([100.0], [], 3, 1) == 300.0
    assert S.eta_s([100.0], [], 3, 2) == 200.0  # two slots: 2 + 1
    assert S.eta_s([], [(50.0, 0.5, 0.5)], 1, 1) == pytest.approx(150.0)  # its pace: 100 s a trial
    line = S.progress_line(3, 2, 11, 0, {"trial": "trial-004", "final_mean10": 19.2, "lr": 3e-4}, "lr", 3723, 7200)
    assert line == ("sweep: 3 done / 2 running / 11 left | best final mean10 19.2 (trial-004, lr 0.0003) | "
                    "elapsed 1:02:03 | ETA 2:00:00")


def test_search_difference_ignores_how_trials_run():
    a = {"space": {"lr": "loguniform:0.001:0.01"}, "sweep_seed": 0,
         "options": {"env": "CartPole-v1", "threads": 1, "hidden": [8], "progress_every_s": 1.0}}
    b = json.loads(json.dumps(a))
    b["options"].update(progress_every_s=5.0, hidden=(8,), pin_threads=False)
    assert S.search_difference(a, b) is None
    assert S.search_difference(a, {**b, "sweep_seed": 1}) == "--sweep-seed: 0 there, 1 here"
    c = {**b, "options": {**b["options"], "frames": 1000}}
    assert S.search_difference(a, c) == "--frames: not given there, 1000 here"
    d = {**b, "space": {"lr": "loguniform:0.001:0.1"}}
    assert S.search_difference(a, d) == "--lr: loguniform:0.001:0.01 there, loguniform:0.001:0.1 here"


# -- bad input on the command line and in Python: one line, exit 2, nothing written ---------------


@pytest.mark.parametrize("args, needle", [
    (["--lr", "normal:0:1"], "unknown distribution 'normal'"),
    (["--seed", "range:5:5"], "the range is empty"),
    (["--lr", "uniform:0.1:0.01"], "LO must be < HI"),
    (["--lr", "loguniform:0:1e-2"], "loguniform needs bounds > 0"),
    (["--lr", "loguniform:1e-3:1e-2", "--foo", "3"], "--foo is not an option of fastasync train"),
    (["--lr", "loguniform:1e-3:1e-2", "--nodes", "2"], "training on Ray"),
    (["-s", "foo=choice:1,2", "--trials", "2"], "--foo is not an option of fastasync train"),
    (["-s", "rms_alpha=uniform:0.9:1.5", "--trials", "2"], "rms-alpha must be in [0, 1)"),
    (["--frames", "loguniform:1e6:1e7"], "--frames takes choice: or list:"),
    (["--lr", "1e-3"], "nothing to sweep"),
    (["--lr", "loguniform:1e-3:1e-2"], "give the number of trials: --trials N"),
    (["--lr", "loguniform:1e-3:1e-2", "--trials", "0"], "--trials must be a whole number >= 1"),
    (["--lr", "choice:0.1", "--parallel", "2", "--ray"], "--parallel is for sweeps on this machine"),
    (["--lr", "choice:0.1", "--trials", "1", "--eval-episodes", "-1"], "--eval-episodes must be a whole number >= 0"),
    (["--algo", "nstep-q", "--obs-norm", "--lr", "choice:0.1", "--trials", "1"], "trial-000 (lr 0.1): --obs-norm"),
    (["--env", "Nope-v0", "--lr", "choice:0.1", "--trials", "1"], "unknown env 'Nope-v0'"),
])
def test_bad_input_one_line_exit_2_no_directory(tmp_path, args, needle):
    d = tmp_path / "sw"
    r = _sweep("--run-dir", str(d), *args)
    assert r.exit_code == 2, r.output
    assert needle in r.output and r.output.startswith("Error: ") and r.output.count("\n") == 1, r.output
    assert not d.exists()


def test_bad_toml_sweep_table_and_resume_of_nothing(tmp_path):
    cfg = tmp_path / "s.toml"
    cfg.write_text('frames = "20k"\n[sweep]\ntrials = 2\nlr = "loguniform:1e-2:1e-3"\n')
    r = _sweep("--config", str(cfg), "--run-dir", str(tmp_path / "sw"))
    assert r.exit_code == 2 and "--lr loguniform:1e-2:1e-3: LO must be < HI" in r.output, r.output
    r = _sweep("--resume", str(tmp_path / "nothing"))
    assert r.exit_code == 2 and "no sweep there" in r.output
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x.txt").write_text("mine")
    r = _sweep("--lr", "choice:0.1", "--trials", "1", "--env", "CartPole-v1", "--run-dir", str(tmp_path / "busy"))
    assert r.exit_code == 2 and "holds no sweep" in r.output
    assert not (tmp_path / "sw").exists() and os.listdir(tmp_path / "busy") == ["x.txt"]


def test_python_api_takes_distributions_and_refuses_bad_ones(tmp_path):
    with pytest.raises(ValueError, match="the range is empty"):
        fastasync.sweep(env="CartPole-v1", seed="range:1:1", trials=2, run_dir=str(tmp_path / "sw"))
    with pytest.raises(ValueError, match="LO must be < HI"):
        fastasync.api.sweep(env="CartPole-v1", space={"lr": "uniform:1:0.5"}, trials=2, run_dir=str(tmp_path / "sw"))
    assert not (tmp_path / "sw").exists()
    assert callable(fastasync.sweep) and fastasync.sweep.parse_dist is S.parse_dist  # the module is the function too


def test_help_is_cheap_and_lists_train_options():
    code = ("import sys; from fastasync.cli import main\ntry: main(['sweep', '--help'])\nexcept SystemExit: pass\n"
            "assert not {'numba', 'envpool', 'ray'} & set(sys.modules), 'heavy import'")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert "--lr VALUE|DIST" in p.stdout and "--trials" in p.stdout and "--nodes" not in p.stdout


# -- the scatter and `fastasync plot SWEEP_DIR`, from a sweep directory made by hand --------------


def _fake_sweep(d, finals=(5.0, 19.0, 20.0)):
    """A sweep directory as a finished sweep leaves it, without training."""
    trials = []
    for i, (lr, final) in enumerate(zip((1e-4, 1e-3, 1e-2), finals)):
        name = f"trial-{i:03d}"
        (d / name).mkdir(parents=True)
        rows = ["frames,wall_s,thread,score,length"] + [f"{(g + 1) * 1000},{g:.2f},0,{final},10" for g in range(12)]
        (d / name / "episodes.csv").write_text("\n".join(rows) + "\n")
        trials.append({"name": name, "values": {"lr": lr}, "frames": 12_000, "status": "done", "exit_code": 0,
                       "attempts": 1, "wall_s": 10.0})
    state = {"version": 1, "space": {"lr": "loguniform:0.0001:0.01"}, "sweep_seed": 0,
             "options": {"env": "Pong-v5", "threads": 16}, "targets": [18.0], "x": "lr", "x_log": True,
             "trials": trials, "labels": {"env": "Pong-v5", "algo": "a3c", "frames": 12_000}}
    (d / "sweep.json").write_text(json.dumps(state))
    return d


def test_plot_sweep_dir_redraws_the_scatter_and_summary(tmp_path):
    d = _fake_sweep(tmp_path / "sw")
    r = CliRunner().invoke(main, ["plot", str(d)])
    assert r.exit_code == 0, r.output
    assert (d / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    lines = (d / "sweep.csv").read_text().splitlines()
    assert lines[0] == ("trial,lr,status,frames,games,final_mean10,best_mean10,final_mean100,eval_mean,eval_games,"
                        "eval_policy,frames_to_18,wall_s,run_dir")
    assert lines[2] == "trial-001,0.001,done,12000,12,19,19,19,,,,10000,10,trial-001"
    s = json.loads((d / "summary.json").read_text())
    t = s["targets"][0]
    assert (t["reached_final"], t["finished"]) == (2, 3)
    assert t["widest_all_reached"]["lo"] == 1e-3 and t["widest_all_reached"]["hi"] == 1e-2
    assert "2 of 3 finished trials (67%)" in (d / "SUMMARY.md").read_text()
    # the default lr of a3c on Pong-v5 (the sweep's fixed options), beside its neighbours
    assert s["default"]["value"] == 7e-4 and [n["trial"] for n in s["default"]["nearest"]] == ["trial-000", "trial-001"]
    assert "The default lr (a run with the sweep's fixed options): 0.0007" in (d / "SUMMARY.md").read_text()
    state = json.loads((d / "sweep.json").read_text())
    assert S.x_default(state) == 7e-4
    assert S.x_default({**state, "options": {"env": "CartPole-v1", "algo": "a3c"}}) == 2e-3  # the family's
    assert S.x_default({**state, "space": {**state["space"], "algo": "choice:a3c,nstep-q"}}) is None
    assert S.x_default({**state, "x": "seed", "space": {"seed": "range:0:5"}}) is None
    out = tmp_path / "other.png"
    r = CliRunner().invoke(main, ["plot", str(d), "-o", str(out)])
    assert r.exit_code == 0 and out.exists(), r.output
    r = CliRunner().invoke(main, ["plot", str(d), "--max-frames", "6k"])  # a scatter has no frames axis to cut
    assert r.exit_code == 2 and "--max-frames cuts runs' curves" in r.output, r.output


def test_an_eval_of_the_final_checkpoint_joins_the_rows_summary_and_scatter(tmp_path):
    """`fastasync eval --save` leaves eval.json beside a trial's checkpoint: the sweep's rows,
    summary and scatter show it beside the training games' means (a Q method's training games
    mix its threads' exploring epsilons); an eval of an earlier checkpoint is not used."""
    from fastasync.evaluate import read_eval, save_eval

    d = _fake_sweep(tmp_path / "sw", finals=(5.0, 2.0, -20.0))
    res = lambda mean: {"scores": np.array([mean - 1, mean + 1]), "lengths": np.array([800, 900]),  # noqa: E731
                        "greedy": True, "policy": "greedy"}
    save_eval(str(d / "trial-000"), 12_000, res(19.0), seed=1)
    save_eval(str(d / "trial-001"), 12_000, res(20.0), seed=1)
    np.savez(d / "trial-002" / "checkpoint.npz", frames=np.int64(12_000), wall_s=10.0)
    save_eval(str(d / "trial-002"), 6_000, res(-21.0), seed=1)  # of the checkpoint before: stale
    r = CliRunner().invoke(main, ["plot", str(d)])
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(open(d / "sweep.csv")))
    assert [(x["eval_mean"], x["eval_games"], x["eval_policy"]) for x in rows] == \
        [("19", "2", "greedy"), ("20", "2", "greedy"), ("", "", "")]
    s = json.loads((d / "summary.json").read_text())
    t = s["targets"][0]
    assert (t["reached_final"], t["reached_eval"], t["evaluated"]) == (0, 2, 2)
    assert "widest_all_reached_eval" not in t  # not every finished trial evaluated: no interval
    assert s["eval"]["median"] == 19.5 and s["eval"]["games"] == [2]
    text = (d / "SUMMARY.md").read_text()
    assert "Eval of the final checkpoint (2 games, greedy; 2 of the 3 done evaluated): median 19.5" in text
    assert "the eval of the final checkpoint in 2 of 2 evaluated (100%)" in text
    for bad in ("{", '{"games": "30", "mean": 1.0}', '[1, 2]'):  # unreadable: no eval, no traceback
        (d / "trial-002" / "eval.json").write_text(bad)
        assert read_eval(str(d / "trial-002")) is None
    save_eval(str(d / "trial-002"), 12_000, res(-21.0), seed=1)
    assert CliRunner().invoke(main, ["plot", str(d)]).exit_code == 0
    t = json.loads((d / "summary.json").read_text())["targets"][0]
    assert (t["reached_eval"], t["evaluated"]) == (2, 3)
    assert (t["widest_all_reached_eval"]["lo"], t["widest_all_reached_eval"]["hi"]) == (1e-4, 1e-3)
    assert "By the eval of the final checkpoint, the widest lr interval" in (d / "SUMMARY.md").read_text()


# -- real sweeps (slow): trials are `fastasync train` subprocesses ---------------------------------

CARTPOLE = ["--env", "CartPole-v1", "--algo", "a3c", "--threads", "1"]


@pytest.mark.slow
def test_cartpole_sweep_files_rerun_and_another_space(tmp_path):
    d = tmp_path / "sw"
    args = [*CARTPOLE, "--frames", "20k", "--lr", "loguniform:1e-3:3e-3", "--trials", "3", "--target", "30",
            "--run-dir", str(d)]
    r = _sweep(*args)
    assert r.exit_code == 0, r.output
    state = json.loads((d / "sweep.json").read_text())
    assert [t["status"] for t in state["trials"]] == ["done"] * 3
    assert state["space"] == {"lr": "loguniform:0.001:0.003"}
    lrs = [t["values"]["lr"] for t in state["trials"]]
    assert lrs == [v["lr"] for v in S.sample_trials(S.parse_space(state["space"]), 3, 0)]
    for t in state["trials"]:  # each a plain run directory: resumable, plottable, evaluable
        run = d / t["name"]
        assert {"checkpoint.npz", "episodes.csv", "config.json", "train.log", "trial.toml"} <= set(os.listdir(run))
        cfg = json.loads((run / "config.json").read_text())
        assert cfg["optim"]["lr"] == t["values"]["lr"] and cfg["run"]["frames"] == 20_000
    lines = (d / "sweep.csv").read_text().splitlines()
    assert lines[0] == ("trial,lr,status,frames,games,final_mean10,best_mean10,final_mean100,eval_mean,eval_games,"
                        "eval_policy,frames_to_30,wall_s,run_dir")
    assert len(lines) == 4 and all(int(x.split(",")[3]) >= 20_000 for x in lines[1:])
    assert (d / "sweep.png").read_bytes()[:4] == b"\x89PNG"
    s = json.loads((d / "summary.json").read_text())
    assert s["done"] == 3 and s["targets"][0]["finished"] == 3 and s["x"] == "lr"
    assert "Target 30" in (d / "SUMMARY.md").read_text() and "trial-002" in r.output  # the table
    assert "eval_mean" not in r.output  # no trial evaluated: no empty eval columns in the terminal's table
    # bench/sweep_collapses.py reads these real trials: their progress lines and checkpoints
    out = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "sweep_collapses.py"), str(d), "--all"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    table = [x.split(" | ") for x in out.stdout.splitlines() if x.startswith("| trial")]
    ent, grad = table[0].index("entropy first/min/last"), table[0].index("|g| median/max/last")
    rows = table[1:]
    assert len(rows) == 3 and all(r[ent] != "-" and r[grad] != "-/-/-" for r in rows), out.stdout
    assert (d / "COLLAPSES.md").read_text() == out.stdout
    # an eval of a trial's final checkpoint, saved beside it, joins its row
    ev = CliRunner().invoke(main, ["eval", str(d / "trial-000"), "--episodes", "2", "--save"])
    assert ev.exit_code == 0 and "eval.json" in ev.output, ev.output
    assert CliRunner().invoke(main, ["plot", str(d)]).exit_code == 0
    rows = list(csv.DictReader(open(d / "sweep.csv")))
    assert rows[0]["eval_games"] == "2" and rows[0]["eval_policy"] and rows[1]["eval_mean"] == ""
    assert "1 of the 3 done evaluated" in (d / "SUMMARY.md").read_text()
    # the sweep evaluates its finished trials itself: a rerun with --eval-episodes evaluates
    # those without an eval of their final checkpoint, and trains none
    before = {t["name"]: (d / t["name"] / "train.log").read_text() for t in state["trials"]}
    r = _sweep(*args, "--eval-episodes", "2")
    assert r.exit_code == 0, r.output
    assert ": resumed" not in r.output and "trial-000: eval" not in r.output, r.output
    assert "3 trials, 3 done, 0 to run, 2 to evaluate (each finished trial evaluated over 2 games)" in r.output
    assert "trial-001: evaluating its final checkpoint" in r.output and " done (" not in r.output, r.output
    assert "trial-001: eval of its final checkpoint: mean" in r.output and "over 2 games" in r.output, r.output
    rows = list(csv.DictReader(open(d / "sweep.csv")))
    assert [x["eval_games"] for x in rows] == ["2", "2", "2"] and all(x["eval_mean"] for x in rows)
    assert "3 of the 3 done evaluated" in (d / "SUMMARY.md").read_text()
    logs = {t["name"]: (d / t["name"] / "train.log").read_text() for t in state["trials"]}
    assert logs["trial-000"] == before["trial-000"] and "fastasync eval " in logs["trial-002"]
    assert "checkpoint.npz" in os.listdir(d / "trial-002") and json.loads((d / "sweep.json").read_text())[
        "eval_episodes"] == 2
    state = json.loads((d / "sweep.json").read_text())

    r = _sweep(*args)  # the same command again: every trial is done and evaluated, none starts
    assert r.exit_code == 0, r.output
    assert ": started" not in r.output and ": resumed" not in r.output
    assert logs == {t["name"]: (d / t["name"] / "train.log").read_text() for t in state["trials"]}

    r = _sweep(*[a if a != "loguniform:1e-3:3e-3" else "loguniform:1e-3:1e-2" for a in args])
    assert r.exit_code == 2 and r.output.count("\n") == 1, r.output
    assert "holds a sweep of another search space (--lr: loguniform:0.001:0.003 there, loguniform:0.001:0.01 here)" \
        in r.output
    assert json.loads((d / "sweep.json").read_text()) == state


def test_eval_step_asks_for_an_eval_of_a_finished_trial_without_one(tmp_path):
    """A sweep with --eval-episodes N evaluates a trial once its checkpoint holds the whole
    budget and has no eval of at least N games; never an unfinished one or without N."""
    from fastasync.evaluate import save_eval

    run = tmp_path / "trial-000"
    run.mkdir()
    job = {"run_dir": str(run), "frames": 10_000, "eval_episodes": 3}
    assert S.eval_step(job) is None  # no checkpoint
    np.savez(run / "checkpoint.npz", frames=np.int64(6_000), wall_s=1.0)
    assert S.eval_step(job) is None  # stopped before its budget
    np.savez(run / "checkpoint.npz", frames=np.int64(10_000), wall_s=2.0)
    assert S.eval_step(job) == ["eval", str(run), "--episodes", "3", "--save"]
    assert S.eval_step({**job, "eval_episodes": 0}) is None and S.eval_step({**job, "eval_episodes": None}) is None
    res = {"scores": np.array([1.0, 2.0]), "lengths": np.array([10, 12]), "greedy": False, "policy": "sample"}
    save_eval(str(run), 10_000, res, seed=1)
    assert S.eval_step(job) is not None  # 2 games, 3 asked
    save_eval(str(run), 10_000, {**res, "scores": np.array([1.0, 2.0, 3.0]), "lengths": np.array([1, 2, 3])}, seed=1)
    assert S.eval_step(job) is None
    save_eval(str(run), 8_000, {**res, "scores": np.array([1.0, 2.0, 3.0]), "lengths": np.array([1, 2, 3])}, seed=1)
    assert S.eval_step(job) is not None  # of another checkpoint


class _Instant:
    """An executor whose trials end at once (exit 0), recording which it started."""
    slots = 1

    def __init__(self):
        self.started_jobs = []

    def describe(self):
        return "fake"

    def room(self, running):
        return True

    def start(self, job):
        self.started_jobs.append(os.path.basename(job["run_dir"]))
        return job

    def started(self, h):
        return True

    def poll(self, h):
        return {"code": 0, "wall_s": 1.0}

    def stop(self, handles):
        pass

    def events(self, wait_s=0.0):
        return []

    def close(self):
        pass


def test_a_running_trial_whose_log_stays_unchanged_is_said_once(tmp_path, monkeypatch):
    """A trial that runs but writes nothing to its train.log for QUIET_S (a stuck process, a
    lost Ray task never rerun) is said to the user, once until its log changes again, with how
    to go on; the sweep does not end it."""
    sweep_dir, state, ex = S.prepare({"env": "CartPole-v1", "algo": "a3c", "frames": 20_000},
                                     {"lr": "loguniform:1e-3:3e-3"}, trials=1, run_dir=str(tmp_path / "sw"))
    os.makedirs(sweep_dir)
    monkeypatch.setattr(S, "QUIET_S", 0.6)
    release = threading.Event()

    class Stuck(_Instant):  # an executor whose one trial runs until released
        def poll(self, h):
            return {"code": 1, "wall_s": 1.0} if release.is_set() else None

        def stop(self, handles):
            release.set()

    said = []
    th = threading.Thread(target=S.run_trials, args=(sweep_dir, state, Stuck(), ex, said.append, "RESUME"),
                          kwargs=dict(progress_every_s=60.0), daemon=True)
    th.start()
    _wait_for(lambda: any("nothing written to its train.log" in m for m in said), "the quiet trial to be said")
    time.sleep(1.5)  # still quiet: not said again
    log = tmp_path / "sw" / "trial-000" / "train.log"
    log.write_text("frames 1\n")  # it wrote: said again once it is quiet again
    _wait_for(lambda: sum("nothing written" in m for m in said) == 2, "the trial quiet again to be said")
    time.sleep(1.0)
    release.set()
    th.join(30)
    quiet = [m for m in said if "nothing written" in m]
    assert len(quiet) == 2 and quiet[0].startswith("trial-000: nothing written to its train.log for 0:00:0"), said
    assert "Ctrl-C stops the sweep, each running trial with a checkpoint, and RESUME goes on" in quiet[0]


def test_only_runs_the_named_trials_and_leaves_the_others_for_later(tmp_path):
    sweep_dir, state, ex = S.prepare({"env": "CartPole-v1", "algo": "a3c", "frames": 20_000},
                                     {"lr": "loguniform:1e-3:3e-3"}, trials=4, run_dir=str(tmp_path / "sw"))
    os.makedirs(sweep_dir)
    assert S.select_trials(state, None) is None
    assert S.select_trials(state, "3, trial-001") == ["trial-001", "trial-003"]  # the sweep's order
    assert S.select_trials(state, [2]) == ["trial-002"]
    for bad, needle in (("trial-004", "no such trial (it holds trial-000 to trial-003"), ("x", "no such trial"),
                        (" , ", "no such trial"), ([], "at least one trial")):
        with pytest.raises(ConfigError, match=re.escape(needle)):
            S.select_trials(state, bad)
    said, fake = [], _Instant()
    S.run_trials(sweep_dir, state, fake, ex, said.append, "RESUME", only=["trial-001", "trial-003"])
    assert fake.started_jobs == ["trial-001", "trial-003"]
    assert [t["status"] for t in state["trials"]] == ["pending", "done", "pending", "done"]
    assert "2 to run (--only: trial-001, trial-003; 2 other(s) left for later)" in said[0], said
    assert said[-1] == "2 other trial(s) of the sweep not run (--only): RESUME runs them"
    said, fake = [], _Instant()
    S.run_trials(sweep_dir, state, fake, ex, said.append, "RESUME", only=["trial-003"])
    assert fake.started_jobs == [] and said[0].endswith("nothing to run: trial-003 is done"), said
    S.run_trials(sweep_dir, state, fake, ex, said.append, "RESUME")  # all the others
    assert fake.started_jobs == ["trial-000", "trial-002"]
    assert [t["status"] for t in state["trials"]] == ["done"] * 4


def test_only_with_a_trial_the_sweep_lacks_is_refused_before_anything_is_written(tmp_path):
    d = tmp_path / "sw"
    r = _sweep(*CARTPOLE, "--frames", "20k", "--lr", "loguniform:1e-3:3e-3", "--trials", "2", "--only", "7",
               "--run-dir", str(d))
    assert r.exit_code == 2 and r.output.count("\n") == 1, r.output
    assert "--only '7': the sweep has no such trial (it holds trial-000 to trial-001" in r.output
    assert not d.exists()


def test_a_trial_waits_for_its_earlier_process_to_let_go_and_says_so(tmp_path):
    """plan_trial waits while another process (a lost Ray worker's orphaned trial, writing its
    checkpoint) holds the run directory's lock, writes whom it waits for and how that ended into
    the trial's train.log, and gives up at its timeout instead of waiting for ever."""
    import fcntl

    run_dir, log = tmp_path / "trial-000", tmp_path / "trial-000" / "train.log"
    run_dir.mkdir()
    fh = open(run_dir / ".lock", "a+")
    fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    fh.write("4242\n")
    fh.flush()
    try:
        t0 = time.monotonic()
        S.wait_unlocked(str(run_dir), timeout_s=1.0, log=str(log))
        assert 1.0 <= time.monotonic() - t0 < 30
        text = log.read_text()
        assert "waiting (up to 1 s) for process 4242, an earlier start of this trial" in text, text
        assert "still held after 1 s; starting anyway" in text, text
        threading.Timer(1.5, lambda: fcntl.flock(fh.fileno(), fcntl.LOCK_UN)).start()
        S.wait_unlocked(str(run_dir), timeout_s=60.0, log=str(log))
        assert re.search(r"it let go after \d+ s", log.read_text()), log.read_text()
    finally:
        fh.close()
    n = len(log.read_text())
    S.wait_unlocked(str(run_dir), timeout_s=60.0, log=str(log))  # free: no word
    assert len(log.read_text()) == n


class _Lines:
    """A subprocess's stderr lines, read in a thread."""

    def __init__(self, stream):
        self.lines = []
        self.t = threading.Thread(target=lambda: [self.lines.append(x) for x in stream], daemon=True)
        self.t.start()

    def text(self):
        return "".join(self.lines)


def _wait_for(pred, what, timeout=120, lines=None):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}" + (f"; output:\n{lines.text()[-3000:]}" if lines else ""))


def _progress_in(log):
    return lambda: log.exists() and re.search(r"^frames .*fps", log.read_text(), re.M) is not None


def _what_happened(out, d, cluster=None):
    """The sweep's output and its trials' train.log, for a failed assertion; on Ray also what
    its driver's log says of the tasks (failed attempts, resubmissions) and the raylets' last
    lines."""
    logs = "".join(f"\n--- {x}:\n{x.read_text()[-3000:]}" for x in sorted(d.glob("trial-*/train.log")))
    if cluster is not None:
        import glob

        ray_logs = cluster.head_node.get_logs_dir_path()
        for path in sorted(glob.glob(os.path.join(ray_logs, "python-core-driver-*.log"))):
            with open(path, errors="replace") as fh:
                lines = [x for x in fh if "task_manager" in x or "resubmit" in x.lower()]
            logs += f"\n--- {path} (tasks):\n" + "".join(lines[-40:])
        for path in sorted(glob.glob(os.path.join(ray_logs, "raylet*.out"))):
            with open(path, errors="replace") as fh:
                logs += f"\n--- {path} (last lines):\n" + "".join([x for x in fh if "[state-dump]" not in x][-30:])
    return f"sweep output:\n{out.text()[-3000:]}{logs}"


def _popen_sweep(args):
    return subprocess.Popen([sys.executable, "-W", "ignore", "-m", "fastasync.cli", "sweep", *args],
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))


@pytest.mark.slow
def test_ctrl_c_stops_the_running_trial_with_a_checkpoint_and_the_command_goes_on(tmp_path):
    d = tmp_path / "sw"
    # trial-000 long enough to be caught training, trial-001 short (listed values: trial k takes the k-th)
    args = [*CARTPOLE, "--frames", "list:500k,20k", "--lr", "loguniform:1e-3:3e-3", "--trials", "2",
            "--progress-every-s", "0.2", "--run-dir", str(d)]
    p = _popen_sweep(args)
    out = _Lines(p.stderr)
    try:
        _wait_for(_progress_in(d / "trial-000" / "train.log"), "trial-000 to train", lines=out)
        p.send_signal(signal.SIGINT)
        assert p.wait(timeout=60) == 130, out.text()
    finally:
        if p.poll() is None:
            p.kill()
    out.t.join(5)
    assert f"Continue with: fastasync sweep --resume {d}" in out.text()
    ck = S.checkpoint_counts(str(d / "trial-000"))
    assert ck is not None and 0 < ck[0] < 500_000, "the running trial stopped with a checkpoint"
    assert "stopped at" in (d / "trial-000" / "train.log").read_text()
    state = json.loads((d / "sweep.json").read_text())
    assert [(t["status"], t["exit_code"]) for t in state["trials"]] == [("stopped", 130), ("pending", None)]

    r = _sweep(*args)  # the same command: trial-000 resumes, trial-001 runs
    assert r.exit_code == 0, r.output
    assert "trial-000: resumed" in r.output and "trial-001: started" in r.output
    assert "fastasync train --resume" in (d / "trial-000" / "train.log").read_text()
    assert [t["status"] for t in json.loads((d / "sweep.json").read_text())["trials"]] == ["done", "done"]
    assert S.checkpoint_counts(str(d / "trial-000"))[0] >= 500_000


@pytest.mark.slow
def test_ray_sweep_reruns_a_lost_trial_from_its_checkpoint(ray_cluster, tmp_path):
    """Two trials as Ray tasks on two one-CPU nodes; trial-000's task process is killed while
    its trial trains (as when its node is lost): the trial writes its checkpoint (SIGINT from
    Linux at its parent's death), Ray reruns the task, and the rerun resumes the trial."""
    cluster, _ = ray_cluster
    d = tmp_path / "sw"
    p = _popen_sweep([*CARTPOLE, "--frames", "list:600k,20k", "--lr", "loguniform:1e-3:3e-3", "--trials", "2",
                      "--progress-every-s", "0.2", "--eval-episodes", "1", "--run-dir", str(d),
                      "--ray", cluster.address])
    out = _Lines(p.stderr)
    try:
        _wait_for(_progress_in(d / "trial-000" / "train.log"), "trial-000 to train", lines=out)
        train_pid = int((d / "trial-000" / ".lock").read_text())
        with open(f"/proc/{train_pid}/stat") as fh:
            worker = int(fh.read().rsplit(")", 1)[1].split()[1])  # its parent: the task's Ray worker
        os.kill(worker, signal.SIGKILL)
        try:
            code = p.wait(timeout=240)
        except subprocess.TimeoutExpired:
            code = "still running after 240 s"
        assert code == 0, _what_happened(out, d, cluster)
    finally:
        if p.poll() is None:
            p.kill()
    out.t.join(5)
    text = out.text()
    assert "trial-000: its task was lost; Ray reran it" in text and "(attempt 2)" in text, text
    log = (d / "trial-000" / "train.log").read_text()
    assert "stopped at" in log and "fastasync train --resume" in log and "--no-pin-threads" in log, log
    state = json.loads((d / "sweep.json").read_text())
    assert [t["status"] for t in state["trials"]] == ["done", "done"]
    assert [S.checkpoint_counts(str(d / t["name"]))[0] >= t["frames"] for t in state["trials"]] == [True, True]
    assert [t["frames"] for t in state["trials"]] == [600_000, 20_000]
    assert len((d / "sweep.csv").read_text().splitlines()) == 3
    # each task evaluated its trial's final checkpoint after training it (--eval-episodes)
    assert [x["eval_games"] for x in csv.DictReader(open(d / "sweep.csv"))] == ["1", "1"], text
    assert "trial-000: eval of its final checkpoint" in text
