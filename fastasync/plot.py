"""Learning curves: true game score against emulator frames, from episodes.csv.

``plot_scores``: one run, every game and the rolling mean. ``plot_runs``: several runs on
one figure; runs that differ only in their seed are grouped into one line (the median of
their rolling means on a common frame grid, the min-max spread shaded). ``plot_sweep``: a
sweep's scatter, each trial's final score against the swept option.
"""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np

from .stats import read_episodes


def rolling_mean(x: np.ndarray, window: int) -> np.ndarray:
    """Mean of the last ``window`` values at every index (fewer at the start)."""
    c = np.cumsum(np.insert(np.asarray(x, float), 0, 0.0))
    idx = np.arange(1, len(x) + 1)
    lo = np.maximum(idx - window, 0)
    return (c[idx] - c[lo]) / (idx - lo)


def plot_scores(episodes_csv: str, out: str, window: int = 10, max_frames: float | None = None) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .checkpoint import atomic_write_bytes

    d = read_episodes(episodes_csv)
    if not d["frames"]:
        raise ValueError(f"{episodes_csv} has no finished games yet")
    order = np.argsort(d["frames"], kind="stable")
    frames = np.array(d["frames"], float)[order]
    score = np.array(d["score"])[order]
    mean = rolling_mean(score, window)
    wall = np.array(d["wall_s"])[order]
    keep = _within(frames, max_frames, episodes_csv)
    frames, score, mean, wall = frames[keep], score[keep], mean[keep], wall[keep]
    title = os.path.basename(os.path.dirname(os.path.abspath(episodes_csv)))
    cfg_path = os.path.join(os.path.dirname(episodes_csv), "config.json")
    if os.path.exists(cfg_path):
        try:
            cfg = json.load(open(cfg_path))
            title = f"{cfg['algo']['algo']} on {cfg['env']['env']}, {cfg['run']['threads']} threads"
        except (ValueError, KeyError):
            pass
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    ax.plot(frames / 1e6, score, ".", ms=2, alpha=0.3, color="tab:blue", label="game score")
    ax.plot(frames / 1e6, mean, color="tab:red", lw=2, label=f"mean of last {window}")
    ax.set_xlabel("emulator frames (millions)")
    ax.set_ylabel("true game score")
    ax.set_title(f"{title}\n{len(score)} games, {frames[-1] / 1e6:.1f}M frames, {wall.max() / 60:.1f} min")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    atomic_write_bytes(out, lambda fh: fig.savefig(fh, format=os.path.splitext(out)[1][1:] or "png"))
    plt.close(fig)
    return out


# options that do not change what a run learns: runs that differ only in these (and the seed)
# are repetitions of one experiment
_NOT_THE_EXPERIMENT = {"seed", "run_dir", "checkpoint_every_s", "progress_every_s", "pin_threads", "tensorboard",
                       "backend", "node_restarts"}
_LABEL_OPTIONS = 4  # at most this many differing options in a label (then "...")


def _run_config(episodes_csv):
    path = os.path.join(os.path.dirname(os.path.abspath(episodes_csv)), "config.json")
    try:
        with open(path) as fh:
            cfg = json.load(fh)
        cfg["env"]["env"], cfg["algo"]["algo"]  # noqa: B018 - what a label needs
        return cfg
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _experiment(cfg):
    """The options that make the experiment (everything but the seed and bookkeeping), flat.
    An option the run's config.json predates counts with today's default (the run behaved so:
    an option is added with the old behaviour as its default)."""
    from . import config as C

    flat = {f.name: getattr(sec(), f.name) for sec in C.SECTIONS.values() for f in dataclasses.fields(sec)}
    flat.update({k: v for sec in cfg.values() if isinstance(sec, dict) for k, v in sec.items()})
    if flat.get("frame_center"):  # measured per run (--frame-center auto): seeds differ in the 3rd decimal
        flat["frame_center"] = "centred"
    return {k: v for k, v in flat.items() if k not in _NOT_THE_EXPERIMENT}


def group_runs(paths):
    """[(label, [episodes.csv, ...])]: runs with the same experiment (config but the seed) together,
    in the order first given. A label names env and method, and the options where groups
    of the same env and method differ; runs without a readable config.json stand alone."""
    groups, keys = [], []
    for p in paths:
        cfg = _run_config(p)
        key = json.dumps(_experiment(cfg), sort_keys=True) if cfg else ("dir", os.path.abspath(p))
        if key in keys:
            groups[keys.index(key)][1].append(p)
        else:
            keys.append(key)
            groups.append((cfg, [p]))
    labels = []
    for cfg, members in groups:
        if cfg is None:
            labels.append(os.path.basename(os.path.dirname(os.path.abspath(members[0]))) or members[0])
            continue
        base = f"{cfg['algo']['algo']} on {cfg['env']['env']}"
        mine = _experiment(cfg)
        same = [c for c, _ in groups if c is not None and c is not cfg
                and (c["algo"]["algo"], c["env"]["env"]) == (cfg["algo"]["algo"], cfg["env"]["env"])]
        diff = sorted({k for c in same for k, v in _experiment(c).items() if mine.get(k) != v})
        if diff:
            shown = [f"{k.replace('_', '-')} {mine.get(k)}" for k in diff[:_LABEL_OPTIONS]]
            base += " (" + ", ".join(shown + (["..."] if len(diff) > _LABEL_OPTIONS else [])) + ")"
        labels.append(base + (f", {len(members)} seeds" if len(members) > 1 else ""))
    return [(label, members) for label, (_cfg, members) in zip(labels, groups)]


def _within(frames, max_frames, episodes_csv):
    """The games that ended within the first ``max_frames`` frames (all where None); the
    rolling means are taken over every game first, so a curve cut short ends where it was."""
    keep = np.ones(len(frames), bool) if max_frames is None else frames <= max_frames
    if not keep.any():
        raise ValueError(f"{episodes_csv}: no game ended within the first {max_frames:,.0f} frames")
    return keep


def _curve(episodes_csv, window, max_frames=None):
    d = read_episodes(episodes_csv)
    if not d["frames"]:
        raise ValueError(f"{episodes_csv} has no finished games yet")
    order = np.argsort(d["frames"], kind="stable")
    frames = np.array(d["frames"], float)[order]
    mean = rolling_mean(np.array(d["score"])[order], window)
    keep = _within(frames, max_frames, episodes_csv)
    return frames[keep], mean[keep]


def plot_runs(paths, out: str, window: int = 10, points: int = 200, max_frames: float | None = None) -> str:
    """Several runs on one figure (see the module docstring), each cut at ``max_frames`` where
    given; returns ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .checkpoint import atomic_write_bytes

    groups = group_runs(paths)
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    # past ten lines the default cycle repeats its colours: a sequential map instead (in the
    # order given, e.g. a sweep's trials sorted by lr)
    many = plt.get_cmap("viridis")(np.linspace(0.0, 0.92, len(groups))) if len(groups) > 10 else None
    for i, (label, members) in enumerate(groups):
        color = many[i] if many is not None else f"C{i % 10}"
        curves = [_curve(p, window, max_frames) for p in members]
        if len(curves) == 1:
            ax.plot(curves[0][0] / 1e6, curves[0][1], color=color, lw=1.5, label=label)
            continue
        lo = max(c[0][0] for c in curves)
        hi = min(c[0][-1] for c in curves)
        if hi <= lo:  # the runs share no stretch of frames: one line each
            for f, m in curves:
                ax.plot(f / 1e6, m, color=color, lw=1, alpha=0.7)
            ax.plot([], [], color=color, label=label + " (no common frames)")
            continue
        for f, m in curves:  # each seed thin, whole (seeds that stop at a target end early)
            ax.plot(f / 1e6, m, color=color, lw=0.6, alpha=0.45)
        grid = np.linspace(lo, hi, points)
        ys = np.array([np.interp(grid, f, m) for f, m in curves])
        ax.fill_between(grid / 1e6, ys.min(axis=0), ys.max(axis=0), color=color, alpha=0.2, lw=0)
        ax.plot(grid / 1e6, np.median(ys, axis=0), color=color, lw=2, label=label + " (median, min-max where all ran; thin: each)")
    ax.set_xlabel("emulator frames (millions)")
    ax.set_ylabel(f"true game score (mean of last {window})")
    ax.set_title(f"{len(paths)} runs")
    ax.grid(alpha=0.3)
    fig.tight_layout()  # before the legend, which would otherwise squeeze the axes to make room
    # below the axes (a legend inside hides the curves' ends, where the runs reach their
    # targets); the saved image grows to hold it
    ax.legend(loc="upper left", bbox_to_anchor=(0.0, -0.16), fontsize="small", frameon=False,
              ncol=1 if len(groups) <= 8 else 2)
    atomic_write_bytes(out, lambda fh: fig.savefig(fh, format=os.path.splitext(out)[1][1:] or "png",
                                                   bbox_inches="tight"))
    plt.close(fig)
    return out


def plot_sweep(rows, x: str, log: bool, out: str, title: str = "", note: str = "", target: float | None = None,
               window: int = 10, xlim: tuple | None = None, default: float | None = None) -> str:
    """A sweep's scatter (sweep.png), as the paper's Figure 2: each trial's final score (the
    mean of its last ``window`` games) against its value of the swept option ``x``, on a log
    axis when ``log``, one marker per trial. Finished trials are filled where they reached
    ``target`` and hollow where not (the target a dashed line); unfinished ones (stopped,
    failed, running) are grey crosses; a black dash marks a finished trial's mean of its last
    100 games (``final_mean100``) where the rows have it, an orange star the eval of its final
    checkpoint (``eval_mean``, ``fastasync eval --save``) where it has one. ``xlim``: the searched range (lo,
    hi), which the axis then spans; ``default``: the value a bare run takes, a dotted line.
    ``rows``: sweep.csv's rows as dicts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    from .checkpoint import atomic_write_bytes

    have = [r for r in rows if r.get(x) is not None and not np.isnan(r.get("final_mean10", np.nan))]
    values = [r[x] for r in have]
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    cats = [] if numeric else sorted({str(v) for v in values})
    pos = (lambda v: float(v)) if numeric else (lambda v: float(cats.index(str(v))))
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=100)
    groups = (("reached", lambda r: r["status"] == "done" and target is not None and r["final_mean10"] >= target,
               dict(marker="o", color="tab:blue", ls="none", ms=7)),
              ("did not reach" if target is not None else "done",
               lambda r: r["status"] == "done" and (target is None or r["final_mean10"] < target),
               dict(marker="o", ls="none", ms=7, mfc="none" if target is not None else "tab:blue", mec="tab:blue")),
              ("unfinished (stopped, failed or running)", lambda r: r["status"] != "done",
               dict(marker="x", color="grey", ls="none", ms=7)))
    for label, pick, style in groups:
        sel = [r for r in have if pick(r)]
        if sel:
            ax.plot([pos(r[x]) for r in sel], [r["final_mean10"] for r in sel], label=f"{label} ({len(sel)})", **style)
    last = [r for r in have if r["status"] == "done" and not np.isnan(r.get("final_mean100", np.nan))]
    if last:
        ax.plot([pos(r[x]) for r in last], [r["final_mean100"] for r in last], marker="_", color="black",
                ls="none", ms=12, mew=1.5, label="mean of the last 100 games")
    ev = [r for r in have if r["status"] == "done" and not np.isnan(r.get("eval_mean", np.nan))]
    if ev:
        ax.plot([pos(r[x]) for r in ev], [r["eval_mean"] for r in ev], marker="*", color="tab:orange",
                ls="none", ms=9, label="eval of the final checkpoint")
    if target is not None:
        ax.axhline(target, color="tab:red", ls="--", lw=1, label=f"target {target:g}")
    if default is not None and numeric:
        ax.axvline(default, color="grey", ls=":", lw=1.2, label=f"default {x} {default:.4g}")
    if numeric and log and values and min(values) > 0:
        ax.set_xscale("log")
    if numeric and xlim is not None:
        lo, hi = xlim
        pad = (hi / lo) ** 0.03 if log and lo > 0 else None
        ax.set_xlim(*((lo / pad, hi * pad) if pad else (lo - 0.03 * (hi - lo), hi + 0.03 * (hi - lo))))
    if ax.get_xscale() == "log":
        lo, hi = ax.get_xlim()
        if hi / lo > 10:  # labels at the decades only: 2x10^-4, 3x10^-4, ... run into each other
            ax.xaxis.set_minor_formatter(NullFormatter())
    if cats:
        ax.set_xticks(range(len(cats)), cats)
    ax.set_xlabel(x + (" (log scale)" if numeric and log else ""))
    ax.set_ylabel(f"final score (mean of the last {window} games)")
    ax.set_title(title + (f"\n{note}" if note else ""), fontsize="medium")
    ax.grid(alpha=0.3)
    if have:
        ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    atomic_write_bytes(out, lambda fh: fig.savefig(fh, format=os.path.splitext(out)[1][1:] or "png"))
    plt.close(fig)
    return out
