"""Learning proofs: run `fastasync train` for a (game, method, seed, frame budget), in parts,
and write its evidence folder and the README's results table.

    python bench/learning.py run --env Pong-v5 --algo nstep-q            # one part, until done
    python bench/learning.py run --env Pong-v5 --algo a3c --seed 1 --minutes 50   # a part of 50 min
    python bench/learning.py run --env Pong-v5 --algo a3c --ray-nodes 2 --threads 1   # on Ray
    python bench/learning.py summarize                                   # every run: folders + table

``run`` trains into ``runs/learning/<name>/`` (checkpoints stay out of the repository) with
the method's and family's defaults: only --env, --algo, --seed, --frames and --run-dir are
given to `fastasync train`, plus any options after ``--``. Run the same command again to
continue a stopped run (``--resume``: the frame counter, lr schedule and optimiser state go
on). A part ends at its budget of frames, after ``--minutes``, or, unless ``--keep-going``,
when the mean true score of the last 10 games first reaches the target (the frames and the
wall time of that first crossing are what the proof reports; the run would only go on
annealing its lr). Each part is logged in ``parts.json`` with the commit it ran.

``run --final`` is the final mode: the proof runs to its budget whatever it crosses on the
way (every later part too: proof.json records the mode), and when the budget is spent it
measures where the policy ends: the mean true score of the last 100 training games, and
``fastasync eval`` of the final checkpoint over ``--final-episodes`` games (30), with the
sampled policy (as the A2C baseline's figures) and greedy. Those go into proof.json
(``final``), the SUMMARY and the README's final table (between ``<!-- final-table:start -->``
and ``<!-- final-table:end -->``), beside the first crossing.

The evidence folder ``docs/learning/<name>/`` (``<env>-<algo>[-seed<N>]``) gets the
episodes.csv and config.json of the run, its curve (`fastasync plot`) and a SUMMARY.md:
frames and wall time when the target was first reached, best and final 10-game mean,
frames/s, machine, commits and the one command that reproduces it, followed by the folder's
NOTES.md when there is one (what a missed target was traced to, what was tried). A
``caveat`` written by hand into a run directory's proof.json (``summarize`` copies that one
over the folder's; what a crossing does not show, e.g. a policy that did not hold it)
follows the crossing in the SUMMARY and the table. ``summarize`` rewrites
every folder from its run directory (when present) and the table between the README's
``<!-- learning-table:start -->`` and ``<!-- learning-table:end -->`` lines from the SUMMARY
files, so the table is never typed by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_RUNS = os.path.join(ROOT, "runs", "learning")
DEFAULT_DOCS = os.path.join(ROOT, "docs", "learning")
WINDOW = 10  # games in the mean that is compared with the target
RATE_WINDOW = 100  # games in the success rate of envs whose games succeed or fail (ViZDoom)

# (env, algo) -> (target of the 10-game mean of the true score, frame budget, the paper's figure)
TARGETS = {
    ("Pong-v5", "a3c"): (18.0, 40_000_000, "solved within ~40M frames on 16 threads (data-efficiency figure)"),
    ("Breakout-v5", "a3c"): (300.0, 40_000_000, "551.6 after 1 day (320M frames) on 16 threads"),
    ("Pong-v5", "nstep-q"): (18.0, 40_000_000, "solved within ~40M frames on 16 threads (data-efficiency figure)"),
    ("Pong-v5", "a3c-lstm"): (18.0, 40_000_000, "-"),
    ("Pong-v5", "onestep-q"): (0.0, 40_000_000, "learns, more slowly than n-step Q and A3C"),
    ("Pong-v5", "onestep-sarsa"): (0.0, 40_000_000, "learns, more slowly than n-step Q and A3C"),
    ("CartPole-v1", "a3c"): (195.0, 2_000_000, "-"),
    # MuJoCo (frames = env steps): the targets; the paper shows these tasks as curves only
    ("HalfCheetah-v4", "a3c"): (2000.0, 5_000_000, "figures only (scores of many runs after training on 16 threads), no table"),
    ("Hopper-v4", "a3c"): (1500.0, 5_000_000, "figures only (scores of many runs after training on 16 threads), no table"),
    # ViZDoom (frames = tics; the measure is the share of the last 100 games that succeeded) and
    # CarRacing (frames = env steps): issue 20's targets; the paper had Labyrinth and TORCS instead
    ("MyWayHome-v1", "a3c-lstm"): (0.9, 40_000_000, "Labyrinth instead (not installable); for scale, sample-factory's APPO reaches 0.98"),
    ("HealthGathering-v1", "a3c"): (0.9, 20_000_000, "Labyrinth instead (not installable)"),
    ("CarRacing-v3", "a3c"): (800.0, 40_000_000, "TORCS instead (not installable); CarRacing counts as solved at 900"),
}
# The paper's five Atari games: the A2C of the stable-baselines3 zoo at 40M frames (one run each,
# evaluated with the sampled policy; Q*bert from the older zoo table) and the paper's A3C FF after
# one day on 16 cores (its supplementary table S3): what a final run is compared with.
ATARI_FIVE = {
    "BeamRider-v5": (2_890.0, 13_235.9),
    "Breakout-v5": (280.0, 551.6),
    "Pong-v5": (19.0, 11.4),
    "Qbert-v5": (5_742.0, 13_752.3),
    "SpaceInvaders-v5": (659.0, 2_214.7),
}
for _env, (_a2c, _paper) in ATARI_FIVE.items():
    TARGETS.setdefault((_env, "a3c"), (_a2c, 40_000_000, f"{_paper:,.1f} after 1 day on 16 threads"))
FINAL_EPISODES = 30  # eval games of the final checkpoint (sampled, then greedy)
FINAL_WINDOW = 100  # training games in the final mean
README_START = "<!-- learning-table:start -->"
README_END = "<!-- learning-table:end -->"
FINAL_START = "<!-- final-table:start -->"
FINAL_END = "<!-- final-table:end -->"


def run_name(env: str, algo: str, seed: int, ray_nodes: int = 0, threads: int = 0) -> str:
    return f"{env}-{algo}" + (f"-seed{seed}" if seed else "") + (f"-ray{ray_nodes}x{threads}" if ray_nodes else "")


def _method(meta: dict, config: dict | None = None) -> str:
    """The table's method column: the algo, where it ran when not on one machine, and "x/255
    frames" for a pixel env's run from before centred frames were the default (``config``:
    the run's config.json; a05525e)."""
    n = meta.get("ray_nodes", 0)
    out = meta["algo"] + (f" (Ray, {n} nodes x {meta['threads']} thread{'s' if meta['threads'] > 1 else ''})" if n else "")
    if config is not None and _pixels(meta["env"]) and not config.get("algo", {}).get("frame_center"):
        out += ", x/255 frames"
    return out


def _pixels(env: str) -> bool:
    sys.path.insert(0, ROOT)
    from fastasync.envs.families import family

    return family(env).stack > 1


def _config(folder: str) -> dict:
    path = os.path.join(folder, "config.json")
    if not os.path.exists(path):
        return {}
    with open(path) as fh:
        return json.load(fh)


def measure(env: str) -> dict:
    """What a proof compares with its target: the mean true score of the last 10 games, or for
    ViZDoom (whose games succeed or fail) the share of the last 100 that succeeded."""
    sys.path.insert(0, ROOT)
    from fastasync.envs.families import family

    name = family(env).outcome_name(env)
    if name is None:
        return dict(window=WINDOW, rate=False, what=f"the mean true score of the last {WINDOW} games",
                    short=f"{WINDOW}-game mean")
    return dict(window=RATE_WINDOW, rate=True, what=f"the share of the last {RATE_WINDOW} games that {name}",
                short=f"{RATE_WINDOW}-game rate, {name}")


def fmt_value(m: dict, v: float) -> str:
    return f"{v:.0%}" if m["rate"] else f"{v:+.1f}"


def fmt_target(m: dict, v: float) -> str:
    return f"{v:.0%}" if m["rate"] else f"{v:+g}"


def read_games(run_dir: str, env: str | None = None) -> dict:
    """The run's finished games in frame order: frames, wall_s, score, length (numpy arrays) and
    ``value``, what the target is measured on (the score, or 1/0 for a ViZDoom game's success)."""
    sys.path.insert(0, ROOT)
    from fastasync.envs.families import family
    from fastasync.stats import read_episodes

    outcome = family(env).outcome

    path = os.path.join(run_dir, "episodes.csv")
    keys = ("frames", "wall_s", "score", "length")
    if not os.path.exists(path):
        games = {k: np.zeros(0) for k in keys}
    else:
        d = read_episodes(path)
        order = np.argsort(np.asarray(d["frames"]), kind="stable")
        games = {k: np.asarray(d[k], float)[order] for k in keys}
    m = measure(env or "")
    games["value"] = (np.array([float(outcome(env, s, int(n))) for s, n in zip(games["score"], games["length"])])
                      if m["rate"] else games["score"])
    games["window"] = m["window"]
    return games


def rolling(games: dict) -> np.ndarray:
    """The measure after each game from the window-th on (mean of the last ``window`` values)."""
    v, n = games["value"], games["window"]
    # the sum, then one division: 90 successes of 100 are exactly 0.9 (a convolution with
    # weights 1/n rounds differently per CPU and gave 0.8999... on an AVX-512 machine)
    return np.convolve(v, np.ones(n), mode="valid") / n if len(v) >= n else np.zeros(0)


def first_crossing(games: dict, target: float):
    """(index, value) of the first game at which the measure over the last games is >= target."""
    means = rolling(games)
    hit = np.flatnonzero(means >= target)
    if not len(hit):
        return None
    i = int(hit[0])
    return i + games["window"] - 1, float(means[i])


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
        return out.stdout.strip() + ("+changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _machine() -> str:
    sys.path.insert(0, ROOT)
    from fastasync.perf import cpu_model

    return f"{cpu_model()}, {os.cpu_count()} CPUs, {platform.system()}"


def _fmt(frames: float) -> str:
    """40000000 -> '40M', 30000 -> '30k'."""
    if frames >= 1e6:
        return f"{frames / 1e6:.4g}M"
    return f"{frames / 1e3:.4g}k" if frames else "0"


def _folder_options(runs_dir=None, docs_dir=None) -> list:
    """--runs-dir / --docs-dir as the command must give them: only where they are not the
    defaults (a proof at other options goes to folders of its own; its command without them
    would continue the default proof's run and overwrite its evidence), relative to the
    repository where they lie inside it."""
    def shown(path):
        rel = os.path.relpath(os.path.abspath(path), ROOT)
        return path if rel.startswith("..") else rel

    out = []
    for flag, path, default in (("--runs-dir", runs_dir, DEFAULT_RUNS), ("--docs-dir", docs_dir, DEFAULT_DOCS)):
        if path is not None and os.path.abspath(path) != default:
            out.append(f"{flag} {shown(path)}")
    return out


def _command(env, algo, seed, frames, target, extra, ray_nodes=0, threads=0, final=False, folders=()) -> str:
    parts = ["python bench/learning.py", *folders, "run", f"--env {env}", f"--algo {algo}"]
    known = TARGETS.get((env, algo), (None, None))
    if seed:
        parts.append(f"--seed {seed}")
    if ray_nodes:
        parts.append(f"--ray-nodes {ray_nodes} --threads {threads}")
    if frames != known[1]:
        parts.append(f"--frames {frames}")
    if target != known[0]:
        parts.append(f"--target {target:g}")
    if final:
        parts.append("--final")
    if extra:
        parts += ["--", *extra]
    return " ".join(parts)


# -- run --------------------------------------------------------------------------------------


def cmd_run(args) -> int:
    env, algo, seed = args.env, args.algo, args.seed
    target, budget, _paper = TARGETS.get((env, algo), (args.target, args.frames, "-"))
    target = args.target if args.target is not None else target
    frames = args.frames or budget
    if target is None or frames is None:
        print(f"error: no target/budget known for {env} {algo}: give --target and --frames", file=sys.stderr)
        return 2
    if args.ray_nodes < 0:
        print(f"error: --ray-nodes must be >= 0, got {args.ray_nodes}", file=sys.stderr)
        return 2
    if args.ray_nodes and not args.threads:
        print("error: with --ray-nodes give --threads (learner threads per node)", file=sys.stderr)
        return 2
    name = run_name(env, algo, seed, args.ray_nodes, args.threads)
    run_dir = os.path.join(args.runs_dir, name)
    meta_path = os.path.join(run_dir, "proof.json")
    meta = {"env": env, "algo": algo, "seed": seed, "frames": frames, "target": target, "extra": args.extra,
            "parts": []}
    if args.final:
        meta["final_mode"] = True
    if args.ray_nodes:
        meta.update(ray_nodes=args.ray_nodes, threads=args.threads)
    if os.path.exists(meta_path):
        with open(meta_path) as fh:
            meta = json.load(fh)
        if (meta["env"], meta["algo"], meta["seed"]) != (env, algo, seed):
            print(f"error: {run_dir} holds another proof ({meta['env']} {meta['algo']} seed {meta['seed']})", file=sys.stderr)
            return 2
        frames, target = meta["frames"], meta["target"]
        if args.final and not meta.get("final_mode"):
            meta["final_mode"] = True  # from now on it runs to its budget
            _write_json(meta_path, meta)
    keep_going = args.keep_going or meta.get("final_mode", False)
    games = read_games(run_dir, env)
    crossing = first_crossing(games, target)
    resumable = os.path.exists(os.path.join(run_dir, "checkpoint.npz"))
    if crossing is not None and not keep_going:
        print(f"{name}: target {target:g} already reached at {games['frames'][crossing[0]]:,.0f} frames")
        summarize_run(run_dir, args.docs_dir)
        return 0
    if resumable:
        done = _checkpoint_frames(run_dir)
        if done >= frames:
            print(f"{name}: the budget of {frames:,} frames is spent")
            if meta.get("final_mode") and "final" not in meta:
                meta["final"] = final_figures(run_dir, env, args.final_episodes)
                _write_json(meta_path, meta)
            summarize_run(run_dir, args.docs_dir)
            return 0
    else:
        os.makedirs(args.runs_dir, exist_ok=True)
    cmd = train_command(meta, run_dir, resumable, args.threads)
    print("$ " + " ".join(cmd), flush=True)
    part = {"commit": _git_commit(), "machine": _machine(), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            "frames_before": _checkpoint_frames(run_dir) if resumable else 0}
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": ROOT})
    stop_reason = None

    def stop(signum, frame):  # SIGTERM (and SIGINT where a background shell ignores it): stop the part cleanly
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        while proc.poll() is None:
            time.sleep(args.poll_s)
            if not os.path.exists(meta_path) and os.path.exists(os.path.join(run_dir, "config.json")):
                _write_json(meta_path, meta)  # the run directory is the trainer's now: the proof's notes go in
            if stop_reason:
                continue
            games = read_games(run_dir, env)
            crossing = first_crossing(games, target)
            if crossing is not None and not keep_going:
                stop_reason = "target reached"
            elif args.minutes and time.monotonic() - t0 > 60 * args.minutes and len(games["score"]):
                stop_reason = f"part of {args.minutes:g} min over"
            if stop_reason:
                print(f"{name}: {stop_reason}; stopping the run (it writes a checkpoint)", flush=True)
                proc.send_signal(signal.SIGINT)
    except KeyboardInterrupt:
        stop_reason = "interrupted"
        proc.send_signal(signal.SIGINT)
    code = proc.wait()
    part.update(ended=time.strftime("%Y-%m-%d %H:%M:%S"), frames_after=_checkpoint_frames(run_dir),
                exit_code=code, stop=stop_reason or ("budget spent" if code == 0 else f"exit {code}"))
    if os.path.isdir(run_dir):
        meta["parts"].append(part)
        if meta.get("final_mode") and code == 0 and part["frames_after"] >= frames:
            _write_json(meta_path, meta)
            print(f"{name}: budget spent; evaluating the final checkpoint ({args.final_episodes} games x 2)", flush=True)
            meta["final"] = final_figures(run_dir, env, args.final_episodes)
        _write_json(meta_path, meta)
        summarize_run(run_dir, args.docs_dir)
    return 0 if code in (0, 130, 143) else code


def final_figures(run_dir: str, env: str, episodes: int = FINAL_EPISODES) -> dict:
    """Where the policy ends: the last 100 training games' true scores, and `fastasync eval` of
    the final checkpoint over ``episodes`` games with the sampled policy and greedy (mean, sd,
    min, max each), with the commit that measured them."""
    sys.path.insert(0, ROOT)
    import fastasync

    games = read_games(run_dir, env)
    last = games["score"][-FINAL_WINDOW:]
    out = {"frames": _checkpoint_frames(run_dir), "commit": _git_commit(), "episodes": episodes,
           "last100": _describe(last)}
    policy = fastasync.load(run_dir)
    for mode, greedy in (("sampled", False), ("greedy", True)):
        res = policy.evaluate(episodes=episodes, greedy=greedy, seed=12345)
        out[mode] = _describe(res["scores"])
    return out


def _describe(scores) -> dict:
    s = np.asarray(scores, float)
    if not len(s):
        return {"n": 0}
    return {"n": int(len(s)), "mean": float(s.mean()), "sd": float(s.std()), "min": float(s.min()), "max": float(s.max())}


def train_command(meta: dict, run_dir: str, resume: bool, threads: int = 0) -> list:
    """The `fastasync train` command of one part: a new run with the proof's options, or --resume."""
    cmd = [sys.executable, "-m", "fastasync.cli", "train"]
    if resume:
        cmd += ["--resume", run_dir]
    else:
        cmd += ["--env", meta["env"], "--algo", meta["algo"], "--seed", str(meta["seed"]), "--frames",
                str(meta["frames"]), "--run-dir", run_dir, *meta["extra"]]
    threads = meta.get("threads", threads)  # a Ray proof's threads per node are part of it
    if threads:
        cmd += ["--threads", str(threads)]
    if meta.get("ray_nodes"):  # a local Ray instance on this machine: --nodes node actors, each a threaded trainer
        cmd += ["--ray", "--nodes", str(meta["ray_nodes"])]
    return cmd


def _checkpoint_frames(run_dir: str) -> int:
    sys.path.insert(0, ROOT)
    from fastasync import checkpoint

    path = os.path.join(run_dir, checkpoint.CHECKPOINT_NAME)
    return int(checkpoint.load(path)["frames"]) if os.path.exists(path) else 0


def _write_json(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(obj, fh, indent=2)
        fh.write("\n")
    os.replace(tmp, path)


# -- evidence ---------------------------------------------------------------------------------


def summarize_run(run_dir: str, docs_dir: str) -> str:
    """Write docs_dir/<name>/: episodes.csv, config.json, proof.json, curve.png, SUMMARY.md."""
    with open(os.path.join(run_dir, "proof.json")) as fh:
        meta = json.load(fh)
    env, algo, seed = meta["env"], meta["algo"], meta["seed"]
    name = run_name(env, algo, seed, meta.get("ray_nodes", 0), meta.get("threads", 0))
    out = os.path.join(docs_dir, name)
    os.makedirs(out, exist_ok=True)
    for f in ("episodes.csv", "config.json", "proof.json"):
        if os.path.exists(os.path.join(run_dir, f)):
            shutil.copyfile(os.path.join(run_dir, f), os.path.join(out, f))
    games = read_games(out, env)
    if len(games["score"]):
        subprocess.run([sys.executable, "-m", "fastasync.cli", "plot", out, "-o", os.path.join(out, "curve.png")],
                       cwd=ROOT, env={**os.environ, "PYTHONPATH": ROOT}, check=True, capture_output=True)
    text = summary_text(meta, games, _folder_options(os.path.dirname(os.path.abspath(run_dir)), docs_dir))
    notes = os.path.join(out, "NOTES.md")  # what was found and tried, written by hand beside the data
    if os.path.exists(notes):
        with open(notes) as fh:
            text += "\n" + fh.read()
    with open(os.path.join(out, "SUMMARY.md"), "w") as fh:
        fh.write(text)
    return out


def _stats(meta: dict, games: dict) -> dict:
    s, f, w = games["score"], games["frames"], games["wall_s"]
    means = rolling(games)
    crossing = first_crossing(games, meta["target"])
    frames_done = max([p.get("frames_after", 0) for p in meta["parts"]] + [int(f[-1]) if len(f) else 0])
    wall = float(w[-1]) if len(w) else 0.0
    return dict(
        games=len(s),
        frames=frames_done,
        wall_min=wall / 60,
        fps=(f[-1] / w[-1]) if len(w) and w[-1] > 0 else float("nan"),
        best=float(means.max()) if len(means) else float("nan"),
        final=float(means[-1]) if len(means) else float("nan"),
        reached=None if crossing is None else dict(frames=float(f[crossing[0]]), wall_min=float(w[crossing[0]]) / 60,
                                                   game=crossing[0] + 1, mean=crossing[1]),
    )


def summary_text(meta: dict, games: dict, folders=()) -> str:
    env, algo, seed, target, budget = meta["env"], meta["algo"], meta["seed"], meta["target"], meta["frames"]
    st = _stats(meta, games)
    paper = TARGETS.get((env, algo), (None, None, "-"))[2]
    command = _command(env, algo, seed, budget, target, meta.get("extra", []), meta.get("ray_nodes", 0),
                       meta.get("threads", 0), meta.get("final_mode", False), folders)
    lines = [f"# {env}, {_method(meta)}" + (f", seed {seed}" if seed else ""), ""]
    m = measure(env)
    unit = {"frames": "emulator frames", "tics": "tics (frames of the Doom engine)"}.get(_unit(env), _unit(env))
    if st["reached"]:
        r = st["reached"]
        status = (f"**target reached**: {m['what']} first reached {fmt_target(m, target)} "
                  f"at game {r['game']}, **{r['frames'] / 1e6:.1f}M {_unit(env)}, {r['wall_min']:.1f} min** of training "
                  f"({fmt_value(m, r['mean'])})")
        if meta.get("caveat"):
            status += f". **{meta['caveat']}**"
    elif st["frames"] >= budget:
        status = f"**target missed**: {fmt_target(m, target)} not reached within the budget of {_fmt(budget)} {_unit(env)}"
    else:
        status = (f"**in progress**: {st['frames'] / 1e6:.1f}M of {_fmt(budget)} {_unit(env)}, target "
                  f"{fmt_target(m, target)} not reached yet (continue with the command below)")
    lines += [status, ""]
    fin = meta.get("final")
    if fin:
        lines += [final_text(meta), ""]
    elif meta.get("final_mode"):
        lines += [f"Final mode: the run goes on to its budget of {_fmt(budget)} {_unit(env)}, then its final "
                  "checkpoint is evaluated.", ""]
    lines += [
        f"- target: {m['what']} >= {fmt_target(m, target)} within {_fmt(budget)} {unit}"
        + ("" if m["rate"] else " (the true score: unclipped, whole games)") + f"; the paper: {paper}",
        f"- best {m['short']} {fmt_value(m, st['best'])}; at the end of the last part {fmt_value(m, st['final'])}; "
        f"{st['games']} games, {st['frames']:,} {_unit(env)}, {st['wall_min']:.1f} min of training, "
        f"{st['fps']:,.0f} {_unit(env)}/s",
        f"- reproduce: `{command}` (the same command again continues "
        "a stopped run); it runs `fastasync train` with the defaults of the method and env family"
        + (" and the options after `--`" if meta.get("extra") else "") + " (config.json beside this file)",
        f"- machine: {_machine_note(meta)}",
        "",
        "| part | commit | started | frames | stopped because |",
        "|--:|---|---|---|---|",
    ]
    for i, p in enumerate(meta["parts"], 1):
        lines.append(f"| {i} | {p['commit']} | {p['started']} | {_fmt(p['frames_before'])}-"
                     f"{_fmt(p['frames_after'])} | {p['stop']} |")
    rate = "| succeeded " if m["rate"] else ""
    lines += ["", f"| {_unit(env)} | games | mean true score | best game {rate}|", "|---|--:|--:|--:|" + ("--:|" if rate else "")]
    f, s, v = games["frames"], games["score"], games["value"]
    if len(f):
        step = max(1_000_000, int(np.ceil(f[-1] / 20 / 1e6)) * 1_000_000)
        for lo in range(0, int(f[-1]) + 1, step):
            k = (f > lo) & (f <= lo + step)
            if k.any():
                lines.append(f"| {lo / 1e6:g}-{(lo + step) / 1e6:g}M | {k.sum()} | {s[k].mean():+.1f} | {s[k].max():g} |"
                             + (f" {v[k].mean():.0%} |" if rate else ""))
    lines += ["", "Curve: `curve.png`; every game: `episodes.csv`; the configuration used: `config.json`.", ""]
    return "\n".join(lines)


def _pm(d: dict) -> str:
    return f"{d['mean']:,.1f} +- {d['sd']:,.1f}" if d.get("n") else "-"


def final_text(meta: dict) -> str:
    """The SUMMARY's paragraph on where the policy ends (final mode)."""
    fin, env = meta["final"], meta["env"]
    a2c = ATARI_FIVE.get(env)
    last, sam, gre = fin["last100"], fin["sampled"], fin["greedy"]
    text = (f"**Final, at {fin['frames'] / 1e6:.1f}M {_unit(env)}**: the last {last['n']} training games "
            f"{_pm(last)}; `fastasync eval` of the final checkpoint over {fin['episodes']} games, sampled "
            f"{_pm(sam)} (min {sam['min']:g}, max {sam['max']:g}), greedy {_pm(gre)} (min {gre['min']:g}, "
            f"max {gre['max']:g}); measured at {fin['commit']}.")
    if a2c:
        ok = last["mean"] >= a2c[0] and sam["mean"] >= a2c[0]
        text += (f" The A2C of the stable-baselines3 zoo at 40M frames: {a2c[0]:,g}, "
                 f"{'met' if ok else 'NOT met'} by both the last-100 mean and the sampled eval; the paper's A3C FF "
                 f"after 1 day on 16 cores: {a2c[1]:,g}.")
    return text


def proofs(docs_dir: str):
    """(folder name, proof.json) of every evidence folder in docs_dir, by name."""
    for name in sorted(os.listdir(docs_dir)) if os.path.isdir(docs_dir) else []:
        p = os.path.join(docs_dir, name, "proof.json")
        if os.path.exists(p):
            with open(p) as fh:
                yield name, json.load(fh)


def final_table(docs_dir: str, page_dir: str = ROOT) -> str:
    """The README's final table: where each final-mode proof ended (links relative to ``page_dir``)."""
    rel = os.path.relpath(docs_dir, page_dir)
    out = ["| game | method | seed | frames | last-100 mean | eval mean +- sd (sampled / greedy) | A2C at 40M | "
           "the paper, 1 day | minutes on 2 cores | evidence |",
           "|---|---|--:|--:|--:|---|--:|--:|--:|---|"]
    for name, meta in proofs(docs_dir):
        fin = meta.get("final")
        if not fin:
            continue
        st = _stats(meta, read_games(os.path.join(docs_dir, name), meta["env"]))
        a2c, paper = ATARI_FIVE.get(meta["env"], (None, None))
        method = _method(meta, _config(os.path.join(docs_dir, name)))
        out.append(f"| {meta['env']} | {method} | {meta['seed']} | {fin['frames'] / 1e6:.1f}M | "
                   f"{fin['last100']['mean']:,.1f} | {_pm(fin['sampled'])} / {_pm(fin['greedy'])} | "
                   f"{'-' if a2c is None else f'{a2c:,g}'} | {'-' if paper is None else f'{paper:,g}'} | "
                   f"{st['wall_min']:.0f} | [{name}]({rel}/{name}/SUMMARY.md) |")
    return "\n".join(out)


def atari_five_figure(docs_dir: str, out_path: str) -> bool:
    """docs/learning/atari-five.png: one panel per game of the paper's five that has a final-mode
    A3C proof here (its seed-0 folder, run to the budget), the 100-game mean of the true score
    against frames, with the A2C figure at 40M and the paper's 1-day score as lines. False when
    none has one (a folder of runs stopped at their target, e.g. Pong at another lr, gets no
    figure of the five)."""
    metas = dict(proofs(docs_dir))
    runs = [(env, os.path.join(docs_dir, f"{env}-a3c")) for env in ATARI_FIVE
            if metas.get(f"{env}-a3c", {}).get("final_mode")]
    runs = [(env, d) for env, d in runs if os.path.exists(os.path.join(d, "episodes.csv"))]
    if not runs:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(runs), figsize=(3.2 * len(runs), 2.8), squeeze=False)
    for ax, (env, d) in zip(axes[0], runs):
        g = read_games(d, env)
        s, f = g["score"], g["frames"]
        w = min(FINAL_WINDOW, len(s))
        mean = np.convolve(s, np.ones(w), "valid") / w if w else s
        ax.plot(f[w - 1:] / 1e6 if w else f, mean, lw=1.2, label="fastasync A3C (100-game mean)")
        a2c, paper = ATARI_FIVE[env]
        ax.axhline(a2c, color="tab:red", ls="--", lw=1, label="A2C at 40M (SB3 zoo)")
        ax.axhline(paper, color="tab:gray", ls=":", lw=1, label="the paper, 1 day")
        ax.set_title(env, fontsize=9)
        ax.set_xlabel("emulator frames (M)", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0][0].set_ylabel("true game score", fontsize=8)
    axes[0][0].legend(fontsize=6, loc="upper left")
    fig.tight_layout()
    tmp = out_path + ".tmp.png"
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, out_path)
    return True


def _unit(env: str) -> str:
    """What a frame is for this env: emulator frames (Atari), tics (ViZDoom), env steps (the rest)."""
    sys.path.insert(0, ROOT)
    from fastasync.envs.families import family

    return family(env).unit


def _machine_note(meta):
    seen = sorted({p["machine"] for p in meta["parts"] if p.get("machine")})
    return "; ".join(seen) or _machine()


def table(docs_dir: str, page_dir: str = ROOT) -> str:
    """The README's learning table, from every docs_dir/*/proof.json + episodes.csv; its links
    are relative to ``page_dir``, the folder of the page it goes into."""
    rows = []
    for name, meta in proofs(docs_dir):
        st = _stats(meta, read_games(os.path.join(docs_dir, name), meta["env"]))
        rows.append((meta, st, name, _method(meta, _config(os.path.join(docs_dir, name)))))
    rows.sort(key=lambda row: (row[0]["env"], row[0]["algo"], row[0].get("ray_nodes", 0), row[0]["seed"]))
    rel = os.path.relpath(docs_dir, page_dir)
    out = [
        "| game | method | seed | target | reached at | best | run for | "
        "the paper | evidence |",
        "|---|---|--:|--:|---|--:|--:|---|---|",
    ]
    for meta, st, name, method in rows:
        r = st["reached"]
        if r:
            mins = f"{r['wall_min']:.1f}" if r["wall_min"] < 10 else f"{r['wall_min']:.0f}"
            at = f"{r['frames'] / 1e6:.1f}M {_unit(meta['env'])}, {mins} min"
            if meta.get("caveat"):  # written by hand into proof.json: what the crossing does not show
                at += f"; {meta['caveat']}"
        elif st["frames"] >= meta["frames"]:
            at = f"missed in {_fmt(meta['frames'])}"
        else:
            at = f"not yet ({st['frames'] / 1e6:.1f}M of {_fmt(meta['frames'])})"
        paper = TARGETS.get((meta["env"], meta["algo"]), (None, None, "-"))[2]
        m = measure(meta["env"])
        target = f"{fmt_target(m, meta['target'])} ({m['short']})"
        out.append(f"| {meta['env']} | {method} | {meta['seed']} | {target} | {at} | {fmt_value(m, st['best'])} | "
                   f"{st['frames'] / 1e6:.1f}M | {paper} | [{name}]({rel}/{name}/SUMMARY.md) |")
    groups = {}
    for meta, st, _name, method in rows:
        groups.setdefault((meta["env"], method), []).append(st)
    for (env, algo), sts in groups.items():
        if len(sts) < 2:
            continue
        hit = [st["reached"]["frames"] for st in sts if st["reached"]]
        spread = (f"median {np.median(hit) / 1e6:.1f}M {_unit(env)} (range {min(hit) / 1e6:.1f}-{max(hit) / 1e6:.1f}M), "
                  if hit else "")
        out.append(f"| {env} | {algo} | all {len(sts)} | | {spread}{len(hit)} of {len(sts)} seeds reached | "
                   f"{fmt_value(measure(env), np.median([st['best'] for st in sts]))} (median) | | | |")
    return "\n".join(out)


def write_readme_table(readme: str, docs_dir: str) -> bool:
    """The learning table between its markers (and the final table between its own, where the
    README has them); False when the learning table's markers are missing."""
    with open(readme) as fh:
        text = fh.read()
    if README_START not in text or README_END not in text:
        return False
    page = os.path.dirname(os.path.abspath(readme))
    blocks = [(README_START, README_END, table(docs_dir, page))]
    if FINAL_START in text and FINAL_END in text:
        blocks.append((FINAL_START, FINAL_END, final_table(docs_dir, page)))
    for start, end, body in blocks:
        head, rest = text.split(start, 1)
        _, tail = rest.split(end, 1)
        text = head + start + "\n" + body + "\n" + end + tail
    tmp = readme + ".tmp"
    with open(tmp, "w") as fh:
        fh.write(text)
    os.replace(tmp, readme)
    return True


def cmd_summarize(args) -> int:
    if os.path.isdir(args.runs_dir):
        for name in sorted(os.listdir(args.runs_dir)):
            run_dir = os.path.join(args.runs_dir, name)
            if os.path.exists(os.path.join(run_dir, "proof.json")):
                print("wrote", summarize_run(run_dir, args.docs_dir))
    if atari_five_figure(args.docs_dir, os.path.join(args.docs_dir, "atari-five.png")):
        print("wrote", os.path.join(args.docs_dir, "atari-five.png"))
    if write_readme_table(args.readme, args.docs_dir):
        print("wrote the table in", args.readme)
    else:
        print(f"error: {args.readme} has no {README_START} ... {README_END} lines", file=sys.stderr)
        return 2
    results = args.results
    if results is None and os.path.abspath(args.docs_dir) == DEFAULT_DOCS:
        results = os.path.join(ROOT, "bench", "RESULTS.md")  # the project's own evidence: its page too
    if results and os.path.exists(results) and write_readme_table(results, args.docs_dir):
        print("wrote the tables in", results)  # bench/RESULTS.md's current learning rows
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs-dir", default=DEFAULT_RUNS, help="where runs train (not committed)")
    p.add_argument("--docs-dir", default=DEFAULT_DOCS, help="evidence folders")
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="train (or continue) one proof run")
    r.add_argument("--env", required=True)
    r.add_argument("--algo", default="a3c")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--frames", type=int, default=None, help="frame budget [default: the proof's, e.g. 40M]")
    r.add_argument("--target", type=float, default=None, help="10-game mean to reach [default: the proof's]")
    r.add_argument("--threads", type=int, default=0, help="learner threads [default: all CPUs]")
    r.add_argument("--ray-nodes", type=int, default=0,
                   help="train on a local Ray instance with this many node actors of --threads threads each "
                        "(`fastasync train --ray --nodes N`); the run is named <env>-<algo>[-seed<N>]-ray<N>x<threads>")
    r.add_argument("--minutes", type=float, default=0, help="stop this part after this many minutes (0: no limit)")
    r.add_argument("--keep-going", action="store_true", help="do not stop when the target is reached")
    r.add_argument("--final", action="store_true",
                   help="final mode: run to the budget (every part), then evaluate the final checkpoint")
    r.add_argument("--final-episodes", type=int, default=FINAL_EPISODES,
                   help="eval games of the final checkpoint, sampled and greedy each")
    r.add_argument("--poll-s", type=float, default=2.0, help="seconds between looks at episodes.csv")
    r.add_argument("extra", nargs="*", help="options for `fastasync train` after --")
    s = sub.add_parser("summarize", help="rewrite every evidence folder and the README's table")
    s.add_argument("--readme", default=os.path.join(ROOT, "README.md"))
    s.add_argument("--results", default=None,
                   help="also regenerate the learning tables of this page, where it has the markers "
                        "[default: bench/RESULTS.md when --docs-dir is docs/learning]")
    args = p.parse_args(argv)
    if args.cmd == "run":
        return cmd_run(args)
    return cmd_summarize(args)


if __name__ == "__main__":
    sys.exit(main())
