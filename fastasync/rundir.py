"""A run's directory: which files make a run, and claiming a directory so that two runs never mix.

A run directory holds ``checkpoint.npz``, ``episodes.csv`` (and ``episodes-after-checkpoint.csv``
after a resume that found games logged past the checkpoint) and ``config.json``. Before
anything is written, ``claim`` decides whether a run may write there:

* a fresh run needs a directory that holds none of a run's files, even a run that stopped
  before its first checkpoint (its games would be mixed into the new curve);
* a resumed run may continue in its checkpoint's own directory, unless that directory's
  ``checkpoint.npz`` is another file than the one resumed (``--resume run/backup.npz`` would
  replace the newer checkpoint.npz); any other directory (``--run-dir``) must hold no run:
  the resumed run branches there (``prepare`` copies the games up to the checkpoint, so that
  the curve goes on);
* while a run trains, its process holds an advisory lock on ``RUN_DIR/.lock`` (``flock``:
  the OS drops it when the process ends, however it ends), so a second run into the same
  directory at the same time is refused; the lock file is only ever removed by the process
  that holds the lock (a refused run leaves it alone);
* ``config.json`` alone is not a run (it is written before training starts, and rewritten
  by every run): a run interrupted before it logged a game or wrote a checkpoint leaves
  nothing that a new run could mix with;
* a directory named automatically (``runs/<env>-<algo>-<time>``) that is already taken, by a
  run started in the same second, gets the first free suffix ``-2``, ``-3``, ...
"""

from __future__ import annotations

import json
import os

from .checkpoint import CHECKPOINT_NAME, atomic_write_text
from .errors import RunDirError

RUN_FILES = (CHECKPOINT_NAME, "episodes.csv", "episodes-after-checkpoint.csv")  # a run's results
LOCK_NAME = ".lock"




def run_files(path: str) -> list[str]:
    """The run files ``path`` holds (none for a missing directory)."""
    return [f for f in RUN_FILES if os.path.exists(os.path.join(path, f))]


class Claim:
    """A run's hold on its directory: ``release()`` when the run ends (the process ending
    does it too); ``abandon()`` when the run never started, which also removes the lock file
    and the directory where ``claim`` created them, so that bad input leaves nothing behind."""

    def __init__(self, path, fh, made_top, made_lock):
        self.path, self._fh, self._made_top, self._made_lock = path, fh, made_top, made_lock

    def release(self):
        self._fh.close()

    def abandon(self):
        if self._made_lock:  # while still holding it: no other run can be using this file
            try:
                os.unlink(os.path.join(self.path, LOCK_NAME))
            except OSError:
                pass
        self.release()
        _remove_made_dirs(self.path, self._made_top)


def _remove_made_dirs(path, made_top):
    """Remove the directories ``claim`` made, if still empty: from ``path`` up to
    ``made_top``, the first that did not exist (None: none)."""
    p = os.path.abspath(path)
    try:
        while made_top is not None:
            os.rmdir(p)  # only if empty (another run's lock file keeps it)
            if p == made_top:
                break
            p = os.path.dirname(p)
    except OSError:
        pass


def _first_missing(path):
    """The outermost directory of ``path`` that does not exist yet (None: it exists)."""
    p, top = os.path.abspath(path), None
    while not os.path.exists(p):
        p, top = os.path.dirname(p), p
    return top


def claim(run_dir: str, resume_path: str | None = None, auto_named: bool = False) -> Claim:
    """Check that a run may write into ``run_dir``, create it and lock it.

    ``resume_path``: the checkpoint file being resumed (None: a fresh run). ``auto_named``:
    the directory name was made up (not given), so a taken one is replaced by a free
    ``run_dir-2``, ``-3``, ... (``Claim.path`` is the one taken). Raises RunDirError (or
    OSError when the directory cannot be created).
    """
    if os.path.exists(run_dir) and not os.path.isdir(run_dir):
        raise RunDirError(f"--run-dir {run_dir} exists and is not a directory")
    made_top = _first_missing(run_dir)
    if auto_named:
        run_dir = _free_name(run_dir)
        made_top = made_top or os.path.abspath(run_dir)
    os.makedirs(run_dir, exist_ok=True)
    made_lock = not os.path.exists(os.path.join(run_dir, LOCK_NAME))
    try:
        held = Claim(run_dir, _lock(run_dir), made_top, made_lock)
    except BaseException:
        _remove_made_dirs(run_dir, made_top)  # the lock file is left: it may be the running run's
        raise
    try:
        _check_contents(run_dir, resume_path)
    except BaseException:
        held.abandon()
        raise
    return held


def _free_name(path: str) -> str:
    candidate, k = path, 2
    while True:
        try:
            os.makedirs(candidate)  # exclusive: two processes never get the same name
            return candidate
        except FileExistsError:
            candidate, k = f"{path}-{k}", k + 1


def _lock(run_dir: str):
    path = os.path.join(run_dir, LOCK_NAME)
    fh = open(path, "a+")
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock (the content checks still apply)
        return fh
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:  # held by another process (other errors: a file system without locks)
        fh.seek(0)
        owner = fh.read().strip()
        fh.close()
        raise RunDirError(
            f"{run_dir} is in use by another fastasync run{f' (process {owner})' if owner else ''}; "
            "wait for it to end or choose another --run-dir"
        ) from None
    except OSError:  # a file system without locks (some NFS, FUSE): the content checks still apply
        pass
    fh.seek(0)
    fh.truncate()
    fh.write(f"{os.getpid()}\n")
    fh.flush()
    return fh


def _check_contents(run_dir: str, resume_path: str | None) -> None:
    found = run_files(run_dir)
    if resume_path is None:
        if not found:
            return
        if CHECKPOINT_NAME in found:
            raise RunDirError(
                f"{run_dir} already holds a run; continue it with --resume {run_dir} or choose another --run-dir"
            )
        raise RunDirError(
            f"{run_dir} holds a run that stopped before its first checkpoint ({', '.join(found)}); "
            "its games would be mixed into this run's: choose another --run-dir, or delete it"
        )
    resume_path = os.path.realpath(resume_path)
    here = os.path.join(os.path.realpath(run_dir), CHECKPOINT_NAME)
    if os.path.dirname(resume_path) == os.path.realpath(run_dir):  # the same directory by any name
        if os.path.exists(here) and not os.path.samefile(here, resume_path):
            raise RunDirError(
                f"{run_dir} holds another {CHECKPOINT_NAME}, which resuming {os.path.basename(resume_path)} there "
                f"would replace: to continue from {os.path.basename(resume_path)}, pass --run-dir <a new directory>"
            )
        return
    if found:
        raise RunDirError(
            f"{run_dir} already holds a run ({', '.join(found)}); resuming {resume_path} there would mix the two: "
            "choose an empty --run-dir, or leave --run-dir out to continue in the checkpoint's own directory"
        )


# -- preparing a run's directory -------------------------------------------------------------


def prepare(run_dir: str, config: dict, resume_path: str | None = None, resume_frames: int | None = None,
            resume_games: int | None = None) -> None:
    """Create the run directory and write config.json (raises OSError on failure).

    On resume in the checkpoint's own directory, games logged after the checkpoint (a crash
    lost their training) are moved from episodes.csv to episodes-after-checkpoint.csv, so that
    the curve and the game count continue from the checkpoint and nothing written is lost;
    resumed into another directory (a branch), the games up to the checkpoint are copied there.
    """
    os.makedirs(run_dir, exist_ok=True)
    atomic_write_text(os.path.join(run_dir, "config.json"), json.dumps(config, indent=2) + "\n")
    if resume_frames is not None:
        episodes = os.path.join(run_dir, "episodes.csv")
        source = os.path.join(os.path.dirname(os.path.abspath(resume_path)), "episodes.csv")
        if os.path.abspath(episodes) != source:
            copy_episodes_until(source, episodes, resume_frames, resume_games)
        split_episodes_after(episodes, resume_frames, resume_games)


def _episode_lines(path, frames, games=None):
    """(header, rows logged up to ``frames``, the rest) of an episodes.csv's lines. The rest
    includes a last row cut short by a crash (no newline): appending after it would merge
    the next game into it; and, given ``games`` (the checkpoint's count of logged games),
    every row past the first ``games``: a game stamped at the checkpoint's frame count but
    logged just after it is not in the checkpoint's count (the chaos check saw it)."""
    with open(path, newline="") as fh:
        lines = fh.read().splitlines(keepends=True)
    if not lines:
        return None, [], []
    keep, late = [], []
    for line in lines[1:]:
        head = line.split(",", 1)[0]
        torn = not line.endswith("\n")
        past = games is not None and len(keep) >= games
        (late if torn or past or (head.isdigit() and int(head) > frames) else keep).append(line)
    if late and not late[-1].endswith("\n"):
        late[-1] += "\n"
    return lines[0], keep, late


def split_episodes_after(path, frames, games=None):
    """Move rows of episodes.csv logged after ``frames`` or past the first ``games`` (and a
    torn last row) to episodes-after-checkpoint.csv."""
    if not os.path.exists(path):
        return
    header, keep, late = _episode_lines(path, frames, games)
    if not late:
        return
    side = os.path.join(os.path.dirname(path), "episodes-after-checkpoint.csv")
    new_side = not os.path.exists(side)
    with open(side, "a", newline="") as fh:
        if new_side:
            fh.write(header)
        fh.writelines(late)
        fh.flush()
        os.fsync(fh.fileno())
    atomic_write_text(path, header + "".join(keep))


def copy_episodes_until(source, dest, frames, games=None):
    """A resumed run's branch: the rows of ``source`` logged up to ``frames`` (the first
    ``games`` at most) into a new ``dest``."""
    if not os.path.exists(source):
        return
    header, keep, _ = _episode_lines(source, frames, games)
    if header is not None:
        atomic_write_text(dest, header + "".join(keep))
