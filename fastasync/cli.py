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
@_opt("--value-coef", "algo", "value_coef", type=float)
@_opt("--checkpoint-every-s", "run", "checkpoint_every_s", type=float)
@_opt("--progress-every-s", "run", "progress_every_s", type=float)
@_opt("--pin-threads/--no-pin-threads", "run", "pin_threads")
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
    from .checkpoint import CheckpointError
    from .envs import EnvError

    from click.core import ParameterSource

    given = {
        k: v for k, v in options.items() if ctx.get_parameter_source(k) == ParameterSource.COMMANDLINE
    }
    try:
        flat = C.load_toml(config_file) if config_file else {}
        flat.update(given)
        ck = None
        if resume:
            from . import checkpoint
            from .trainer import resume_config

            ck = checkpoint.load(resume)
            cfg = resume_config(ck, flat)
            if "run_dir" not in flat:
                cfg = _with_run_dir(cfg, os.path.dirname(os.path.abspath(ck["path"])))
            if cfg.run.frames <= ck["frames"]:
                raise C.ConfigError(
                    f"the run already has {ck['frames']:,} frames of --frames {cfg.run.frames:,}; "
                    "pass a larger --frames to continue"
                )
        else:
            cfg = C.build(flat)
        if ray_address is None:
            ray_only = [k for k in RAY_OPTIONS if k in given]
            if ray_only:
                raise C.ConfigError(f"--{ray_only[0].replace('_', '-')} applies to runs on Ray: add --ray")
        else:
            cfg = _ray_connect(cfg, ray_address)
        cfg = C.resolve(cfg)
        from . import rundir

        # checked and locked before anything is built or written: two runs never mix
        claim = rundir.claim(cfg.run.run_dir, ck["path"] if ck else None, auto_named=ck is None and "run_dir" not in flat)
        cfg = _with_run_dir(cfg, claim.path)
        from .trainer import Trainer

        try:
            if ray_address is None:
                trainer = Trainer(cfg, resume=ck)
            else:
                from .distributed.driver import RayTrainer

                trainer = RayTrainer(cfg, resume=ck)
        except BaseException:
            claim.abandon()  # bad input leaves nothing behind
            raise
        trainer.prepare_run_dir()
    except (C.ConfigError, EnvError, CheckpointError, ValueError) as exc:
        fail(str(exc))
    except MemoryError as exc:
        fail(f"not enough memory for {cfg.run.threads} threads x {cfg.env.envs_per_thread} envs x t_max "
             f"{cfg.algo.t_max}: {exc}")
    except OSError as exc:
        fail(f"cannot start the run in {cfg.run.run_dir}: {exc.strerror or exc}"
             + (f" ({exc.filename})" if exc.filename else ""))
    click.echo(f"run dir: {cfg.run.run_dir}", err=True)
    nodes = "" if ray_address is None else f"{cfg.run.nodes} nodes x "
    click.echo(
        f"{cfg.algo.algo} on {cfg.env.env} ({cfg.env.backend}): {nodes}{cfg.run.threads} threads x "
        f"{cfg.env.envs_per_thread} envs, {trainer.net.num_params:,} params, {cfg.run.frames:,} frames",
        err=True,
    )
    from .trainer import LearnerError, RunIOError

    run_errors = (RunIOError,)
    if ray_address is not None:
        from .distributed.driver import RayRunError

        run_errors = (RunIOError, RayRunError)
    try:
        summary = trainer.run()
    except LearnerError as exc:
        click.echo(exc.tb, err=True)
        fail(str(exc), code=1)
    except run_errors as exc:
        fail(str(exc), code=1)
    finally:
        claim.release()  # the run directory is free for the next run
        if ray_address is not None:
            from .distributed.driver import disconnect

            disconnect()  # a local Ray instance this run started stops with it
    ck_note = "checkpoint written" if summary["checkpoint_saved"] else "NO checkpoint written"
    if summary["interrupted"]:
        click.echo(
            f"stopped at {summary['frames']:,} frames; {ck_note}. "
            f"Resume with: fastasync train --resume {cfg.run.run_dir}" + ("" if ray_address is None else " --ray ..."),
            err=True,
        )
        sys.exit(130)
    last10 = summary["mean_score_last10"]
    click.echo(
        f"done: {summary['frames']:,} frames, {summary['games']} games, "
        + (f"mean score of the last 10 games {last10:.2f}" if summary["games"] else "no game finished")
        + f"; {ck_note} in {cfg.run.run_dir}",
        err=True,
    )
    if not summary["checkpoint_saved"]:
        sys.exit(1)


RAY_OPTIONS = ("nodes", "sync_every_updates", "sync_every_s", "node_restarts")


def _ray_connect(cfg, address):
    """Connect to Ray (exit 2 with the install command when it is missing); --threads left
    out: each node gets the cluster's CPUs / --nodes."""
    from .distributed import RayMissing

    try:
        from .distributed.driver import cluster_cpus, connect, with_threads
    except RayMissing as exc:
        fail(str(exc))
    try:
        ray = connect(address)
    except RayMissing as exc:
        fail(str(exc))
    if cfg.run.threads == 0:
        cfg = with_threads(cfg, max(1, cluster_cpus(ray) // cfg.run.nodes))
    return cfg


def _check_output_file(path, option):
    """Fail now, not after the work, when ``path`` cannot be written as a file."""
    if os.path.isdir(path):
        fail(f"{option} {path} is a directory; give a file name")
    d = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(d):
        fail(f"{option} {path}: there is no directory {d}")
    if not os.access(d, os.W_OK):
        fail(f"{option} {path}: cannot write in {d}")


def _with_run_dir(cfg, run_dir):
    import dataclasses

    return dataclasses.replace(cfg, run=dataclasses.replace(cfg.run, run_dir=run_dir))


@main.command(name="eval", context_settings=CONTEXT)
@click.argument("path", type=str)
@click.option("--episodes", type=int, default=10, show_default=True, help="full games to play")
@click.option("--greedy/--sample", default=None,
              help="argmax actions, or the method's exploring policy (a3c: sample it; Q methods: epsilon-greedy, "
                   "epsilon 0.05)  [default: sample for a3c, greedy for Q methods]")
@click.option("--gif", type=str, default=None, help="write an animated GIF of the first game here")
@click.option("--seed", type=int, default=12345, show_default=True, help="env and action seed")
@click.option("--backend", type=click.Choice(["auto", "envpool", "gymnasium"]), default="auto", show_default=True,
              help="env backend")
def eval_cmd(path, episodes, greedy, gif, seed, backend):
    """Play full games with a trained agent and print true-score statistics."""
    from .checkpoint import CheckpointError
    from .envs import EnvError

    if episodes < 1:
        fail(f"--episodes must be >= 1, got {episodes}")
    if gif:
        _check_output_file(gif, "--gif")
    try:
        from .evaluate import evaluate, load_agent

        agent = load_agent(path, backend=backend)
        res = evaluate(agent, episodes=episodes, greedy=greedy, seed=seed, gif=gif)
    except (C.ConfigError, EnvError, CheckpointError, ValueError, OSError) as exc:
        fail(str(exc))
    s = res["scores"]
    click.echo(
        f"{agent.cfg.algo.algo} on {agent.cfg.env.env}, {len(s)} games ({res['policy']}): "
        f"mean {s.mean():.2f}  median {float(__import__('numpy').median(s)):.2f}  min {s.min():g}  max {s.max():g}"
    )
    if gif:
        click.echo(f"wrote {gif}")


@main.command(context_settings=CONTEXT)
@click.argument("run_dir", type=str)
@click.option("-o", "--output", type=str, default=None, help="image file  [default: RUN_DIR/curve.png]")
@click.option("--window", type=int, default=10, show_default=True, help="games in the rolling mean")
def plot(run_dir, output, window):
    """Plot true game score against frames (rolling mean) from a run's episodes.csv."""
    if window < 1:
        fail(f"--window must be >= 1, got {window}")
    path = os.path.join(run_dir, "episodes.csv") if os.path.isdir(run_dir) else run_dir
    if not os.path.exists(path):
        fail(f"no episodes.csv at {path}")
    from .plot import plot_scores

    output = output or os.path.join(os.path.dirname(path), "curve.png")
    _check_output_file(output, "-o")
    try:
        out = plot_scores(path, output, window)
    except ValueError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot write {output}: {exc.strerror or exc}")
    click.echo(f"wrote {out}")


@main.command(context_settings=CONTEXT)
@click.option("--backend", type=click.Choice(["all", "envpool", "gymnasium"]), default="all", show_default=True)
def envs(backend):
    """List supported environment ids by backend."""
    from .envs import EnvError, list_envs

    for b in ["envpool", "gymnasium"] if backend == "all" else [backend]:
        try:
            ids = list_envs(b)
        except EnvError as exc:
            click.echo(f"{b}: not available ({exc})")
            continue
        click.echo(f"{b} ({len(ids)}):")
        for i in range(0, len(ids), 6):
            click.echo("  " + "  ".join(ids[i : i + 6]))


def _measured(env, algo, threads, envs_per_thread, backend, measure):
    """Check the env/algo up front, then run ``measure(progress)`` with BLAS pinned to one
    thread, as the learners run. Returns (its result, the thread settings seen meanwhile)."""
    from threadpoolctl import threadpool_limits

    from .bench import bench_config
    from .envs import EnvError
    from .perf import _load_blas, thread_settings
    from .trainer import LearnerError

    _load_blas()
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
        _ray_connect(C.build(dict(nodes=max(nodes_list))), ray_address)

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
    click.echo(f"frames/s = emulator frames (agent steps x frame skip); each figure after {warmup:g}s warm-up "
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
    click.echo("threads: numba layer " + str(s["numba"]["threading_layer_in_use"]) + "; BLAS "
               + ", ".join(f"{b['file']} {b['num_threads']} thread(s) {b['arch']}" for b in s["blas"])
               + f"; envpool {s['envpool']['num_threads_per_batch']} thread per batch")
    click.echo("config: " + json.dumps(cfg.to_dict()))


if __name__ == "__main__":
    main()
