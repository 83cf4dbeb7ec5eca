"""bench/compare_sweeps.py: two sweeps of the same draws, trial by trial and by target."""

import importlib.util
import json
import os

import pytest

from test_sweep import _fake_sweep

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_spec = importlib.util.spec_from_file_location("compare_sweeps", os.path.join(ROOT, "bench", "compare_sweeps.py"))
CS = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(CS)


def _pair(tmp_path, finals_a, finals_b, pending_b=()):
    a = _fake_sweep(tmp_path / "a", finals_a)
    b = _fake_sweep(tmp_path / "b", finals_b)
    state = json.loads((b / "sweep.json").read_text())
    state["options"]["lr_warmup_frames"] = 100_000
    for t in state["trials"]:
        if t["name"] in pending_b:
            t["status"] = "pending"
    (b / "sweep.json").write_text(json.dumps(state))
    return a, b


def test_the_page_counts_each_measure_over_the_trials_finished_in_both(tmp_path):
    # lr 1e-4, 1e-3, 1e-2; A: 5, 19, -20 (one at 18); B: 18.5, 19, 20 (all three)
    a, b = _pair(tmp_path, (5.0, 19.0, -20.0), (18.5, 19.0, 20.0))
    (b / "trial-002" / "eval.json").write_text(json.dumps({"frames": 12_000, "games": 5, "mean": 17.0,
                                                           "policy": "sampled from the policy"}))
    page = CS.compare(str(a), str(b), label_a="before", label_b="after")
    assert "fixed options that differ: lr_warmup_frames: - -> 100000" in page
    assert "trials finished in both: 3 of 3" in page
    rows = [ln for ln in page.splitlines() if ln.startswith("| trial-")]
    assert [r.split(" | ")[0] for r in rows] == ["| trial-000", "| trial-001", "| trial-002"]  # by lr
    assert rows[2] == "| trial-002 | 0.01 | 20.0 / 20.0 / 17.0 / 0.01M | -20.0 / -20.0 / - / never |"
    final = next(ln for ln in page.splitlines() if ln.startswith("| final 10 |"))
    assert final == ("| final 10 | 3 of 3 | 0.0001 to 0.01 (2.00 decades, 3 trials) | 1 of 3 | "
                     "0.001 to 0.001 (0.00 decades, 1 trial) |")
    assert not any(ln.startswith("| eval |") for ln in page.splitlines())  # A has no eval of trial-002
    assert "First reached 18 in both: 1 trial; after earlier in 0" in page


def test_a_trial_not_run_in_one_sweep_is_shown_and_left_out_of_the_counts(tmp_path):
    a, b = _pair(tmp_path, (5.0, 19.0, -20.0), (18.5, 19.0, 20.0), pending_b=("trial-000",))
    page = CS.compare(str(a), str(b))
    assert "trials finished in both: 2 of 3" in page
    assert "| trial-000 | 0.0001 | not run | 5.0 / 5.0 / - / never |" in page
    assert "| final 10 | 2 of 2 |" in page


def test_sweeps_of_other_draws_or_no_sweep_are_refused_in_one_line(tmp_path, capsys):
    a, b = _pair(tmp_path, (5.0, 19.0, -20.0), (18.5, 19.0, 20.0))
    state = json.loads((b / "sweep.json").read_text())
    state["trials"][1]["values"]["lr"] = 2e-3
    (b / "sweep.json").write_text(json.dumps(state))
    with pytest.raises(SystemExit, match="did not draw the same trials"):
        CS.main([str(a), str(b)])
    with pytest.raises(SystemExit, match="no sweep there"):
        CS.main([str(a), str(tmp_path)])


def test_main_writes_the_page(tmp_path, capsys):
    a, b = _pair(tmp_path, (5.0, 19.0, -20.0), (18.5, 19.0, 20.0))
    out = tmp_path / "cmp.md"
    assert CS.main([str(a), str(b), "--out", str(out), "--target", "0"]) == 0
    assert out.read_text() == capsys.readouterr().out
    assert "## Target 0 (3 trials finished in both)" in out.read_text()
