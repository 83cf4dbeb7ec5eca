"""Run directories: a run never writes over or into another run's files (fastasync/rundir.py),
the episode log survives a torn row, and a write that fails (disk full) stops the run with a
clear error and the last good checkpoint kept."""

import errno
import hashlib
import os

import pytest
from click.testing import CliRunner

from fastasync import rundir
from fastasync.cli import main
from fastasync.stats import EPISODES_HEADER, read_episodes
from fastasync.rundir import split_episodes_after

HEADER = ",".join(EPISODES_HEADER) + "\n"


def invoke(args):
    return CliRunner().invoke(main, args)


def digest(d):
    """Every file of a directory (but the lock) and its content hash."""
    return {f: hashlib.sha256((d / f).read_bytes()).hexdigest() for f in sorted(os.listdir(d)) if f != rundir.LOCK_NAME}


def cartpole(run, frames="20k", *extra):
    r = invoke(["train", "--env", "CartPole-v1", "--threads", "1", "--frames", frames, "--run-dir", str(run), *extra])
    assert r.exit_code == 0, r.output
    return r


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    cartpole(root / "a")
    cartpole(root / "b", "20k", "--algo", "nstep-q")
    return root / "a", root / "b"


def test_fresh_run_refuses_a_run_that_stopped_before_its_first_checkpoint(tmp_path):
    run = tmp_path / "r"
    run.mkdir()
    (run / "episodes.csv").write_text(HEADER + "1000,1.0,0,999,10\n")
    before = digest(run)
    r = invoke(["train", "--env", "CartPole-v1", "--frames", "2k", "--run-dir", str(run)])
    assert r.exit_code == 2, r.output
    assert "stopped before its first checkpoint (episodes.csv)" in r.output and "Traceback" not in r.output
    assert digest(run) == before


def test_a_directory_holding_only_config_json_is_not_a_run(tmp_path):
    """A run stopped (Ctrl-C) after writing config.json but before any game or checkpoint
    left nothing a new run could mix with: the same command runs again."""
    run = tmp_path / "r"
    run.mkdir()
    (run / "config.json").write_text("{}\n")
    cartpole(run, "2k")
    assert (run / "checkpoint.npz").exists()


def test_resume_near_the_end_of_the_budget_finishes_the_run(two_runs, tmp_path):
    """Fewer frames left than one update of every thread: the last round may overshoot
    (only a budget smaller than one round for the whole run is refused)."""
    from fastasync import checkpoint

    a, _ = two_runs
    ck = checkpoint.load(str(a))
    run = tmp_path / "near"
    r = invoke(["train", "--resume", str(a), "--run-dir", str(run), "--frames", str(ck["frames"] + 1)])
    assert r.exit_code == 0, r.output
    assert checkpoint.load(str(run))["frames"] > ck["frames"]


def test_a_stored_value_that_no_longer_validates_names_the_checkpoint(two_runs, tmp_path):
    """A checkpoint written by an older fastasync that accepted --checkpoint-every-s inf:
    the error says where the value came from and how to override it."""
    import json

    import numpy as np

    from fastasync import checkpoint

    a, _ = two_runs
    ck = checkpoint.load(str(a))
    cfg = json.loads(json.dumps(ck["config"]))
    cfg["run"]["checkpoint_every_s"] = float("inf")
    old = tmp_path / "old"
    old.mkdir()
    checkpoint.save(str(old / "checkpoint.npz"), theta=ck["theta"], rms_g=ck["rms_g"], frames=ck["frames"], wall_s=0,
                    games=0, rng_states=ck["rng_states"], config=cfg, layout_signature=ck["layout"])
    r = invoke(["train", "--resume", str(old), "--frames", "40k"])
    assert r.exit_code == 2 and "checkpoint-every-s must be a finite number" in r.output, r.output
    assert f"resuming {old / 'checkpoint.npz'}" in r.output and "overrides the stored value" in r.output
    r = invoke(["train", "--resume", str(old), "--frames", "40k", "--checkpoint-every-s", "300"])
    assert r.exit_code == 0, r.output
    assert np.isfinite(checkpoint.load(str(old))["theta"]).all()


def test_the_same_directory_by_another_name_is_the_run_itself(two_runs, tmp_path):
    """Resuming through a symlink to the run's directory continues the run there: the claim
    is granted (not refused as another run's directory), it holds the run's own lock, and it
    changes none of the run's files."""
    a, _ = two_runs
    before = digest(a)
    link = tmp_path / "alink"
    link.symlink_to(a)
    held = rundir.claim(str(link), str(a / "checkpoint.npz"))
    try:
        assert os.path.samefile(held.path, a)
        with pytest.raises(rundir.RunDirError, match="in use by another fastasync run"):
            rundir.claim(str(a), str(a / "checkpoint.npz"))  # by its real name: the same lock, taken
    finally:
        held.release()
    assert digest(a) == before
    rundir.claim(str(a), str(a / "checkpoint.npz")).release()  # released: the run's own again


def test_resume_into_a_directory_of_another_run_is_refused(two_runs):
    a, b = two_runs
    before_a, before_b = digest(a), digest(b)
    r = invoke(["train", "--resume", str(a), "--frames", "40k", "--run-dir", str(b)])
    assert r.exit_code == 2, r.output
    assert f"{b} already holds a run" in r.output and "would mix the two" in r.output
    assert digest(a) == before_a and digest(b) == before_b


def test_resume_from_an_older_checkpoint_file_branches_instead_of_replacing(two_runs, tmp_path):
    """``--resume run/backup.npz`` would replace run/checkpoint.npz: refused; into a new
    --run-dir it branches, taking the games up to that checkpoint along."""
    a, _ = two_runs
    backup = a / "backup.npz"
    backup.write_bytes((a / "checkpoint.npz").read_bytes())
    try:
        before = digest(a)
        r = invoke(["train", "--resume", str(backup), "--frames", "40k"])
        assert r.exit_code == 2, r.output
        assert "holds another checkpoint.npz" in r.output and "--run-dir" in r.output
        assert digest(a) == before

        branch = tmp_path / "branch"
        r = invoke(["train", "--resume", str(backup), "--frames", "30k", "--run-dir", str(branch)])
        assert r.exit_code == 0, r.output
        assert digest(a) == before  # the source run is untouched
        src, got = read_episodes(a / "episodes.csv"), read_episodes(branch / "episodes.csv")
        n = len(src["frames"])
        assert got["frames"][:n] == src["frames"] and got["score"][:n] == src["score"]
        assert len(got["frames"]) > n and got["frames"][n] > src["frames"][-1]  # and the branch's own games
    finally:
        backup.unlink()


def test_a_directory_in_use_by_a_run_is_refused(tmp_path, monkeypatch):
    held = rundir.claim(str(tmp_path / "r"))
    try:
        with pytest.raises(rundir.RunDirError, match=f"in use by another fastasync run \\(process {os.getpid()}\\)"):
            rundir.claim(held.path)
        assert os.path.exists(os.path.join(held.path, rundir.LOCK_NAME))  # the refused claim left it alone
        # even a refused claim that saw no lock file a moment before it lost the race to the
        # running run (which created it) leaves the running run's lock file in place
        real_exists = os.path.exists
        monkeypatch.setattr(os.path, "exists", lambda p: False if p.endswith(rundir.LOCK_NAME) else real_exists(p))
        with pytest.raises(rundir.RunDirError, match="in use"):
            rundir.claim(held.path)
        monkeypatch.undo()
        assert os.path.exists(os.path.join(held.path, rundir.LOCK_NAME))
    finally:
        held.release()
    rundir.claim(held.path).release()  # released: free again


def test_an_abandoned_claim_leaves_nothing_behind(tmp_path):
    rundir.claim(str(tmp_path / "new" / "deeper")).abandon()
    (tmp_path / "old").mkdir()
    rundir.claim(str(tmp_path / "old")).abandon()
    assert os.listdir(tmp_path) == ["old"] and os.listdir(tmp_path / "old") == []


def test_auto_named_directories_never_collide(tmp_path):
    """Two runs started in the same second get the same made-up name: the second gets -2."""
    name = str(tmp_path / "runs" / "CartPole-v1-a3c-20261127-120000")
    claims = [rundir.claim(name, auto_named=True) for _ in range(3)]
    for c in claims:
        c.release()
    assert [c.path for c in claims] == [name, name + "-2", name + "-3"]


def test_torn_last_row_leaves_the_log_on_resume(tmp_path):
    """A crash mid-write leaves a row without a newline; appending after it would merge the
    next game into it, so a resume moves it out with the games after the checkpoint."""
    path = tmp_path / "episodes.csv"
    path.write_text(HEADER + "100,1.0,0,5,5\n200,2.0,0,6,6\n250,2.5,0,7")
    split_episodes_after(str(path), 300)
    assert path.read_text() == HEADER + "100,1.0,0,5,5\n200,2.0,0,6,6\n"
    assert (tmp_path / "episodes-after-checkpoint.csv").read_text() == HEADER + "250,2.5,0,7\n"


def test_disk_full_stops_the_run_with_a_clear_error_and_keeps_the_checkpoint(two_runs, tmp_path, monkeypatch):
    from fastasync import stats

    a, _ = two_runs
    run = tmp_path / "full"
    r = invoke(["train", "--resume", str(a), "--frames", "30k", "--run-dir", str(run)])  # a run with a checkpoint
    assert r.exit_code == 0, r.output
    before = (run / "checkpoint.npz").read_bytes()

    def full(self, rows):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(stats.EpisodeLog, "write", full)
    r = invoke(["train", "--resume", str(run), "--frames", "1M"])
    assert r.exit_code == 1, r.output
    err = [line for line in r.output.splitlines() if line.startswith("Error:")]
    assert len(err) == 1 and "Traceback" not in r.output, r.output
    assert "No space left on device" in err[0] and "last good checkpoint is kept" in err[0]
    assert (run / "checkpoint.npz").read_bytes() == before


def test_output_files_are_checked_before_the_work(two_runs, tmp_path):
    a, _ = two_runs
    for args, needle in [
        (["plot", str(a), "-o", str(tmp_path / "nodir" / "c.png")], "there is no directory"),
        (["plot", str(a), "-o", str(tmp_path)], "is a directory"),
        (["eval", str(a), "--gif", str(tmp_path / "nodir" / "x.gif")], "there is no directory"),
    ]:
        r = invoke(args)
        assert r.exit_code == 2 and needle in r.output and "Traceback" not in r.output, r.output


def test_split_by_the_checkpoints_game_count_too(tmp_path):
    """A game stamped at the checkpoint's frame count but logged after it is not in the
    checkpoint's game count: it goes aside with the later ones, so that the resumed run's
    count and its episodes.csv agree."""
    path = tmp_path / "episodes.csv"
    path.write_text("frames,wall_s,thread,score,length\n100,1,0,5,5\n200,2,0,6,6\n300,3,1,7,7\n300,3,0,8,8\n400,4,0,9,9\n")
    split_episodes_after(str(path), 300, games=3)
    assert path.read_text().splitlines()[1:] == ["100,1,0,5,5", "200,2,0,6,6", "300,3,1,7,7"]
    side = (tmp_path / "episodes-after-checkpoint.csv").read_text().splitlines()
    assert side == ["frames,wall_s,thread,score,length", "300,3,0,8,8", "400,4,0,9,9"]
