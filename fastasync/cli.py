"""The ``fastasync`` command line (click).

Cheap to start: this module imports only click and the stdlib-only config module; numba,
numpy-heavy modules and envpool are imported inside the commands that need them.
Bad input gets a one-line ``Error: ...`` and exit code 2, and nothing is written.
"""

from __future__ import annotations

import math
import os
import sys

import click

from . import config as C

CONTEXT = dict(help_option_names=["-h", "--help"], max_content_width=100)


def fail(msg: str, code: int = 2):
    click.echo(f"Error: {msg}", err=True)
    sys.exit(code)


def _doc(section, name):
    return C.field_docs(C.SECTIONS[section])[name]


def _opt(flag, section, name, **kw):
    """A click option whose help text and shown default come from the config dataclass."""
    default = getattr(C.SECTIONS[section](), name)
    if name == "frames":
        default = "40M"
    elif name.endswith("_frames"):
        default = f"{default:,}"
    if name in ("threads", "run_dir"):
        default = None
    kw.setdefault("show_default", True)
    return click.option(flag, name, default=default, help=_doc(section, name) + C.family_note(name), **kw)


@click.group(context_settings=CONTEXT)
@click.version_option(package_name="fastasync")
def main():
    """fastasync: asynchronous deep RL (A3C and friends, Mnih et al. 2016) on CPUs, fast.

    Start with `fastasync train` (Pong, all cores, paper defaults); `fastasync envs` lists
    environments.
    """


@main.command(context_settings=CONTEXT)
@_opt("--env", "env", "env", type=str)
@_opt("--algo", "algo", "algo", type=str)
@_opt("--threads", "run", "threads", type=int)
@_opt("--envs-per-thread", "env", "envs_per_thread", type=int)
@_opt("--frames", "run", "frames", type=str)
@_opt("--lr", "optim", "lr", type=float)
@_opt("--lr-warmup-frames", "optim", "lr_warmup_frames", type=str)
@_opt("--rms-eps", "optim", "rms_eps", type=float)
@_opt("--grad-clip", "optim", "grad_clip", type=float)
@_opt("--entropy", "algo", "entropy", type=float)
@_opt("--gamma", "algo", "gamma", type=float)
@_opt("--t-max", "algo", "t_max", type=int)
@_opt("--target-update-frames", "algo", "target_update_frames", type=str)
@_opt("--eps-anneal-frames", "algo", "eps_anneal_frames", type=str)
@_opt("--seed", "run", "seed", type=int)
@_opt("--run-dir", "run", "run_dir", type=str)
@_opt("--backend", "env", "backend", type=click.Choice(["auto", "envpool", "gymnasium"]))
@_opt("--doom-reward", "env", "doom_reward", type=click.Choice(["scenario", "envpool"]))
@_opt("--doom-hud/--no-doom-hud", "env", "doom_hud")
@_opt("--car-frame-skip", "env", "car_frame_skip", type=int)
@_opt("--car-grey/--car-rgb", "env", "car_grey")
@_opt("--value-coef", "algo", "value_coef", type=float)
@_opt("--bounded-mean/--linear-mean", "algo", "bounded_mean")
@_opt("--capg/--no-capg", "algo", "capg")
@_opt("--frame-center", "algo", "frame_center", type=str)
@_opt("--checkpoint-every-s", "run", "checkpoint_every_s", type=float)
@_opt("--progress-every-s", "run", "progress_every_s", type=float)
@_opt("--pin-threads/--no-pin-threads", "run", "pin_threads")
@_opt("--obs-norm/--no-obs-norm", "env", "obs_norm")
@_opt("--reward-scale", "env", "reward_scale", type=float)
@_opt("--tensorboard/--no-tensorboard", "run", "tensorboard")
@_opt("--video-every", "run", "video_every", type=str)
@click.option("--resume", type=str, default=None, help="continue a run from its directory or checkpoint.npz")
@click.option("--config", "config_file", type=str, default=None, help="TOML file of options (command-line options override it)")
@click.option("--ray", "ray_address", is_flag=False, flag_value="local", default=None, metavar="[ADDRESS]",
              help="train on Ray, --nodes node actors of --threads learner threads each: ADDRESS as ray.init takes it "
                   "(left out or 'local': start a local Ray; 'auto' or HOST:PORT: join a running cluster). "
                   "Needs pip install \"fastasync[ray]\"  [default: one machine, no Ray]")
@_opt("--nodes", "run", "nodes", type=int)
@_opt("--sync-every-updates", "run", "sync_every_updates", type=int)
@_opt("--sync-every-s", "run", "sync_every_s", type=float)
@_opt("--node-restarts", "run", "node_restarts", type=int)
@click.pass_context
def train(ctx, resume, config_file, ray_address, **options):
    """Train an agent. Ctrl-C stops cleanly with a checkpoint; --resume continues (on one
    machine, or with --ray on any number of nodes, whichever the run was)."""
    from click.core import ParameterSource

    from .api import train as api_train
    from .errors import LearnerError, NonFiniteObservation, RayRunError, RunIOError

    given = {
        k: v for k, v in options.items() if ctx.get_parameter_source(k) == ParameterSource.COMMANDLINE
    }
    try:
        run = api_train(config=config_file, resume=resume, ray=ray_address, out=lambda msg: click.echo(msg, err=True),
                        **given)
    except LearnerError as exc:
        if isinstance(exc.exc, NonFiniteObservation):  # the env's fault, not ours: no traceback
            fail(f"{exc.exc}; training stopped. {exc.checkpoint_note}".rstrip(), code=1)
        click.echo(exc.tb, err=True)
        fail(str(exc), code=1)
    except (RunIOError, RayRunError) as exc:
        fail(str(exc), code=1)
    except ValueError as exc:  # ConfigError, EnvError, CheckpointError, RunDirError, StartError
        fail(str(exc))
    if run.interrupted:  # 128 + the signal, as shells and schedulers expect: 130 for Ctrl-C, 143 for SIGTERM
        sys.exit(128 + int(run.summary.get("stop_signal") or 2))
    if not run.summary["checkpoint_saved"]:
        sys.exit(1)


def _check_output_file(path, option):
    """Fail now, not after the work, when ``path`` cannot be written as a file."""
    if os.path.isdir(path):
        fail(f"{option} {path} is a directory; give a file name")
    d = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(d):
        fail(f"{option} {path}: there is no directory {d}")
    if not os.access(d, os.W_OK):
        fail(f"{option} {path}: cannot write in {d}")


@main.command(name="eval", context_settings=CONTEXT)
@click.argument("path", type=str)
@click.option("--episodes", type=int, default=10, show_default=True, help="full games to play")
@click.option("--greedy/--sample", default=None,
              help="argmax actions, or the method's exploring policy (a3c: sample it; Q methods: epsilon-greedy, "
                   "epsilon 0.05)  [default: sample for a3c, greedy for Q methods]")
@click.option("--gif", type=str, default=None, help="write an animated GIF of the first game here (what the agent sees)")
@click.option("--video", type=str, default=None, metavar="OUT.mp4",
              help="record every game into this .mp4: the game's own screen in colour at its own resolution and "
                   "speed, the score so far in a corner (the games are then played one after another on the "
                   "gymnasium backend; needs pip install -e \".[video]\")")
@click.option("--seed", type=int, default=12345, show_default=True, help="env and action seed")
@click.option("--backend", type=click.Choice(["auto", "envpool", "gymnasium"]), default="auto", show_default=True,
              help="env backend")
@click.option("--save", is_flag=True, default=False,
              help="also write the games to eval.json beside the checkpoint (a sweep's summary, sweep.csv and "
                   "scatter show it for each trial)")
def eval_cmd(path, episodes, greedy, gif, video, seed, backend, save):
    """Play full games with a trained agent and print true-score statistics."""
    if episodes < 1:
        fail(f"--episodes must be >= 1, got {episodes}")
    if gif:
        _check_output_file(gif, "--gif")
    if video:
        if backend == "envpool":
            fail("--video plays on the gymnasium backend (envpool shows no screen): leave out --backend envpool")
        _check_output_file(video, "--video")
        from .video import VideoError, check_installed

        try:
            check_installed()
        except VideoError as exc:
            fail(str(exc))
    from .api import load

    try:
        policy = load(path, backend=backend)
        res = policy.evaluate(episodes=episodes, greedy=greedy, seed=seed, gif=gif, video=video)
    except (ValueError, OSError) as exc:  # ConfigError, EnvError, CheckpointError, a GIF not written
        fail(str(exc))
    s = res["scores"]
    cfg = policy.config
    click.echo(
        f"{cfg.algo.algo} on {cfg.env.env}, {len(s)} games ({res['policy']}): "
        f"mean {s.mean():.2f}  median {float(__import__('numpy').median(s)):.2f}  min {s.min():g}  max {s.max():g}"
    )
    from .envs.families import family

    fam = family(cfg.env.env)
    if fam.outcome_name(cfg.env.env):  # ViZDoom: what a user reads besides the score
        hits = sum(bool(fam.outcome(cfg.env.env, sc, ln)) for sc, ln in zip(s, res["lengths"]))
        click.echo(f"{fam.outcome_name(cfg.env.env)} in {hits} of {len(s)} games; "
                   f"mean length {float(__import__('numpy').mean(res['lengths'])):.0f} agent steps (x4 tics)")
    if save:
        from .checkpoint import checkpoint_path
        from .evaluate import save_eval

        run_dir = os.path.dirname(os.path.abspath(checkpoint_path(path)))
        try:
            click.echo(f"wrote {save_eval(run_dir, policy.frames, res, seed)}")
        except OSError as exc:
            fail(f"cannot write eval.json in {run_dir}: {exc}")
    if gif:
        click.echo(f"wrote {gif}")
    if video:
        v = res["video"]
        click.echo(f"wrote {video}: {len(v['scores'])} games, {v['frames']:,} frames at {v['fps']:g} frames/s")


@main.command(context_settings=CONTEXT)
@click.argument("run_dirs", metavar="RUN_DIR...", nargs=-1, required=True, type=str)
@click.option("-o", "--output", type=str, default=None,
              help="image file  [default: RUN_DIR/curve.png for one run, curves.png for several]")
@click.option("--window", type=int, default=10, show_default=True, help="games in the rolling mean")
@click.option("--max-frames", type=str, default=None,
              help="draw the games that ended within this many frames, e.g. 12M (runs of different lengths "
                   "side by side)  [default: all]")
def plot(run_dirs, output, window, max_frames):
    """Plot true game score against frames (rolling mean) from runs' episodes.csv.

    A sweep directory (sweep.json): its sweep.png, the final score of every trial against
    the swept option, redrawn with its sweep.csv and summary. One run: every game and the
    rolling mean. Several: one line each on one figure with a
    legend; runs that differ only in their seed (same env, method and options) are one
    line, the median of their rolling means, with the min-max spread shaded.
    """
    if window < 1:
        fail(f"--window must be >= 1, got {window}")
    if max_frames is not None:
        try:
            max_frames = C.parse_count(max_frames)
        except ValueError as exc:  # ConfigError
            fail(f"--max-frames: {exc}")
    if len(run_dirs) == 1 and os.path.isfile(os.path.join(run_dirs[0], "sweep.json")):  # a sweep directory
        if max_frames is not None:
            fail("--max-frames cuts runs' curves; a sweep directory's plot is its trials' final scores "
                 "(give its trials' run directories to plot their curves)")
        if output is not None:
            _check_output_file(output, "-o")
        from .sweep import redraw

        try:
            _rows, _summary, out = redraw(run_dirs[0], output or "")
        except ValueError as exc:
            fail(str(exc))
        except OSError as exc:
            fail(f"cannot write in {run_dirs[0]}: {exc.strerror or exc}")
        click.echo(f"wrote {out or 'no plot (nothing swept to plot against)'}; sweep.csv, summary.json and SUMMARY.md "
                   f"in {run_dirs[0]} are current")
        return
    paths = []
    for run_dir in run_dirs:
        path = os.path.join(run_dir, "episodes.csv") if os.path.isdir(run_dir) else run_dir
        if not os.path.exists(path):
            fail(f"no episodes.csv at {path}")
        paths.append(path)
    from .plot import plot_runs, plot_scores

    if output is None:
        output = os.path.join(os.path.dirname(paths[0]), "curve.png") if len(paths) == 1 else "curves.png"
    _check_output_file(output, "-o")
    try:
        out = (plot_scores(paths[0], output, window, max_frames) if len(paths) == 1
               else plot_runs(paths, output, window, max_frames=max_frames))
    except ValueError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot write {output}: {exc.strerror or exc}")
    click.echo(f"wrote {out}")


@main.command(context_settings=CONTEXT)
@click.option("--backend", type=click.Choice(["all", "envpool", "gymnasium"]), default="all", show_default=True)
def envs(backend):
    """List supported environment ids by backend; vector-observation envs with their sizes.

    Atari ids are listed by name (observations 4x84x84 frames, discrete actions); classic
    control and MuJoCo ids with the size of their observation vector and of their action
    (the number of discrete actions, or the dimensions of a continuous action and its bounds).
    """
    from .envs import EnvError, env_info, list_envs

    for b in ["envpool", "gymnasium"] if backend == "all" else [backend]:
        try:
            ids = list_envs(b)
        except EnvError as exc:
            click.echo(f"{b}: not available ({exc})")
            continue
        atari = [i for i in ids if i.endswith("-v5")]  # Atari ids alone end in -v5
        infos, broken = [], []
        for i in ids:
            if i.endswith("-v5"):
                continue
            try:
                infos.append(env_info(i, b))
            except EnvError as exc:  # gymnasium's Pusher-v4 refuses mujoco >= 3
                broken.append(f"{i}: {exc}")
        click.echo(f"{b} ({len(ids)}):")
        click.echo(f"  Atari ({len(atari)}): observations 4x84x84 frames, discrete actions")
        for i in range(0, len(atari), 6):
            click.echo("    " + "  ".join(atari[i : i + 6]))
        for fam, title in (("classic", "classic control"), ("mujoco", "MuJoCo (frames = env steps)"),
                           ("doom", "ViZDoom (RGB frames with the status bar, 4 stacked; frames = tics)"),
                           ("car", "CarRacing (grey frames, 4 stacked; frames = env steps, 4 per agent step)")):
            rows = [info for info in infos if info.family == fam]
            if not rows:
                continue
            click.echo(f"  {title} ({len(rows)}):")
            for info in rows:
                obs = "x".join(str(n) for n in info.obs_shape)
                click.echo(f"    {info.env_id:<27} obs {obs:>3}  {_action_text(info)}")
        for line in broken:
            click.echo(f"  not usable here: {line}")


def _action_text(info):
    """'3 discrete actions' or '6-dim continuous actions in [-1, 1]' (bounds shown when all alike)."""
    if info.discrete:
        return f"{info.num_actions} discrete actions"
    lo, hi = set(info.action_low), set(info.action_high)
    if len(lo) == 1 and len(hi) == 1:
        bounds = f" in [{min(lo):g}, {max(hi):g}]"
    elif info.action_dim <= 4:  # e.g. CarRacing's steer, gas, brake: every dimension's own
        bounds = " in " + " x ".join(f"[{a:g}, {b:g}]" for a, b in zip(info.action_low, info.action_high))
    else:
        bounds = f" in [{min(lo):g}, {max(hi):g}] (per-dim bounds differ)"
    return f"{info.action_dim}-dim continuous actions{bounds}"


def _measured(env, algo, threads, envs_per_thread, backend, measure):
    """Check the env/algo up front, then run ``measure(progress)`` with BLAS pinned to one
    thread, as the learners run. Returns (its result, the thread settings seen meanwhile)."""
    from threadpoolctl import threadpool_limits

    from .bench import bench_config
    from .envs import EnvError
    from .perf import load_blas, thread_settings
    from .trainer import LearnerError

    load_blas()
    with threadpool_limits(limits=1):
        try:
            bench_config(env, algo, threads, envs_per_thread, backend, "unused")  # bad input fails before any work
            result = measure(lambda msg: click.echo(msg, err=True))
        except LearnerError as exc:
            click.echo(exc.tb, err=True)
            fail(str(exc), code=1)
        except (C.ConfigError, EnvError, ValueError) as exc:
            fail(str(exc))
        return result, thread_settings()


def _family_given(algo, envs_per_thread):
    """bench/profile: --algo and --envs-per-thread as given, None where left to the env family
    (as train does: MyWayHome-v1 benches A3C-LSTM, CartPole-v1 32 envs per thread)."""
    from click.core import ParameterSource

    ctx = click.get_current_context()
    return tuple(v if ctx.get_parameter_source(k) == ParameterSource.COMMANDLINE else None
                 for k, v in (("algo", algo), ("envs_per_thread", envs_per_thread)))


def _bench_options(threads_default, seconds_default, warmup_default, threads_help):
    """Options shared by ``bench`` and ``profile`` (defaults from the config dataclasses)."""

    def deco(f):
        for opt in reversed(
            [
                _opt("--env", "env", "env", type=str),
                _opt("--algo", "algo", "algo", type=str),
                click.option("--threads", "threads", type=str, default=threads_default, show_default=True, help=threads_help),
                _opt("--envs-per-thread", "env", "envs_per_thread", type=int),
                click.option("--seconds", type=float, default=seconds_default, show_default=True,
                             help="length of the measured window, after the warm-up"),
                click.option("--warmup", type=float, default=warmup_default, show_default=True,
                             help="seconds run and discarded before measuring (after kernel compilation)"),
                _opt("--backend", "env", "backend", type=click.Choice(["auto", "envpool", "gymnasium"])),
                _opt("--pin-threads/--no-pin-threads", "run", "pin_threads"),
            ]
        ):
            f = opt(f)
        return f

    return deco


def _frames_unit(cfg):
    """What a frame is for this env: Atari's emulator frames, or env steps (no frame skip)."""
    from .envs import view_options, env_info

    info = env_info(cfg.env.env, cfg.env.backend, **view_options(cfg.env))
    if info.family == "car":
        return f"env steps (agent steps x the action repeat {info.frame_skip})"
    if info.frame_skip > 1:
        return "emulator frames (agent steps x frame skip)"
    return "env steps (agent steps x envs; this env has no frame skip: MuJoCo's physics substeps are inside a step)"


def _check_window(seconds, warmup):
    if not 0 < seconds < math.inf:
        fail(f"--seconds must be a number > 0, got {seconds}")
    if not 0 <= warmup < math.inf:
        fail(f"--warmup must be a number >= 0, got {warmup}")


@main.command(context_settings=CONTEXT)
@_bench_options("1,2", 20.0, 5.0, "comma-separated learner-thread counts to measure, e.g. 1,2,4")
@click.option("--repeat", type=int, default=1, show_default=True,
              help="rounds of measurements: each round measures every thread count (ceiling, then training) "
                   "in turn; medians are reported")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object per thread count, nothing else on stdout")
@click.option("--ray", "ray_address", is_flag=False, flag_value="local", default=None, metavar="[ADDRESS]",
              help="measure runs on Ray instead (ADDRESS as for train --ray): one row per --nodes count, --threads "
                   "(one number) per node")
@click.option("--nodes", "nodes", type=str, default=None,
              help="with --ray: comma-separated node counts to measure, e.g. 1,2  [default: 1,2]")
def bench(env, algo, threads, envs_per_thread, seconds, warmup, backend, pin_threads, repeat, as_json, ray_address,
          nodes):
    """Training frames/s against the env-only ceiling (envpool, random actions), per thread count.

    For each thread count: the ceiling (the same env batches stepping random actions, no
    learning), then the real trainer; both after a warm-up (compilation excluded) that is
    not measured. Frames are emulator frames (agent steps x frame skip).
    """
    import json
    import time

    from .bench import parse_threads

    algo, envs_per_thread = _family_given(algo, envs_per_thread)
    _check_window(seconds, warmup)
    if repeat < 1:
        fail(f"--repeat must be >= 1, got {repeat}")
    try:
        threads_list = parse_threads(threads)
        if nodes is not None and ray_address is None:
            raise C.ConfigError("--nodes applies to runs on Ray: add --ray")
        if ray_address is not None:
            nodes_list = parse_threads(nodes or "1,2", "--nodes")
            if len(threads_list) != 1:
                raise C.ConfigError(f"with --ray, --threads takes one number (threads per node), got {threads!r}")
    except C.ConfigError as exc:
        fail(str(exc))
    from .bench import format_table, run_bench
    from .perf import cpu_flags, cpu_model

    if ray_address is None:
        def measure(progress):
            return run_bench(env, algo, threads_list, envs_per_thread, seconds, warmup, backend, progress,
                             pin_threads, repeat)
    else:
        from .distributed.driver import connect_run

        try:
            connect_run(C.build(dict(nodes=max(nodes_list))), ray_address)
        except ValueError as exc:  # Ray missing, or no cluster at the address
            fail(str(exc))

        def measure(progress):
            from .distributed.bench import run_ray_bench

            return run_ray_bench(env, algo, nodes_list, threads_list[0], envs_per_thread, seconds, warmup, backend,
                                 progress, pin_threads, repeat)

    (rows, cfg), settings = _measured(env, algo, threads_list[0], envs_per_thread, backend, measure)
    if as_json:
        for r in rows:
            click.echo(json.dumps(r))
        return
    click.echo(f"fastasync bench: {cfg.algo.algo} on {cfg.env.env} ({cfg.env.backend}), "
               f"{cfg.env.envs_per_thread} envs per thread, {time.strftime('%Y-%m-%d %H:%M')}")
    click.echo(f"machine: {cpu_model()} ({', '.join(cpu_flags()) or 'no AVX'}), {os.cpu_count()} cores")
    click.echo(f"frames/s = {_frames_unit(cfg)}; each figure after {warmup:g}s warm-up "
               f"(train: after kernel compilation and the first segment too), measured over {seconds:g}s")
    click.echo("")
    click.echo(format_table(rows))
    click.echo("")
    if ray_address is not None:
        click.echo(f"on Ray: {threads_list[0]} learner thread(s) per node; ratio = train / ceiling at the same node "
                   "count; efficiency = train(N nodes) / (N x train(1 node))")
    else:
        click.echo("ratio = train / ceiling at the same thread count; efficiency = train(N) / (N x train(1))"
                   + ("" if any(r["threads"] == 1 for r in rows) else " (n/a: 1 thread not measured)"))
    click.echo("RSS: this process's resident set at the start and end of the train window"
               + (" (the first round's)" if repeat > 1 else ""))
    if repeat > 1:
        click.echo(f"each figure is the median of {repeat} rounds (every thread count in turn, ceiling then train); "
                   "each round's ratio:")
        for r in rows:
            click.echo(f"  {_row_name(r)}: " + ", ".join(f"{x:.2f}" for x in r["ratios"]))
    for r in rows:
        click.echo(f"{_row_name(r)}: {r['placement']}")
    click.echo("")
    click.echo("thread settings (BLAS pinned to 1 thread, as in the learners):")
    click.echo(json.dumps(settings, indent=2))
    click.echo("config (resolved; frames, run_dir, checkpoint/progress periods are the benchmark's):")
    click.echo(json.dumps(cfg.to_dict(), indent=2))


def _row_name(r):
    return f"{r['nodes']} node(s)" if "nodes" in r else f"{r['threads']} thread(s)"


@main.command(name="profile", context_settings=CONTEXT)
@_bench_options("1", 10.0, 3.0, "learner threads (one number)")
def profile_cmd(env, algo, threads, envs_per_thread, seconds, warmup, backend, pin_threads):
    """Where one learner's time goes: ms per agent step and share per phase, kernel GFLOP/s.

    Phases: parameter snapshot, forward, action sampling, env step, Python glue, loss,
    backward, RMSProp apply. GFLOP/s of the forward/backward kernels are compared with one
    core's fp32 peak measured in the same run. Compilation and warm-up are excluded.
    """
    from .bench import parse_threads

    algo, envs_per_thread = _family_given(algo, envs_per_thread)
    _check_window(seconds, warmup)
    try:
        tl = parse_threads(threads)
        if len(tl) != 1:
            raise C.ConfigError(f"--threads takes one number for profile, got {threads!r}")
    except C.ConfigError as exc:
        fail(str(exc))
    import json
    import time

    from .perf import cpu_flags, cpu_model
    from .profile import format_report, run_profile

    res, s = _measured(
        env, algo, tl[0], envs_per_thread, backend,
        lambda progress: run_profile(env, algo, tl[0], envs_per_thread, seconds, warmup, backend, progress,
                                     pin_threads=pin_threads),
    )
    cfg = res["config"]
    click.echo(f"fastasync profile: {cfg.algo.algo} on {cfg.env.env} ({cfg.env.backend}), {cfg.run.threads} thread(s) x "
               f"{cfg.env.envs_per_thread} envs, t_max {cfg.algo.t_max}, {time.strftime('%Y-%m-%d %H:%M')}")
    click.echo(f"machine: {cpu_model()} ({', '.join(cpu_flags()) or 'no AVX'}), {os.cpu_count()} cores; "
               f"{warmup:g}s warm-up after compilation excluded, {seconds:g}s profiled")
    click.echo("")
    click.echo(format_report(res))
    click.echo(f"frames = {_frames_unit(cfg)}")
    click.echo("threads: numba layer " + str(s["numba"]["threading_layer_in_use"]) + "; BLAS "
               + ", ".join(f"{b['file']} {b['num_threads']} thread(s) {b['arch']}" for b in s["blas"])
               + f"; envpool {s['envpool']['num_threads_per_batch']} thread per batch")
    click.echo("config: " + json.dumps(cfg.to_dict()))


# train's options that sweep takes as its own (the sweep directory, threads per trial, a TOML
# with a [sweep] table, --resume and --ray of the sweep) or not at all (training on Ray)
_SWEEP_OWN = ("run_dir", "threads", "resume", "config_file", "ray_address", "nodes", "sync_every_updates",
              "sync_every_s", "node_restarts")


def _plain(text):
    """train's help text without its note on defaults (sweep shows none: train's apply)."""
    return (text or "").split("  (the default shown")[0]


def _train_options_for_sweep(f):
    """Every other option of ``train``, as a value or a distribution (flags as flags)."""
    for p in reversed(train.params):
        if not isinstance(p, click.Option) or p.name in _SWEEP_OWN:
            continue
        if p.is_flag:
            f = click.option(f"{p.opts[0]}/{p.secondary_opts[0]}", p.name, default=None, help=_plain(p.help))(f)
        else:
            f = click.option(*p.opts, p.name, type=str, default=None, metavar="VALUE|DIST", help=_plain(p.help))(f)
    return f


@main.command(context_settings=dict(CONTEXT, ignore_unknown_options=True, allow_extra_args=True))
@click.option("--trials", type=int, default=None, help="trials to run  [default: the number of values of list: options]")
@click.option("--sweep-seed", type=int, default=None, help="seed of the sampled values (the same seed, the same trials)  "
                                                           "[default: 0]")
@click.option("--parallel", type=int, default=None,
              help="trials side by side on this machine, the CPUs split between them  [default: 1]")
@click.option("--threads", type=int, default=None,
              help="learner threads of each trial  [default: the CPUs this process may use / --parallel; 1 on Ray]")
@click.option("--run-dir", type=str, default=None, help="the sweep directory, each trial's run directory inside it  "
                                                        "[default: runs/sweep-<env>-<algo>-<time>]")
@click.option("--target", type=float, multiple=True,
              help="a score: sweep.csv gives the frames at which each trial's 10-game mean first reached it, the "
                   "summary the trials whose final 10-game mean did (repeat for several)")
@click.option("--eval-episodes", type=int, default=None, metavar="N",
              help="after each trial, play N games with its final checkpoint (fastasync eval --save: the method's "
                   "eval policy) for the eval columns of sweep.csv, the summary and the scatter; a rerun with it "
                   "evaluates the finished trials that have no eval yet  [default: 0, no eval]")
@click.option("--only", type=str, default=None, metavar="TRIALS",
              help="run (or evaluate) only these trials this time, e.g. --only trial-011,trial-014 or --only 11,14; "
                   "the others stay as they are for a later run")
@click.option("-s", "--sweep", "sweep_specs", multiple=True, metavar="NAME=DIST",
              help="sweep any option, also those set in TOML only, e.g. -s rms_alpha=uniform:0.9:0.99")
@click.option("--config", "config_file", type=str, default=None,
              help="TOML file of options for every trial; its [sweep] table holds distributions (and trials, "
                   "sweep_seed, parallel, target)")
@click.option("--resume", type=str, default=None, metavar="SWEEP_DIR",
              help="continue the sweep in SWEEP_DIR as it was started (finished trials are skipped, stopped ones resume)")
@click.option("--ray", "ray_address", is_flag=False, flag_value="local", default=None, metavar="[ADDRESS]",
              help="spread the trials over a Ray cluster, one task of --threads CPUs per trial (ADDRESS as train "
                   "--ray takes it); the sweep directory must be on a file system every node shares")
@_train_options_for_sweep
@click.pass_context
def sweep(ctx, trials, sweep_seed, parallel, threads, run_dir, target, eval_episodes, only, sweep_specs, config_file,
          resume, ray_address, **options):
    """Run N trials of `fastasync train` that differ in sampled or listed options, and summarise them.

    Give an option a distribution to sweep it: --lr loguniform:1e-4:1e-2, --seed range:0:100
    (whole numbers 0..99), --entropy choice:0.01,0.001 (drawn), --t-max list:5,20 (trial k
    takes the k-th). Every other option of train goes to every trial. Each trial is a plain
    run directory inside the sweep directory; sweep.csv, summary.json, SUMMARY.md and
    sweep.png (final score against the swept option) are written there. The same command
    again (or --resume SWEEP_DIR) skips finished trials and resumes stopped ones; Ctrl-C
    stops the running trials with a checkpoint each.
    """
    if ctx.args:
        from .sweep import NOT_SWEPT, RAY_TRAINING

        bad = next((a for a in ctx.args if a.startswith("-")), None)
        if bad is None:
            fail(f"unexpected argument {ctx.args[0]!r} (options take the form --name VALUE)")
        name = bad.split("=", 1)[0].lstrip("-").replace("-", "_")
        fail(NOT_SWEPT[name] if name in RAY_TRAINING else f"{bad} is not an option of fastasync train or sweep")
    given = {k: v for k, v in options.items() if v is not None}
    space = {}
    for spec in sweep_specs:
        name, eq, dist = spec.partition("=")
        if not eq or not name.strip() or not dist.strip():
            fail(f"--sweep {spec}: expected NAME=DIST, e.g. rms_alpha=uniform:0.9:0.99")
        space[name.strip().replace("-", "_")] = dist.strip()
    from .api import sweep as api_sweep

    try:
        res = api_sweep(trials=trials, sweep_seed=sweep_seed, parallel=parallel, threads=threads, run_dir=run_dir,
                        target=list(target) or None, space=space or None, config=config_file, resume=resume,
                        ray=ray_address, eval_episodes=eval_episodes, only=only, out=lambda msg: click.echo(msg, err=True),
                        **given)
    except ValueError as exc:  # ConfigError, StartError, a Ray cluster that does not answer
        fail(str(exc))
    if res.interrupted:
        sys.exit(128 + int(res.stop_signal or 2))
    if res.failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
