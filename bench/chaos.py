"""Chaos check: stop runs at random moments, the hard way and the polite ways, then resume them.

    python bench/chaos.py --env CartPole-v1 --trials 20                   # one machine
    python bench/chaos.py --env CartPole-v1 --trials 20 --ray             # a local Ray, 2 nodes x 1 thread
    python bench/chaos.py --env Pong-v5 --trials 20 --frames 300k

Each trial starts ``fastasync train`` (``--tensorboard`` on, a checkpoint every few seconds),
waits a random time after its first progress line, sends it a random one of SIGKILL,
SIGTERM and SIGINT, then ``fastasync train --resume`` runs it to its budget. It checks what a
user counts on: the stop's exit status (-9, 143, 130), that the resume reaches the budget,
that no more games were lost than were logged after the last checkpoint (they are moved to
episodes-after-checkpoint.csv, never deleted), that the checkpoint counts every game left in
episodes.csv, that every row of episodes.csv is whole, and that TensorBoard reads the event
files with one ``score/game`` point per logged game; on Ray, that no process of the local Ray
instance (raylet, GCS server) outlives its driver, killed or not. The report (a markdown table and
chaos.json) goes into --out; bench/RESULTS.md records it. Not part of the test suite: it
takes minutes per trial on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIGNALS = {"SIGKILL": signal.SIGKILL, "SIGTERM": signal.SIGTERM, "SIGINT": signal.SIGINT}
EXPECTED = {"SIGKILL": -9, "SIGTERM": 143, "SIGINT": 130}


def _train(args: list, log: str) -> subprocess.Popen:
    """``fastasync train`` with its output into the file ``log`` (never a pipe: a run that is
    stopped goes on writing its last lines, which a closed pipe would turn into an error)."""
    cmd = [sys.executable, "-W", "ignore", "-m", "fastasync.cli", "train", *args]
    with open(log, "a") as fh:
        return subprocess.Popen(cmd, stderr=fh, stdout=subprocess.DEVNULL, text=True, cwd=ROOT,
                                env={**os.environ, "PYTHONPATH": ROOT, "PYTHONUNBUFFERED": "1"}, start_new_session=True)


def _rows(path: str) -> list:
    """Data rows of an episodes csv, and whether each is whole (5 numeric fields)."""
    if not os.path.exists(path):
        return []
    with open(path) as fh:
        lines = fh.read().splitlines()[1:]
    out = []
    for line in lines:
        parts = line.split(",")
        try:
            whole = len(parts) == 5 and all(p != "" for p in parts) and [float(p) for p in parts] is not None
        except ValueError:
            whole = False
        out.append((line, whole))
    return out


def _ray_left(wait_s: float = 30.0) -> int:
    """Processes of a local Ray instance (raylet, GCS server) still alive ``wait_s`` seconds
    after its driver ended (the trials are the only Ray on the machine)."""
    t0 = time.monotonic()
    while True:
        out = subprocess.run(["pgrep", "-f", "raylet|gcs_server"], capture_output=True, text=True).stdout.split()
        if not out or time.monotonic() - t0 > wait_s:
            return len(out)
        time.sleep(1.0)


def trial(i: int, a, rng: random.Random) -> dict:
    from fastasync import checkpoint

    run = os.path.join(a.out, f"trial-{i:02d}")
    start = ["--env", a.env, "--frames", a.frames, "--run-dir", run, "--tensorboard", "--seed", str(i),
             "--checkpoint-every-s", str(a.checkpoint_every_s), "--progress-every-s", "0.5"]
    start += ["--ray", "--nodes", "2", "--threads", "1"] if a.ray else ["--threads", str(a.threads)]
    name = rng.choice(sorted(SIGNALS))
    wait_s = rng.uniform(a.min_s, a.max_s)
    res = {"trial": i, "signal": name, "after_s": round(wait_s, 1)}
    log = run + ".log"
    p = _train(start, log)
    t0 = time.monotonic()
    while p.poll() is None and time.monotonic() - t0 < 600:  # the first progress line: training
        with open(log) as fh:
            if any(line.startswith("frames") for line in fh):
                break
        time.sleep(0.2)
    time.sleep(wait_s)
    ck_path = os.path.join(run, checkpoint.CHECKPOINT_NAME)
    before = checkpoint.load(ck_path)["frames"] if os.path.exists(ck_path) else 0
    os.killpg(p.pid, SIGNALS[name]) if name == "SIGKILL" else p.send_signal(SIGNALS[name])
    try:
        res["exit"] = p.wait(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        res["exit"] = f"hung, killed ({p.wait()})"
    logged = _rows(os.path.join(run, "episodes.csv"))
    ck_frames = checkpoint.load(ck_path)["frames"] if os.path.exists(ck_path) else 0
    from fastasync.config import parse_count

    budget = parse_count(a.frames)
    if a.ray:  # a local Ray instance stops with its driver, also one killed with SIGKILL
        res["ray_processes_left"] = _ray_left()
    if ck_frames >= budget:  # its training ended before the signal came (it may still have been
        # shutting down: then the signal's exit): not a trial of a stop
        res.update(exit_ok=None, resumed=None, note="finished before the signal")
        return res
    res.update(exit_ok=res["exit"] == EXPECTED[name], checkpoint_frames=ck_frames, checkpoint_before_stop=before,
               logged_at_stop=len(logged))
    if not os.path.exists(ck_path):  # stopped before its first checkpoint: a new run starts over
        res.update(resumed=None, note="no checkpoint yet: nothing to resume (a rerun starts afresh)")
        return res
    r = _train(["--resume", run], log)
    code = r.wait()
    if a.ray:
        res["ray_processes_left"] = max(res["ray_processes_left"], _ray_left())
    final = checkpoint.load(ck_path)
    rows = _rows(os.path.join(run, "episodes.csv"))
    late = _rows(os.path.join(run, "episodes-after-checkpoint.csv"))
    res.update(resumed=code == 0 and final["frames"] >= budget, resume_exit=code,
               final_frames=int(final["frames"]), games=len(rows), games_lost=len(late),
               # aside: games stamped at or after the checkpoint's frame count (one stamped at it, logged after it)
               lost_within_last_checkpoint=all(int(float(x.split(",")[0])) >= ck_frames for x, ok in late if ok),
               rows_whole=all(ok for _x, ok in rows), checkpoint_counts_every_game=int(final["games"]) == len(rows))
    try:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        acc = EventAccumulator(run, size_guidance={"scalars": 0})
        acc.Reload()
        points = acc.Scalars("score/game")
        res["tb_readable"] = True
        # TensorBoard hides, past the resume's purge step, the first part's points after the checkpoint;
        # a SIGKILL may also cost the events not yet flushed (every 10 s): counted, not failed
        res["tb_game_points"] = len(points)
        res["tb_points_missing"] = max(0, len(rows) - len(points))
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        res.update(tb_readable=False, tb_error=f"{type(exc).__name__}: {exc}")
    return res


def report(results: list, a) -> str:
    n = len(results)
    resumed = [r for r in results if r.get("resumed")]
    lines = [f"Chaos check, {a.env}, {'Ray 2 nodes x 1 thread' if a.ray else f'{a.threads} threads'}, "
             f"--frames {a.frames}, checkpoint every {a.checkpoint_every_s:g} s, {n} trials",
             "",
             "| trial | signal | after s | exit as expected | resumed to budget | games lost (after the checkpoint) "
             "| rows whole | checkpoint counts every game | TensorBoard readable |" + (" Ray processes left |" if a.ray else ""),
             "|--:|---|--:|---|---|--:|---|---|---|" + ("--:|" if a.ray else "")]
    for r in results:
        lines.append(f"| {r['trial']} | {r['signal']} | {r['after_s']} | {r.get('exit_ok')} ({r.get('exit')}) | "
                     f"{r.get('resumed', r.get('note'))} | {r.get('games_lost', '-')} "
                     f"({r.get('lost_within_last_checkpoint', '-')}) | {r.get('rows_whole', '-')} | "
                     f"{r.get('checkpoint_counts_every_game', '-')} | {r.get('tb_readable', '-')} "
                     f"({r.get('tb_points_missing', '-')} points missing) |"
                     + (f" {r.get('ray_processes_left', '-')} |" if a.ray else ""))
    lost = [r["games_lost"] for r in resumed]
    lines += ["", f"resumed to the budget: {len(resumed)} of {sum(r.get('resumed') is not None for r in results)} "
              f"with a checkpoint ({n} trials); exits as expected: {sum(bool(r.get('exit_ok')) for r in results)} of {n}; "
              f"games lost per trial: max {max(lost) if lost else 0}, total {sum(lost)}, every lost game logged after "
              f"the last checkpoint: {all(r.get('lost_within_last_checkpoint', True) for r in resumed)}; episodes.csv "
              f"whole: {all(r.get('rows_whole', True) for r in resumed)}; TensorBoard readable: "
              f"{all(r.get('tb_readable', True) for r in resumed)}, game points missing (unflushed at a kill): "
              f"{sum(r.get('tb_points_missing', 0) for r in resumed)}"
              + (f"; Ray processes left after a trial: {max(r.get('ray_processes_left', 0) for r in results)}"
                 if a.ray else "")]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--env", default="CartPole-v1")
    p.add_argument("--frames", default="1M")
    p.add_argument("--trials", type=int, default=20)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--ray", action="store_true", help="a local Ray instance, 2 nodes x 1 thread")
    p.add_argument("--checkpoint-every-s", type=float, default=5.0)
    p.add_argument("--min-s", type=float, default=0.5, help="shortest wait after the first progress line")
    p.add_argument("--max-s", type=float, default=20.0, help="longest wait after the first progress line")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=os.path.join(ROOT, "runs", "chaos"))
    a = p.parse_args(argv)
    sys.path.insert(0, ROOT)
    os.makedirs(a.out, exist_ok=True)
    rng = random.Random(a.seed)
    results = []
    for i in range(a.trials):
        res = trial(i, a, rng)
        results.append(res)
        print(json.dumps(res), flush=True)
        with open(os.path.join(a.out, "chaos.json"), "w") as fh:
            json.dump(results, fh, indent=1)
    text = report(results, a)
    with open(os.path.join(a.out, "REPORT.md"), "w") as fh:
        fh.write(text + "\n")
    print(text)
    ok = all(r.get("exit_ok") is not False and r.get("resumed") is not False and r.get("rows_whole", True)
             and r.get("lost_within_last_checkpoint", True) and r.get("tb_readable", True)
             and not r.get("ray_processes_left") for r in results)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
