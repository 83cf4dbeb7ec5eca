"""bench/learning.py, the learning-proof script, stays runnable: on CartPole with a tiny
budget it trains, stops at its target with a checkpoint, continues a stopped run, writes
the evidence folder and regenerates the README's table from it."""

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # the proof script in subprocesses, training on CartPole

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "bench", "learning.py")


def _script(tmp_path, *args):
    out = subprocess.run([sys.executable, SCRIPT, "--runs-dir", str(tmp_path / "runs"), "--docs-dir",
                          str(tmp_path / "docs"), *args], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout + out.stderr


def test_proof_runs_in_parts_and_writes_its_evidence(tmp_path):
    common = ["run", "--env", "CartPole-v1", "--threads", "1", "--frames", "40000"]
    # an unreachable target: the run spends its budget, the summary says it missed
    out = _script(tmp_path, *common, "--target", "1000")
    folder = tmp_path / "docs" / "CartPole-v1-a3c"
    for f in ("episodes.csv", "config.json", "proof.json", "curve.png", "SUMMARY.md"):
        assert (folder / f).exists(), f
    summary = (folder / "SUMMARY.md").read_text()
    assert "target missed" in summary and "--target 1000" in summary and "--frames 40000" in summary
    # its folders are not the defaults: the command names them (without, it would continue the
    # default proof's run and write into docs/learning/)
    assert f"learning.py --runs-dir {tmp_path / 'runs'} --docs-dir {tmp_path / 'docs'} run --env CartPole-v1" in summary
    assert "budget spent" in summary
    out = _script(tmp_path, *common, "--target", "1000")  # again: nothing left to train
    assert "budget of 40,000 frames is spent" in out

    # a reachable target, with a seed: the part stops there (SIGINT, checkpoint written) ...
    common = ["run", "--env", "CartPole-v1", "--threads", "1", "--seed", "2", "--frames", "400000", "--poll-s", "0.2"]
    _script(tmp_path, *common, "--target", "40")
    folder = tmp_path / "docs" / "CartPole-v1-a3c-seed2"
    proof = json.loads((folder / "proof.json").read_text())
    assert proof["parts"][-1]["stop"] == "target reached"
    assert 0 < proof["parts"][-1]["frames_after"] < 400_000
    summary = (folder / "SUMMARY.md").read_text()
    assert "target reached" in summary and "seed 2" in summary
    # ... and the same command finds it done, without training
    assert "already reached" in _script(tmp_path, *common, "--target", "40")

    # the README's table is generated from the folders, between its markers
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- learning-table:start -->\nold\n<!-- learning-table:end -->\nrest\n")
    _script(tmp_path, "summarize", "--readme", str(readme))
    text = readme.read_text()
    assert "old" not in text and text.startswith("intro\n") and text.endswith("rest\n")
    rows = [line for line in text.splitlines() if line.startswith("| CartPole-v1")]
    assert len(rows) == 3  # one per seed, then the seeds together
    assert any("missed in 40k" in r for r in rows) and any("env steps," in r and "| 2 |" in r for r in rows)  # CartPole: a frame is an env step
    assert "| all 2 |" in rows[-1] and "1 of 2 seeds reached" in rows[-1]


def _learning_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("learning_script", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_a_ray_proof_is_its_own_run_and_every_part_trains_on_ray():
    L = _learning_module()
    meta = {"env": "Pong-v5", "algo": "a3c", "seed": 0, "frames": 40_000_000, "target": 18.0, "extra": [],
            "parts": [], "ray_nodes": 2, "threads": 1}
    assert L.run_name("Pong-v5", "a3c", 0, 2, 1) == "Pong-v5-a3c-ray2x1" != L.run_name("Pong-v5", "a3c", 0)
    start = L.train_command(meta, "runs/x", resume=False)
    assert start[start.index("--env") + 1] == "Pong-v5" and "--resume" not in start
    # a later part resumes on Ray with the proof's nodes and threads per node, whatever --threads says now
    again = L.train_command(meta, "runs/x", resume=True, threads=2)
    assert again[again.index("--resume") + 1] == "runs/x" and "--env" not in again
    for cmd in (start, again):
        assert cmd[cmd.index("--nodes") + 1] == "2" and cmd[cmd.index("--threads") + 1] == "1" and "--ray" in cmd
    one_machine = {k: v for k, v in meta.items() if k not in ("ray_nodes", "threads")}
    one = L.train_command(one_machine, "runs/x", resume=True, threads=2)
    assert "--ray" not in one and one[one.index("--threads") + 1] == "2"
    assert L._method(meta) == "a3c (Ray, 2 nodes x 1 thread)"
    assert "--ray-nodes 2 --threads 1" in L._command("Pong-v5", "a3c", 0, 40_000_000, 18.0, [], 2, 1)


def test_the_reproducing_command_names_folders_other_than_the_defaults():
    L = _learning_module()
    assert L._folder_options(os.path.join(ROOT, "runs", "learning"), os.path.join(ROOT, "docs", "learning")) == []
    inside = L._folder_options(os.path.join(ROOT, "runs", "lr"), os.path.join(ROOT, "docs", "learning", "lr"))
    assert inside == ["--runs-dir runs/lr", "--docs-dir docs/learning/lr"]
    cmd = L._command("Pong-v5", "a3c", 1, 40_000_000, 18.0, ["--lr", "1.4e-3"], folders=inside)
    assert cmd == ("python bench/learning.py --runs-dir runs/lr --docs-dir docs/learning/lr run --env Pong-v5 "
                   "--algo a3c --seed 1 -- --lr 1.4e-3")


def test_the_five_games_figure_is_drawn_from_final_mode_proofs_only(tmp_path):
    """A folder of Pong runs stopped at their target (e.g. at another lr) gets no figure of the
    paper's five games; a final-mode proof does."""
    L = _learning_module()
    d = tmp_path / "Pong-v5-a3c"
    d.mkdir()
    (d / "episodes.csv").write_text("frames,wall_s,thread,score,length\n" +
                                    "".join(f"{i * 4000},{i},0,{-21 + i % 5},800\n" for i in range(1, 150)))
    proof = {"env": "Pong-v5", "algo": "a3c", "seed": 0, "frames": 40_000_000, "target": 18.0, "extra": [], "parts": []}
    (d / "proof.json").write_text(json.dumps(proof))
    out = tmp_path / "atari-five.png"
    assert not L.atari_five_figure(str(tmp_path), str(out)) and not out.exists()
    (d / "proof.json").write_text(json.dumps({**proof, "final_mode": True}))
    assert L.atari_five_figure(str(tmp_path), str(out)) and out.stat().st_size > 1000


def test_a_ray_proof_needs_its_threads_per_node(tmp_path):
    out = subprocess.run([sys.executable, SCRIPT, "--runs-dir", str(tmp_path), "run", "--env", "Pong-v5",
                          "--ray-nodes", "2"], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 2 and "give --threads" in out.stderr and not os.listdir(tmp_path)


def test_vizdoom_proofs_measure_the_success_rate_of_the_last_100_games(tmp_path):
    """HealthGathering's target is the share of the last 100 games survived (all 2,100 tics,
    525 agent steps), not a 10-game mean: reached at the game where that share first hits 90%."""
    L = _learning_module()
    folder = tmp_path / "HealthGathering-v1-a3c"
    folder.mkdir()
    rows = ["frames,wall_s,thread,score,length"]
    for g in range(300):  # deaths for 150 games, then survivals with one death in 20
        survived = g >= 150 and g % 20 != 0
        length = 525 if survived else 200
        score = 2100.0 if survived else 4 * length - 100.0
        rows.append(f"{(g + 1) * 10_000},{g + 1.0},0,{score},{length}")
    (folder / "episodes.csv").write_text("\n".join(rows) + "\n")
    meta = {"env": "HealthGathering-v1", "algo": "a3c", "seed": 0, "frames": 20_000_000, "target": 0.9, "extra": [],
            "parts": [{"commit": "abc", "machine": "m", "started": "t", "frames_before": 0, "frames_after": 3_000_000,
                       "stop": "target reached"}]}
    (folder / "proof.json").write_text(json.dumps(meta))
    games = L.read_games(str(folder), "HealthGathering-v1")
    hit = L.first_crossing(games, 0.9)
    # the 100 games ending at game i hold (i - 150) survivals minus one death per 20 after game 150
    expect = next(i for i in range(99, 300) if sum(g >= 150 and g % 20 != 0 for g in range(i - 99, i + 1)) >= 90)
    assert hit[0] == expect and hit[1] >= 0.9
    text = L.summary_text(meta, games)
    assert "the share of the last 100 games that survived first reached 90%" in text
    assert f"at game {expect + 1}, **{(expect + 1) * 10_000 / 1e6:.1f}M tics" in text
    row = [r for r in L.table(str(tmp_path)).splitlines() if r.startswith("| HealthGathering-v1")][0]
    assert "| 90% (100-game rate, survived) |" in row and "M tics," in row and "| 95% |" in row


def test_a_pixel_run_on_x_over_255_is_marked_in_the_table(tmp_path):
    """Runs from before centred frames were the default (config.json without frame_center,
    or 0) are their own rows and group: "x/255 frames" in the method column."""
    L = _learning_module()
    meta = {"env": "Pong-v5", "algo": "a3c", "seed": 0, "frames": 40_000_000, "target": 18.0, "extra": [],
            "parts": [{"commit": "abc", "machine": "m", "started": "t", "frames_before": 0, "frames_after": 30_000,
                       "stop": "budget spent"}]}
    for name, seed, algo_cfg in (("old", 0, {"algo": "a3c"}), ("new", 1, {"algo": "a3c", "frame_center": 0.417})):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "episodes.csv").write_text("frames,wall_s,thread,score,length\n10000,1.0,0,-21,800\n")
        (folder / "proof.json").write_text(json.dumps({**meta, "seed": seed}))
        (folder / "config.json").write_text(json.dumps({"algo": algo_cfg}))
    rows = [r for r in L.table(str(tmp_path)).splitlines() if r.startswith("| Pong-v5")]
    assert rows[0].startswith("| Pong-v5 | a3c, x/255 frames | 0 |") and rows[1].startswith("| Pong-v5 | a3c | 1 |")


def test_final_mode_runs_to_the_budget_and_evaluates_the_final_checkpoint(tmp_path):
    """--final: a reachable target does not stop the run; at the budget the last 100 games and
    eval of the final checkpoint (sampled and greedy) go into proof.json, SUMMARY and the
    README's final table."""
    common = ["run", "--env", "CartPole-v1", "--threads", "1", "--frames", "30000", "--target", "10",
              "--final", "--final-episodes", "3"]
    _script(tmp_path, *common)
    folder = tmp_path / "docs" / "CartPole-v1-a3c"
    proof = json.loads((folder / "proof.json").read_text())
    assert proof["final_mode"] and proof["parts"][-1]["stop"] == "budget spent"  # crossed 10 and went on
    fin = proof["final"]
    assert fin["frames"] >= 30_000 and fin["sampled"]["n"] == fin["greedy"]["n"] == 3
    assert 0 < fin["last100"]["n"] <= 100 and fin["sampled"]["min"] <= fin["sampled"]["mean"] <= fin["sampled"]["max"]
    summary = (folder / "SUMMARY.md").read_text()
    assert "**Final, at" in summary and "over 3 games, sampled" in summary
    assert "budget of 30,000 frames is spent" in _script(tmp_path, *common)  # again: nothing to train or measure
    readme = tmp_path / "README.md"
    readme.write_text("<!-- learning-table:start -->\n<!-- learning-table:end -->\n"
                      "<!-- final-table:start -->\nold\n<!-- final-table:end -->\n")
    _script(tmp_path, "summarize", "--readme", str(readme))
    rows = [r for r in readme.read_text().split("<!-- final-table:start -->")[1].splitlines()
            if r.startswith("| CartPole-v1")]
    assert len(rows) == 1 and f"| {fin['last100']['mean']:,.1f} |" in rows[0]


def test_final_text_compares_with_the_a2c_baseline():
    L = _learning_module()
    fin = {"frames": 40_000_000, "commit": "abc", "episodes": 30,
           "last100": {"n": 100, "mean": 3000.0, "sd": 900.0, "min": 500.0, "max": 6000.0},
           "sampled": {"n": 30, "mean": 2500.0, "sd": 700.0, "min": 800.0, "max": 4000.0},
           "greedy": {"n": 30, "mean": 2000.0, "sd": 600.0, "min": 600.0, "max": 3500.0}}
    text = L.final_text({"env": "BeamRider-v5", "final": fin})
    assert "NOT met" in text and "2,890" in text and "13,235.9" in text  # the sampled eval is below 2,890
    fin["sampled"]["mean"] = 2900.0
    assert " met by both" in L.final_text({"env": "BeamRider-v5", "final": fin})
    assert L.TARGETS[("BeamRider-v5", "a3c")][:2] == (2890.0, 40_000_000)
