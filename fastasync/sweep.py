"""Sweeps: N trials of ``fastasync train`` that differ in sampled or listed options, each a
plain run directory inside one sweep directory, and their summary.

The search space is a distribution per option, written ``KIND:ARGS``:

- ``loguniform:LO:HI``: log-uniform in [LO, HI] (LO > 0), e.g. ``--lr loguniform:1e-4:1e-2``;
- ``uniform:LO:HI``: uniform in [LO, HI];
- ``range:LO:HI``: a whole number drawn from LO, LO+1, ..., HI-1 (as Python's ``range``);
- ``choice:A,B,...``: one of the values, drawn;
- ``list:A,B,...``: trial k takes the k-th value (cycling): listed, not drawn.

Values are of the option's type (``range`` gives whole numbers, a float option's draws are
rounded to 4 significant digits); frame counts (``--frames``, ``--*-frames``), booleans and
text take ``choice`` or ``list`` only. Trial k's values come from its own generator seeded
with (sweep seed, k, the option's name), so a sweep grown from 8 to 16 trials keeps its first
8, and adding an option to the space leaves the others' draws alone.

This module has two halves. The first is plain functions, dicts and arrays in, no I/O:
parsing (:func:`parse_dist`, :func:`split_options`), sampling (:func:`sample_trials`),
the statistics of a trial's games (:func:`trial_stats`), the summary (:func:`summarise`,
:func:`widest_interval`), the progress line and ETA. The second runs a sweep: the sweep
directory's files (``sweep.json`` the state: search space, sampled values, status per trial;
``sweep.csv``, ``summary.json``, ``SUMMARY.md``, ``sweep.png``) and the trials.

A trial is a subprocess, ``python -m fastasync.cli train`` in effect, with its options in
``RUN_DIR/trial.toml`` and its output in ``RUN_DIR/train.log``: exactly the run a user
would start by hand (same checks, same messages, same exit codes: 0 done, 130/143 stopped
with a checkpoint, 1 a fault, 2 bad input), and a process of its own, so that trials side by
side do not share numba's or envpool's threads, a crashed trial takes nothing else down, and
Ctrl-C reaches each trial as the SIGINT it already handles. With ``eval_episodes`` a trial
that trained its budget is then evaluated by a second subprocess in the same slot,
``fastasync eval RUN_DIR --save`` (:func:`eval_step`). Trials run here one after
another or ``parallel`` side by side (:class:`LocalTrials`), or as Ray tasks
(``fastasync.distributed.sweep``), both driven by :func:`run_trials`.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import types
import zlib
from dataclasses import dataclass

from . import config as C
from .errors import ConfigError, StartError

DISTRIBUTIONS = ("loguniform", "uniform", "range", "choice", "list")
DIST_HELP = "loguniform:LO:HI, uniform:LO:HI, range:LO:HI, choice:A,B,... or list:A,B,..."

RAY_TRAINING = ("nodes", "sync_every_updates", "sync_every_s", "node_restarts")  # train --ray's own options
# options a trial cannot take from the search space, and why
NOT_SWEPT = {
    "run_dir": "--run-dir names the sweep directory; each trial's run directory is made inside it",
    "threads": "--threads is the sweep's (learner threads of every trial); it cannot be swept",
    "hidden": "hidden cannot be swept (give it in --config; every trial takes it)",
    **{k: f"--{k.replace('_', '-')} is an option of training on Ray; the trials of a sweep are one-machine runs "
          "(fastasync sweep --ray spreads the trials over a Ray cluster)"
       for k in RAY_TRAINING},
}
# options that change how a trial runs, not what it learns: a rerun of a sweep may give others
EXECUTION = ("pin_threads", "progress_every_s", "checkpoint_every_s", "tensorboard")
# keys of a TOML [sweep] table that are settings of the sweep, not distributions
SETTINGS = ("trials", "sweep_seed", "parallel", "target", "eval_episodes")

STATE_NAME = "sweep.json"
STOP_NAME = ".stop"  # written by a stopping sweep on Ray: its tasks stop their trials
WINDOW = 10  # games in the mean of final_mean10 and best_mean10
LAST = 100  # games in final_mean100: the final score with less of one lucky or unlucky game in it
STATE_VERSION = 1
# a running trial whose train.log has not changed for this long (at least; 30 of its progress
# intervals where that is longer) is said to the user: a stuck process, or on Ray a lost task
# that was not rerun, must not look like a sweep that is merely slow
QUIET_S = 1200.0


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _kind_of(name: str) -> str:
    """The type of option ``name``: frames, bool, int, float, str or tuple."""
    if name == "frames" or name.endswith("_frames"):
        return "frames"
    _sec, f = C.flat_fields()[name]
    return {bool: "bool", int: "int", float: "float", str: "str", tuple: "tuple"}[type(f.default)]


def coerce(name: str, value):
    """``value`` as option ``name`` takes it (``"20k"`` -> 20000 frames, ``"1e-3"`` -> 0.001),
    checked as ``fastasync train`` checks it alone; ConfigError with train's message."""
    sec, _f = C.flat_fields()[name]
    return getattr(getattr(C.build({name: value}), sec), name)


def format_value(v) -> str:
    """A value as the tables and labels show it: floats to 4 significant digits."""
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _round_sig(x: float, digits: int = 4) -> float:
    return float(f"{x:.{digits - 1}e}") if x else 0.0


@dataclass(frozen=True)
class Dist:
    """One option's distribution. ``values``: the typed values of choice/list; ``lo``/``hi``:
    the bounds of the others; ``text``: the canonical spelling, as ``sweep.json`` keeps it."""

    name: str
    kind: str
    lo: float | None = None
    hi: float | None = None
    values: tuple = ()
    text: str = ""

    @property
    def log(self) -> bool:
        return self.kind == "loguniform"


def parse_dist(name: str, text: str) -> Dist:
    """Option ``name``'s distribution from ``KIND:ARGS`` (module docstring); ConfigError with
    one line for every bad input: an option train lacks or a sweep cannot vary, an unknown
    distribution, an empty range, LO >= HI, bounds <= 0 for loguniform, values of the wrong type."""
    name = name.replace("-", "_")
    ff = C.flat_fields()
    if name not in ff:
        raise ConfigError(f"{flag(name)} is not an option of fastasync train")
    if name in NOT_SWEPT:
        raise ConfigError(NOT_SWEPT[name])
    text = str(text).strip()
    where = f"{flag(name)} {text}"
    kind, sep, rest = text.partition(":")
    kind = kind.strip().lower()
    if not sep or kind not in DISTRIBUTIONS:
        raise ConfigError(f"{where}: unknown distribution {kind!r}; choose {DIST_HELP}")
    typ = _kind_of(name)
    if kind in ("choice", "list"):
        items = [s.strip() for s in rest.split(",")]
        if not rest.strip() or not all(items):
            raise ConfigError(f"{where}: {kind} needs values, e.g. {kind}:A,B,C")
        try:
            values = tuple(coerce(name, s) for s in items)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        return Dist(name, kind, values=values, text=f"{kind}:" + ",".join(_spell(v) for v in values))
    if typ in ("frames", "bool", "str", "tuple"):
        example = {"frames": "choice:10M,20M", "bool": "choice:true,false"}.get(typ, "choice:A,B")
        raise ConfigError(f"{where}: {flag(name)} takes choice: or list: values (e.g. {example}), not {kind}")
    parts = rest.split(":")
    try:
        if len(parts) != 2:
            raise ValueError
        lo, hi = float(parts[0]), float(parts[1])
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise ValueError
    except ValueError:
        raise ConfigError(f"{where}: expected {kind}:LO:HI with two finite numbers") from None
    if typ == "int" and not (lo.is_integer() and hi.is_integer()):
        raise ConfigError(f"{where}: {flag(name)} takes whole numbers; give whole bounds")
    if kind == "range":
        if typ != "int":
            raise ConfigError(f"{where}: range draws whole numbers and {flag(name)} takes any number; "
                              "use uniform:LO:HI or loguniform:LO:HI")
        if hi <= lo:
            raise ConfigError(f"{where}: the range is empty (range:LO:HI draws the whole numbers LO to HI-1)")
        bounds = (int(lo), int(hi) - 1)
    else:
        if lo >= hi:
            raise ConfigError(f"{where}: LO must be < HI")
        if kind == "loguniform" and lo <= 0:
            raise ConfigError(f"{where}: loguniform needs bounds > 0")
        bounds = (int(lo), int(hi)) if typ == "int" else (lo, hi)
    for b in bounds:  # e.g. --lr uniform:-1:1: train would refuse the trials that draw below 0
        try:
            coerce(name, b)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    if typ == "int":
        lo, hi = int(lo), int(hi)
    return Dist(name, kind, lo, hi, text=f"{kind}:{_spell(lo)}:{_spell(hi)}")


def _spell(v) -> str:
    """A value as a distribution's text spells it (repr of floats: exact, parsed back the same)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    return repr(v) if isinstance(v, float) else str(v)


def looks_like_dist(name: str, value) -> bool:
    """Whether a given option value is a distribution (``KIND:...``). An env id may hold a
    colon (``my_envs:Corridor-v0``): for text options only a known KIND counts; for numbers
    any ``word:`` prefix does, so that ``--lr normal:0:1`` is an unknown distribution, not a
    number train cannot read."""
    if not isinstance(value, str) or ":" not in value:
        return False
    head = value.split(":", 1)[0].strip().lower()
    if head in DISTRIBUTIONS:
        return True
    name = name.replace("-", "_")
    if name not in C.flat_fields() or _kind_of(name) in ("str", "bool"):
        return False
    return head.isidentifier()


def split_options(options: dict) -> tuple[dict, dict]:
    """(the distributions' texts, the fixed options) of ``{name: value}`` as given."""
    space, fixed = {}, {}
    for key, value in options.items():
        name = key.replace("-", "_")
        (space if looks_like_dist(name, value) else fixed)[name] = value
    return space, fixed


def parse_space(texts: dict) -> dict:
    """``{name: Dist}`` of ``{name: "KIND:ARGS"}``, in the order given."""
    return {name.replace("-", "_"): parse_dist(name, text) for name, text in texts.items()}


def sample_trials(space: dict, trials: int, seed: int, start: int = 0) -> list:
    """The values of trials ``start`` to ``trials - 1``: ``[{name: value}]``, reproducible.

    Each (trial, option) draws from its own generator seeded with (seed, trial, crc32 of
    the option's name), so trial k's values do not depend on how many trials there are or on
    the other options; ``list`` options take value k mod n instead."""
    import numpy as np

    out = []
    for k in range(start, trials):
        values = {}
        for name, d in space.items():
            if d.kind == "list":
                values[name] = d.values[k % len(d.values)]
                continue
            rng = np.random.default_rng([int(seed), k, zlib.crc32(name.encode())])
            if d.kind == "choice":
                values[name] = d.values[int(rng.integers(len(d.values)))]
            elif d.kind == "range":
                values[name] = int(rng.integers(d.lo, d.hi))
            else:
                u = rng.uniform()
                x = math.exp(math.log(d.lo) + u * (math.log(d.hi) - math.log(d.lo))) if d.log else d.lo + u * (d.hi - d.lo)
                if _kind_of(name) == "int":
                    values[name] = int(min(max(round(x), d.lo), d.hi))
                else:
                    values[name] = min(max(_round_sig(x), d.lo), d.hi)
        out.append(values)
    return out


def axis_option(space: dict) -> tuple:
    """(option, log axis) that sweep.png plots the final score against: the first log-uniform
    option, else the first other numeric one, else the first option (as categories)."""
    for d in space.values():
        if d.log:
            return d.name, True
    for d in space.values():
        if d.kind in ("uniform", "range"):
            return d.name, False
    for d in space.values():
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in d.values):
            return d.name, False
    first = next(iter(space.values()), None)
    return (first.name if first else None), False


# -- a trial's games, the summary ------------------------------------------------------------


def target_column(t: float) -> str:
    return f"frames_to_{t:g}"


def trial_stats(frames, scores, targets=(), window: int = WINDOW, last: int = LAST) -> dict:
    """A trial's games (``frames`` at each game's end, true ``scores``) -> ``games``,
    ``final_mean10`` (the mean of the last ``window`` games), ``best_mean10`` (the highest
    mean of ``window`` consecutive games), ``final_mean100`` (the mean of the last ``last``
    games) and, per target t, ``frames_to_<t>``: the frames at the end of the first ``window``
    games whose mean reached t (None: never). With fewer games than a mean takes, it is of all
    of them; with none, NaN."""
    import numpy as np

    frames = np.asarray(frames, np.int64)
    scores = np.asarray(scores, float)
    out = {"games": int(scores.size)}
    if scores.size == 0:
        out.update(final_mean10=math.nan, best_mean10=math.nan, final_mean100=math.nan,
                   **{target_column(t): None for t in targets})
        return out
    order = np.argsort(frames, kind="stable")
    frames, scores = frames[order], scores[order]
    w = min(window, scores.size)
    means = np.convolve(scores, np.ones(w) / w, "valid")
    at = frames[w - 1:]
    out["final_mean10"] = float(means[-1])
    out["best_mean10"] = float(means.max())
    out["final_mean100"] = float(scores[-last:].mean())
    for t in targets:
        hit = np.flatnonzero(means >= t)
        out[target_column(t)] = int(at[hit[0]]) if hit.size else None
    return out


def widest_interval(xs, reached, log: bool = True) -> dict | None:
    """The widest interval of the swept option in which every trial reached the target.

    ``xs``: each trial's value, ``reached``: whether it reached. Trials that did not reach
    cut the axis into stretches; within a stretch the reaching trials span [lo, hi]. The
    widest span wins (in decades, log10(hi/lo), on a log axis), then the one with more trials.
    Returns ``lo``, ``hi``, ``trials``, ``width`` (decades if ``log``), ``between`` (the
    values of the nearest trials outside that did not reach, None at an end), or None when no
    trial reached (or each that did shares its value with one that did not)."""
    xs = [float(x) for x in xs]
    fails = sorted(x for x, r in zip(xs, reached) if not r)
    hits = sorted(x for x, r in zip(xs, reached) if r)
    if not hits:
        return None
    edges = [-math.inf] + fails + [math.inf]
    best = None
    for a, b in zip(edges, edges[1:]):
        inside = [x for x in hits if a < x < b]
        if not inside:
            continue
        lo, hi = inside[0], inside[-1]
        width = math.log10(hi / lo) if log else hi - lo
        key = (width, len(inside), -lo)
        if best is None or key > best[0]:
            best = (key, dict(lo=lo, hi=hi, trials=len(inside), width=width,
                              between=[None if math.isinf(a) else a, None if math.isinf(b) else b]))
    return best[1] if best else None


def x_default(state: dict):
    """The value a run with the sweep's fixed options takes for the swept axis ``x`` when it
    is not swept (its env family's and method's default, or a fixed override), for a number
    drawn from uniform or loguniform; None otherwise (or where the env or method is swept, or
    it cannot be told)."""
    x, space = state.get("x"), state.get("space") or {}
    text = space.get(x, "")
    if not x or not str(text).startswith(("uniform:", "loguniform:")):
        return None
    if "env" in space or "algo" in space:  # defaults differ from trial to trial
        return None
    try:
        cfg = C.build(dict(state.get("options") or {}))
    except (ConfigError, ValueError, TypeError):
        return None
    return getattr(getattr(cfg, C.flat_fields()[x][0]), x)


def summarise(rows: list, x: str | None, log: bool, targets=(), default=None) -> dict:
    """What a sweep found, from its rows (one dict per trial: ``status``, ``final_mean10``,
    ``best_mean10``, ``final_mean100`` if known, the swept values): counts by status; over the
    finished trials (status done) the final 10-game mean's median, min and max (and the
    last-100 mean's), the best trial, and per target the trials whose final mean reached it
    (and whose best mean did, and whose last-100 mean did), their fraction, and the widest
    interval of ``x`` in which every finished trial reached it (by the final 10-game mean; by
    the last-100 mean too). Where finished trials hold an eval of their final checkpoint
    (``eval_mean``), the same for it: its spread, the trials whose eval reached each target,
    and (when every finished trial was evaluated) the widest interval by it. ``default``: the
    value of ``x`` a bare run takes (``x_default``), kept with the finished trials next to it
    on either side."""
    done = [r for r in rows if r["status"] == "done" and not math.isnan(r["final_mean10"])]
    counts = {s: sum(r["status"] == s for r in rows) for s in ("done", "running", "stopped", "failed", "pending")}
    out = {"trials": len(rows), **counts, "x": x, "x_log": log, "window": WINDOW, "last": LAST}
    finals = [r["final_mean10"] for r in done]
    if finals:
        best = max(done, key=lambda r: r["final_mean10"])
        out["final_mean10"] = _spread(finals)
        out["best"] = {"trial": best["trial"], "final_mean10": best["final_mean10"],
                       **({x: best.get(x)} if x else {})}
    lasts = [v for r in done if not math.isnan(v := r.get("final_mean100", math.nan))]
    if lasts:
        out["final_mean100"] = _spread(lasts)
    evals = [r for r in done if not math.isnan(r.get("eval_mean", math.nan))]
    if evals:
        out["eval"] = {**_spread([r["eval_mean"] for r in evals]), "evaluated": len(evals),
                       "games": sorted({r["eval_games"] for r in evals}),
                       "policy": sorted({str(r.get("eval_policy")) for r in evals})}
    numeric = x and done and all(isinstance(r.get(x), (int, float)) and not isinstance(r.get(x), bool) for r in done)
    if default is not None and numeric:
        below = [r for r in done if r[x] <= default]
        above = [r for r in done if r[x] > default]
        out["default"] = {"value": default, "nearest": [
            {"trial": r["trial"], x: r[x], "final_mean10": r["final_mean10"],
             **({"final_mean100": r["final_mean100"]} if "final_mean100" in r else {})}
            for r in (max(below, key=lambda r: r[x]) if below else None,
                      min(above, key=lambda r: r[x]) if above else None) if r is not None]}
    out["targets"] = []
    for t in targets:
        hit_final = [r["final_mean10"] >= t for r in done]
        hit_best = [r["best_mean10"] >= t for r in done]
        n = len(done)
        entry = {"target": t, "finished": n,
                 "reached_final": sum(hit_final), "fraction_final": sum(hit_final) / n if done else None,
                 "reached_best": sum(hit_best), "fraction_best": sum(hit_best) / n if done else None}
        if numeric:
            entry["widest_all_reached"] = widest_interval([r[x] for r in done], hit_final, log)
        if lasts:
            hit_last = [r.get("final_mean100", math.nan) >= t for r in done]
            entry.update(reached_last100=sum(hit_last), fraction_last100=sum(hit_last) / n)
            if numeric:
                entry["widest_all_reached_last100"] = widest_interval([r[x] for r in done], hit_last, log)
        if evals:
            hit_eval = [r["eval_mean"] >= t for r in evals]
            entry.update(evaluated=len(evals), reached_eval=sum(hit_eval), fraction_eval=sum(hit_eval) / len(evals))
            if numeric and len(evals) == n:  # an interval only where every finished trial was evaluated
                entry["widest_all_reached_eval"] = widest_interval([r[x] for r in evals], hit_eval, log)
        out["targets"].append(entry)
    return out


def _spread(values: list) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def summary_markdown(summary: dict, title: str) -> str:
    """SUMMARY.md: the summary in words."""
    lines = [f"# {title}", ""]
    s = summary
    lines.append(f"{s['trials']} trials: {s['done']} done, {s['running']} running, {s['stopped']} stopped, "
                 f"{s['failed']} failed, {s['pending']} not started.")
    if "final_mean10" in s:
        f = s["final_mean10"]
        lines.append(f"Final mean of the last {s['window']} games over the {s['done']} done: median {f['median']:.4g}, "
                     f"min {f['min']:.4g}, max {f['max']:.4g}; best {s['best']['trial']}"
                     + (f" ({s['x']} {format_value(s['best'].get(s['x']))})" if s["x"] else "") + ".")
    if "final_mean100" in s:
        f = s["final_mean100"]
        lines.append(f"Mean of the last {s['last']} games (fewer where a trial played fewer): median {f['median']:.4g}, "
                     f"min {f['min']:.4g}, max {f['max']:.4g}.")
    if "eval" in s:
        e = s["eval"]
        lines.append(f"Eval of the final checkpoint ({'/'.join(map(str, e['games']))} games, {', '.join(e['policy'])};"
                     f" {e['evaluated']} of the {s['done']} done evaluated): median {e['median']:.4g}, "
                     f"min {e['min']:.4g}, max {e['max']:.4g}.")
    if "default" in s:
        d = s["default"]
        near = "; ".join(f"{n['trial']} ({s['x']} {format_value(n[s['x']])}) final mean{s['window']} "
                         f"{n['final_mean10']:.4g}" + (f", last {s['last']} {n['final_mean100']:.4g}"
                                                         if "final_mean100" in n else "") for n in d["nearest"])
        lines.append(f"The default {s['x']} (a run with the sweep's fixed options): {format_value(d['value'])}; "
                     f"the finished trials next to it: {near or 'none'}.")
    for t in s["targets"]:
        lines.append("")
        if not t["finished"]:
            lines.append(f"Target {t['target']:g}: no trial has finished.")
            continue
        lines.append(f"Target {t['target']:g}: the final {s['window']}-game mean reached it in {t['reached_final']} of "
                     f"{t['finished']} finished trials ({100 * t['fraction_final']:.0f}%); the best "
                     f"{s['window']}-game mean in {t['reached_best']} ({100 * t['fraction_best']:.0f}%)"
                     + (f"; the mean of the last {s['last']} games in {t['reached_last100']} "
                        f"({100 * t['fraction_last100']:.0f}%)" if "reached_last100" in t else "")
                     + (f"; the eval of the final checkpoint in {t['reached_eval']} of {t['evaluated']} evaluated "
                        f"({100 * t['fraction_eval']:.0f}%)" if "reached_eval" in t else "") + ".")
        for key, what in (("widest_all_reached", f"final {s['window']}-game mean"),
                          ("widest_all_reached_last100", f"mean of the last {s['last']} games"),
                          ("widest_all_reached_eval", "eval of the final checkpoint")):
            if key not in t:
                continue
            w = t[key]
            if not w:
                lines.append(f"By the {what}, there is no {s['x']} interval in which every trial reached it.")
                continue
            width = f"{w['width']:.2f} decades" if s["x_log"] else f"width {w['width']:.4g}"
            out = ", ".join("none" if b is None else format_value(b) for b in w["between"])
            n = f"{w['trials']} trial{'s' if w['trials'] != 1 else ''}"
            inside = ""
            if "default" in s:
                v, (b_lo, b_hi) = s["default"]["value"], w["between"]
                if w["lo"] <= v <= w["hi"]:
                    inside = " The default lies inside it."
                elif (b_lo is None or v > b_lo) and (b_hi is None or v < b_hi):
                    inside = (" The default lies between it and the nearest trial that did not; no trial was "
                              "drawn there.")
                else:
                    inside = " The default lies outside it."
            lines.append(f"By the {what}, the widest {s['x']} interval in which every trial reached it: "
                         f"[{w['lo']:.4g}, {w['hi']:.4g}] ({n}, {width}); the nearest trials outside it, "
                         f"which did not: {out}.{inside}")
    return "\n".join(lines) + "\n"


def csv_columns(space_names, targets) -> list:
    return (["trial", *space_names, "status", "frames", "games", "final_mean10", "best_mean10", "final_mean100",
             "eval_mean", "eval_games", "eval_policy", *[target_column(t) for t in targets], "wall_s", "run_dir"])


def csv_text(rows: list, columns: list) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for r in rows:
        w.writerow(["" if r.get(c) is None or (isinstance(r.get(c), float) and math.isnan(r[c]))
                    else (f"{r[c]:.6g}" if isinstance(r[c], float) else _spell(r[c])) for c in columns])
    return buf.getvalue()


def table_text(rows: list, columns: list) -> str:
    """The rows as an aligned plain-text table (the terminal's copy of sweep.csv)."""
    cells = [columns] + [["-" if r.get(c) is None or (isinstance(r.get(c), float) and math.isnan(r[c]))
                          else format_value(r[c]) for c in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    return "\n".join("  ".join(v.rjust(w) if i else v.ljust(w) for i, (v, w) in enumerate(zip(row, widths)))
                     for row in cells)


def search_difference(old: dict, new: dict) -> str | None:
    """What differs between two sweeps' search (``space``, ``sweep_seed``, ``options`` but the
    execution ones), as ``what: X there, Y here``; None when they are the same sweep."""
    if old["space"] != new["space"]:
        names = sorted(set(old["space"]) | set(new["space"]))
        n = next(k for k in names if old["space"].get(k) != new["space"].get(k))
        return f"{flag(n)}: {old['space'].get(n, 'not swept')} there, {new['space'].get(n, 'not swept')} here"
    if old["sweep_seed"] != new["sweep_seed"]:
        return f"--sweep-seed: {old['sweep_seed']} there, {new['sweep_seed']} here"
    # as sweep.json holds them (a tuple is a list there)
    a = json.loads(json.dumps({k: v for k, v in old["options"].items() if k not in EXECUTION}))
    b = json.loads(json.dumps({k: v for k, v in new["options"].items() if k not in EXECUTION}))
    for k in sorted(set(a) | set(b)):
        if a.get(k) != b.get(k):
            return (f"{flag(k)}: {format_value(a[k]) if k in a else 'not given'} there, "
                    f"{format_value(b[k]) if k in b else 'not given'} here")
    return None


def eta_s(done_walls, running, left: int, slots: int) -> float | None:
    """Seconds until every trial is done, or None before anything is known.

    ``done_walls``: wall seconds of finished trials; ``running``: (seconds since it started,
    the fraction of its budget done since then, the fraction left) per running trial;
    ``left``: trials not started; ``slots``: trials run side by side. A trial is estimated
    at the median finished trial's time (or the running trials' pace), and the trials left
    are given to whichever slot frees first."""
    paces = [el / f for el, f, _left in running if f > 0.02 and el > 0]  # seconds per whole budget
    known = sorted(done_walls) or sorted(paces)
    if not known:
        return None
    per_trial = known[len(known) // 2]
    busy = []
    for el, f, f_left in running:
        pace = el / f if f > 0.02 and el > 0 else per_trial
        busy.append(max(0.0, pace * f_left))
    slots = max(1, slots)
    free = sorted(busy + [0.0] * max(0, slots - len(busy)))[: max(slots, len(busy))]
    for _ in range(left):
        free.sort()
        free[0] += per_trial
    return max(free) if free else 0.0


def format_s(s: float | None) -> str:
    if s is None or not math.isfinite(s):
        return "?"
    s = int(round(s))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def progress_line(done: int, running: int, left: int, failed: int, best: dict | None, x: str | None,
                  elapsed: float, eta: float | None, evals: int = 0) -> str:
    """``sweep: 3 done / 2 running / 11 left | best final mean10 19.2 (trial-004, lr 0.0003) | ...``
    (``evals``: finished trials whose eval is still to come, not in the ETA)."""
    parts = [f"sweep: {done} done / {running} running / {left} left" + (f" / {failed} failed" if failed else "")
             + (f" / {evals} to evaluate" if evals else "")]
    if best:
        what = f"{best['trial']}" + (f", {x} {format_value(best.get(x))}" if x else "")
        parts.append(f"best final mean10 {best['final_mean10']:.4g} ({what})")
    else:
        parts.append("best final mean10 -")
    parts.append(f"elapsed {format_s(elapsed)}")
    parts.append(f"ETA {format_s(eta)}")
    return " | ".join(parts)


# == running a sweep: the sweep directory and the trials (I/O from here on) ==================


def trial_name(k: int) -> str:
    return f"trial-{k:03d}"


def select_trials(state: dict, only) -> list | None:
    """The trials named by ``only`` (``--only``: "trial-011,trial-014", "11,14" or a list of
    names or numbers), in the sweep's order; None for all. ConfigError for a name the sweep
    does not hold, or an empty selection."""
    if only is None:
        return None
    items = [p.strip() for p in only.split(",")] if isinstance(only, str) else [str(p).strip() for p in only]
    names = {t["name"] for t in state["trials"]}
    picked = set()
    for item in items:
        name = trial_name(int(item)) if item.isdigit() else item
        if name not in names:
            n = len(state["trials"])
            raise ConfigError(f"--only {item!r}: the sweep has no such trial (it holds {trial_name(0)} to "
                              f"{trial_name(n - 1)}; name them as trial-NNN or NNN, separated by commas)")
        picked.add(name)
    if not picked:
        raise ConfigError("--only needs at least one trial, e.g. --only trial-003,trial-007")
    return [t["name"] for t in state["trials"] if t["name"] in picked]


def load_state(sweep_dir: str) -> dict | None:
    """The sweep's sweep.json, or None where there is none; ConfigError when unreadable."""
    path = os.path.join(sweep_dir, STATE_NAME)
    if not os.path.exists(path):
        return None
    try:
        with open(path) as fh:
            state = json.load(fh)
        state["space"], state["trials"], state["options"]  # noqa: B018 - what a sweep needs
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path} is not a fastasync sweep's state ({type(exc).__name__}: {exc})") from None
    return state


def save_state(sweep_dir: str, state: dict) -> None:
    from .checkpoint import atomic_write_text

    atomic_write_text(os.path.join(sweep_dir, STATE_NAME), json.dumps(state, indent=1) + "\n")


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (tuple, list)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return json.dumps(str(v))  # a TOML basic string


def toml_text(options: dict) -> str:
    """A flat TOML table of options (what ``fastasync train --config`` reads)."""
    return "".join(f"{k} = {_toml_value(v)}\n" for k, v in options.items())


def cli_args(options: dict) -> list:
    """``fastasync train`` arguments for options that have a flag (threads, the execution ones)."""
    out = []
    for k, v in options.items():
        if isinstance(v, bool):
            out.append(flag(k) if v else "--no-" + k.replace("_", "-"))
        else:
            out += [flag(k), _spell(v)]
    return out


def checkpoint_counts(run_dir: str) -> tuple | None:
    """(frames, wall_s) of the run's checkpoint.npz, or None where it has none (or it is unreadable)."""
    import numpy as np

    path = os.path.join(run_dir, "checkpoint.npz")
    if not os.path.exists(path):
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            return int(z["frames"]), float(z["wall_s"]) if "wall_s" in z.files else 0.0
    except (OSError, ValueError, KeyError, EOFError):
        return None


def wait_unlocked(run_dir: str, timeout_s: float = 300.0, log: str | None = None) -> None:
    """Wait until no process holds the run directory's lock (a trial's process that outlived
    its launcher, e.g. a lost Ray worker's, still writing its checkpoint), up to ``timeout_s``.
    ``log``: a file (the trial's train.log) told whom it waits for, and how that ended."""
    path = os.path.join(run_dir, ".lock")
    try:
        import fcntl
    except ImportError:
        return
    t0 = time.monotonic()
    said = False

    def say(msg):
        if log:
            try:
                with open(log, "a") as fh:
                    fh.write(f"# {time.strftime('%Y-%m-%d %H:%M:%S')} {msg}\n")
            except OSError:
                pass

    while os.path.exists(path):
        try:
            with open(path, "a+") as fh:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
            if said:
                say(f"it let go after {time.monotonic() - t0:.0f} s")
            return
        except BlockingIOError:
            if not said:
                try:
                    with open(path) as fh:
                        holder = f"process {int(fh.read().split()[0])}"
                except (OSError, ValueError, IndexError):
                    holder = "another process"
                say(f"waiting (up to {timeout_s:.0f} s) for {holder}, an earlier start of this trial, to write its "
                    "checkpoint and let go of the run directory")
                said = True
            if time.monotonic() - t0 > timeout_s:
                say(f"still held after {timeout_s:.0f} s; starting anyway (train says who holds it)")
                return  # train itself will say who holds it
            time.sleep(1.0)
        except OSError:
            return


def plan_trial(job: dict) -> tuple:
    """What a trial's next start is: ("done", None) when its checkpoint holds the whole budget,
    ("resume", args) when it holds a checkpoint, else ("fresh", args). A trial that stopped
    before its first checkpoint starts afresh; its games so far are kept aside in
    ``episodes-discarded.csv`` (a fresh run refuses a directory that holds a run's games)."""
    run_dir = job["run_dir"]
    wait_unlocked(run_dir, log=job.get("log"))
    counts = checkpoint_counts(run_dir)
    common = ["--threads", str(job["threads"]), *job["exec_args"]]
    if counts is not None and counts[0] >= job["frames"]:
        return "done", None
    if counts is not None:
        return "resume", ["train", "--resume", run_dir, *common]
    for f in ("episodes.csv", "episodes-after-checkpoint.csv"):
        p = os.path.join(run_dir, f)
        if os.path.exists(p):
            with open(p) as src, open(os.path.join(run_dir, "episodes-discarded.csv"), "a") as dst:
                dst.write(src.read())
            os.unlink(p)
    p = os.path.join(run_dir, "checkpoint.npz")
    if os.path.exists(p):  # there, but not readable
        os.replace(p, os.path.join(run_dir, "checkpoint-unreadable.npz"))
    return "fresh", ["train", "--config", job["config"], "--run-dir", run_dir, *common]


def eval_step(job: dict) -> list | None:
    """The ``fastasync eval`` arguments that evaluate a finished trial's final checkpoint
    (``job["eval_episodes"]`` games, its method's own eval policy, saved to eval.json), or
    None where no eval is asked for, the trial has not finished its budget, or an eval of
    this checkpoint with at least that many games is already saved."""
    from .evaluate import read_eval

    n = job.get("eval_episodes")
    if not n:
        return None
    counts = checkpoint_counts(job["run_dir"])
    if counts is None or counts[0] < job["frames"]:
        return None
    ev = read_eval(job["run_dir"], counts[0])
    if ev is not None and ev["games"] >= n:
        return None
    return ["eval", job["run_dir"], "--episodes", str(n), "--save"]


# Runs `fastasync train` in this process after what a parent cannot do safely from a
# threaded process (no preexec_fn): take SIGINT and SIGTERM again (a Ray worker's thread
# starts it with them blocked, and a mask is inherited), ask Linux for SIGINT when the parent
# dies (the trial then writes its checkpoint and stops instead of running on orphaned), and
# keep to the CPUs of its slot (its learners are then pinned within them).
_LAUNCHER = """\
import ctypes, os, signal, sys
signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
signal.signal(signal.SIGINT, signal.default_int_handler)
try:
    ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGINT))  # PR_SET_PDEATHSIG
except Exception:
    pass
if os.getppid() != int(sys.argv[1]):
    sys.exit(130)
if sys.argv[2]:
    os.sched_setaffinity(0, {int(c) for c in sys.argv[2].split(",")})
sys.argv = ["fastasync"] + sys.argv[3:]
from fastasync.cli import main
main()
"""


def launch_trial(job: dict, args: list, cpus=None) -> subprocess.Popen:
    """Start ``fastasync ARGS`` (train, or eval) for a trial, its output appended to its train.log, in a
    session of its own (a terminal's Ctrl-C reaches the sweep, which forwards one SIGINT)."""
    log = open(job["log"], "a")
    try:
        log.write(f"# {time.strftime('%Y-%m-%d %H:%M:%S')} fastasync {' '.join(args)}"
                  + (f"  (on CPUs {','.join(map(str, cpus))})" if cpus else "") + "\n")
        log.flush()
        cwd = job.get("cwd")
        return subprocess.Popen(
            [sys.executable, "-c", _LAUNCHER, str(os.getpid()), ",".join(map(str, cpus or ())), *args],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            cwd=cwd if cwd and os.path.isdir(cwd) else None, env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
    finally:
        log.close()


def _tail_lines(path: str, nbytes: int) -> list | None:
    """The lines of a file's last ``nbytes`` bytes (the first may be cut); None if unreadable."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - nbytes))
            return fh.read().decode(errors="replace").splitlines()
    except OSError:
        return None


def last_log_line(path: str) -> str:
    """The last line of a trial's train.log that says something (its error, usually)."""
    lines = [x.strip() for x in _tail_lines(path, 8192) or [] if x.strip() and not x.startswith("#")]
    return lines[-1] if lines else ""


def last_frames(run_dir: str) -> int:
    """The frames of the last game in a run's episodes.csv (0: none yet)."""
    lines = _tail_lines(os.path.join(run_dir, "episodes.csv"), 512)
    if lines is None:
        return 0
    for line in reversed(lines):
        head = line.split(",", 1)[0]
        if head.isdigit():
            return int(head)
    return 0


class LocalTrials:
    """Trials as subprocesses on this machine, ``parallel`` side by side. With more than one,
    each gets its own CPUs (its slot's ``threads`` CPUs: its learners are pinned within
    them) where the CPUs suffice, else none pinned (``--no-pin-threads``), so that two
    trials never share a CPU by pinning."""

    def __init__(self, parallel: int, threads: int, pin: bool | None):
        from .placement import allowed_cpus

        self.parallel = parallel
        cpus = allowed_cpus()
        self.split = parallel > 1 and pin is not False and parallel * threads <= len(cpus)
        self.cpus = [cpus[i * threads:(i + 1) * threads] for i in range(parallel)] if self.split else None
        self.unpin = parallel > 1 and not self.split and pin is not False
        self.free = list(range(parallel))
        self.slots = parallel

    def describe(self) -> str:
        if self.parallel == 1:
            return "one trial at a time"
        if self.split:
            return f"{self.parallel} trials side by side, each on its own CPUs: " + \
                   ", ".join(",".join(map(str, c)) for c in self.cpus)
        return f"{self.parallel} trials side by side" + (", learner threads not pinned (too few CPUs to give each "
                                                         "trial its own)" if self.unpin else "")

    def room(self, running: int) -> bool:
        return bool(self.free)

    def start(self, job: dict):
        slot = self.free.pop(0)
        what, args = plan_trial(job)
        h = {"slot": slot, "what": what, "t0": time.monotonic(), "proc": None, "job": job, "res": None,
             "stopping": False}
        if what != "done":
            if self.unpin:
                args = args + ["--no-pin-threads"]
            h["proc"] = launch_trial(job, args, self.cpus[slot] if self.split else None)
        return h

    def started(self, h) -> bool:
        return True

    def poll(self, h) -> dict | None:
        p = h["proc"]
        code = 0 if p is None else p.poll()
        if code is None:
            return None
        if h["res"] is None:  # its training ended: then its eval, where one is asked for
            h["res"] = {"code": code, "wall_s": time.monotonic() - h["t0"], "what": h["what"]}
            ev = eval_step(h["job"]) if code == 0 and not h["stopping"] else None
            if ev is not None:
                h["t_eval"] = time.monotonic()
                h["proc"] = launch_trial(h["job"], ev, self.cpus[h["slot"]] if self.split else None)
                return None
        else:
            h["res"].update(eval_code=code, eval_s=time.monotonic() - h["t_eval"])
        self.free.append(h["slot"])
        self.free.sort()
        return h["res"]

    def stop(self, handles) -> None:
        for h in handles:
            h["stopping"] = True
            p = h["proc"]
            if p is not None and p.poll() is None:
                try:
                    p.send_signal(signal.SIGINT)  # train writes its checkpoint and exits 130
                except ProcessLookupError:
                    pass

    def events(self, wait_s: float = 0.0) -> list:
        return []

    def close(self) -> None:
        pass


# -- the sweep's rows and files ----------------------------------------------------------------


def collect_rows(sweep_dir: str, state: dict) -> list:
    """One row per trial from its run directory: the swept values, status, frames, games,
    final/best 10-game means, frames to each target, wall seconds (the trial's processes from
    start to end, every attempt; else the run's own clock), run_dir, and for a finished trial
    whose final checkpoint was evaluated (``fastasync eval --save``: eval.json of that
    checkpoint) the eval's mean score, games and policy (else NaN/None)."""
    from .evaluate import read_eval
    from .stats import read_episodes

    targets = state.get("targets") or []
    rows = []
    for t in state["trials"]:
        run_dir = os.path.join(sweep_dir, t["name"])
        eps_path = os.path.join(run_dir, "episodes.csv")
        try:
            eps = read_episodes(eps_path) if os.path.exists(eps_path) else {"frames": [], "score": []}
        except (OSError, ValueError):
            eps = {"frames": [], "score": []}
        counts = checkpoint_counts(run_dir)
        row = {"trial": t["name"], **t["values"], "status": t["status"],
               **trial_stats(eps["frames"], eps["score"], targets),
               "frames": counts[0] if counts else (max(eps["frames"]) if eps["frames"] else 0),
               "wall_s": t.get("wall_s") or (round(counts[1], 1) if counts else None),
               "run_dir": os.path.relpath(run_dir, sweep_dir)}
        # of this checkpoint; a folder kept without its checkpoints (docs/learning/sweeps) keeps its eval.json
        ev = read_eval(run_dir, counts[0] if counts else None) if t["status"] == "done" else None
        row.update(eval_mean=ev["mean"] if ev else math.nan, eval_games=ev["games"] if ev else None,
                   eval_policy=ev["policy"] if ev else None)
        rows.append(row)
    return rows


def sweep_title(state: dict) -> str:
    lab = state.get("labels") or {}
    what = f"{lab.get('algo', '?')} on {lab.get('env', '?')}, {len(state['trials'])} trials"
    frames = lab.get("frames")
    return what + (f" of {_frames_text(frames)} frames" if isinstance(frames, int) else "")


def _frames_text(n: int) -> str:
    for unit, size in (("M", 1_000_000), ("k", 1_000)):
        if n >= size and n % (size // 10) == 0:
            return f"{n / size:g}{unit}"
    return f"{n:,}"


def write_outputs(sweep_dir: str, state: dict, png: str | None = "") -> tuple:
    """Write sweep.csv, summary.json, SUMMARY.md and (``png``: its path, "" for
    SWEEP_DIR/sweep.png, None for none) sweep.png from the trials' run directories.
    Returns (rows, summary, the png written or None)."""
    from .checkpoint import atomic_write_text

    rows = collect_rows(sweep_dir, state)
    targets = state.get("targets") or []
    x, log = state.get("x"), bool(state.get("x_log"))
    summary = summarise(rows, x, log, targets, default=x_default(state))
    cols = csv_columns(list(state["space"]), targets)
    atomic_write_text(os.path.join(sweep_dir, "sweep.csv"), csv_text(rows, cols))
    title = sweep_title(state)
    atomic_write_text(os.path.join(sweep_dir, "summary.json"),
                      json.dumps({"title": title, "space": state["space"], "sweep_seed": state["sweep_seed"],
                                  **summary}, indent=1, default=_json_default) + "\n")
    atomic_write_text(os.path.join(sweep_dir, "SUMMARY.md"), summary_markdown(summary, title))
    out = None
    if png is not None:
        from .plot import plot_sweep

        out = png or os.path.join(sweep_dir, "sweep.png")
        if x is not None:
            t = summary["targets"][0] if summary["targets"] else None
            note = ""
            if t and t["finished"]:
                note = (f"final mean{WINDOW} >= {t['target']:g} in {t['reached_final']} of {t['finished']} "
                        f"finished trials ({100 * t['fraction_final']:.0f}%)")
                if "reached_eval" in t:
                    note += f"; eval in {t['reached_eval']} of {t['evaluated']} evaluated"
            d = parse_space(state["space"]).get(x)
            xlim = (d.lo, d.hi) if d is not None and d.kind in ("uniform", "loguniform") else None
            plot_sweep(rows, x, log, out, title=title, note=note, target=t["target"] if t else None, xlim=xlim,
                       default=summary.get("default", {}).get("value"))
        else:
            out = None
    return rows, summary, out


def _json_default(o):
    if isinstance(o, float) and math.isnan(o):
        return None
    raise TypeError(type(o).__name__)


# -- the run loop --------------------------------------------------------------------------------


@dataclass
class SweepResult:
    """A finished (or stopped) sweep: ``sweep_dir``; ``rows`` (one dict per trial, as
    sweep.csv); ``summary`` (as summary.json); ``interrupted`` and ``stop_signal`` (a
    Ctrl-C or SIGTERM stopped it: rerun to continue); ``failed``: the trials that failed (or
    whose eval failed)."""

    sweep_dir: str
    rows: list
    summary: dict
    interrupted: bool = False
    stop_signal: int | None = None
    failed: tuple = ()


def make_job(sweep_dir: str, state: dict, trial: dict, exec_options: dict) -> dict:
    run_dir = os.path.abspath(os.path.join(sweep_dir, trial["name"]))
    return {"name": trial["name"], "run_dir": run_dir, "frames": trial["frames"],
            "config": os.path.join(run_dir, "trial.toml"), "log": os.path.join(run_dir, "train.log"),
            "threads": state["options"]["threads"], "exec_args": cli_args(exec_options), "cwd": os.getcwd(),
            "stop_file": os.path.abspath(os.path.join(sweep_dir, STOP_NAME)),
            "eval_episodes": state.get("eval_episodes")}


def _prepare_trial_dir(sweep_dir: str, state: dict, trial: dict) -> None:
    """The trial's run directory with its trial.toml: every option of the trial but threads
    (given on the command line, with the execution options)."""
    from .checkpoint import atomic_write_text

    run_dir = os.path.join(sweep_dir, trial["name"])
    os.makedirs(run_dir, exist_ok=True)
    opts = {k: v for k, v in state["options"].items() if k != "threads" and k not in EXECUTION}
    opts.update(trial["values"])
    atomic_write_text(os.path.join(run_dir, "trial.toml"),
                      f"# {trial['name']} of the sweep in {os.path.abspath(sweep_dir)}\n" + toml_text(opts))



def default_sweep_dir(options: dict) -> str:
    """``runs/sweep-<env>-<algo>-<time>`` (the env and method of the trials, when they share one)."""
    import re

    env = options.get("env", C.EnvConfig.env)
    algo = options.get("algo", C.default_algo(env))
    env = re.sub(r"[^\w.-]+", "_", str(env))
    return os.path.join("runs", f"sweep-{env}-{algo}-{time.strftime('%Y%m%d-%H%M%S')}")


def prepare(options: dict, space_texts: dict, *, trials: int | None = None, sweep_seed: int | None = None,
            targets=None, threads: int | None = None, parallel: int = 1, run_dir: str | None = None,
            resume: str | None = None, ray: bool = False, eval_episodes: int | None = None) -> tuple:
    """Check everything a sweep needs before anything is written or run; returns (sweep_dir,
    state, exec_options). ``options``: the fixed options of every trial ({name: value} as
    given); ``space_texts``: {name: "KIND:ARGS"}. A directory that holds a sweep continues
    it (the same search) or is refused in one line (another); ``resume``: continue the sweep
    in that directory with its stored search. ConfigError for any bad input."""
    for k, v in (("trials", trials), ("parallel", parallel)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise ConfigError(f"--{k} must be a whole number >= 1, got {v!r}")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ConfigError(f"--threads must be a whole number >= 1, got {threads!r}")
    if eval_episodes is not None and (isinstance(eval_episodes, bool) or not isinstance(eval_episodes, int)
                                      or eval_episodes < 0):
        raise ConfigError(f"--eval-episodes must be a whole number >= 0 (0: no eval), got {eval_episodes!r}")
    if sweep_seed is not None and (isinstance(sweep_seed, bool) or not isinstance(sweep_seed, int) or sweep_seed < 0):
        raise ConfigError(f"--sweep-seed must be a whole number >= 0, got {sweep_seed!r}")
    targets = None if targets is None else [float(t) for t in targets]
    if targets and not all(math.isfinite(t) for t in targets):
        raise ConfigError(f"--target must be a finite number, got {targets}")
    ex_given = {}
    for name in list(options):
        key = name.replace("-", "_")
        if key in EXECUTION:
            ex_given[key] = coerce(key, options.pop(name))
    if resume is not None:
        old = load_state(resume)
        if old is None:
            raise ConfigError(f"--resume {resume}: no sweep there (no {STATE_NAME})")
        if options or space_texts or sweep_seed is not None:
            what = next(iter([*space_texts, *options]), "sweep_seed")
            raise ConfigError(f"--resume continues the sweep in {resume} as it was started; {flag(what)} cannot be "
                              "given with it (start another sweep for another search)")
        if run_dir is not None and os.path.abspath(run_dir) != os.path.abspath(resume):
            raise ConfigError("--resume names the sweep directory; leave --run-dir out")
        sweep_dir, space_texts, sweep_seed = resume, dict(old["space"]), old["sweep_seed"]
        fixed = {k: v for k, v in old["options"].items() if k not in EXECUTION}
        if threads is not None:
            fixed["threads"] = threads
    else:
        space_texts = {k.replace("-", "_"): v for k, v in space_texts.items()}
        fixed = {}
        ff = C.flat_fields()
        for name, value in options.items():
            key = name.replace("-", "_")
            if key not in ff:
                raise ConfigError(f"{flag(key)} is not an option of fastasync train")
            if key in RAY_TRAINING:
                raise ConfigError(NOT_SWEPT[key])
            if key in space_texts:
                raise ConfigError(f"{flag(key)} is given both as a fixed value and as a distribution")
            try:
                fixed[key] = coerce(key, value)
            except ConfigError as exc:
                raise ConfigError(f"{flag(key)} {value}: {exc}") from None
        sweep_dir = run_dir or default_sweep_dir(fixed)
        old = load_state(sweep_dir) if os.path.isdir(sweep_dir) else None
        if threads is not None:
            fixed["threads"] = threads
        elif old is not None and "threads" in old["options"]:
            fixed["threads"] = old["options"]["threads"]
    space = parse_space(space_texts)
    if not space:
        raise ConfigError("nothing to sweep: give at least one option a distribution, e.g. --lr loguniform:1e-4:1e-2 "
                          f"({DIST_HELP})")
    if "threads" not in fixed:
        from .placement import default_threads

        fixed["threads"] = 1 if ray else max(1, default_threads() // max(1, parallel or 1))
    canonical = {name: d.text for name, d in space.items()}
    seed = 0 if sweep_seed is None else sweep_seed
    if old is not None:
        diff = search_difference(old, {"space": canonical, "sweep_seed": seed, "options": fixed})
        if diff:
            raise ConfigError(f"{sweep_dir} holds a sweep of another search space ({diff}); give another --run-dir, "
                              f"or continue that sweep with --resume {sweep_dir}")
    elif os.path.exists(sweep_dir) and (not os.path.isdir(sweep_dir) or os.listdir(sweep_dir)):
        raise ConfigError(f"{sweep_dir} exists and holds no sweep ({STATE_NAME}); choose another --run-dir")
    have = len(old["trials"]) if old else 0
    if trials is None:
        if have:
            trials = have
        elif all(d.kind == "list" for d in space.values()):
            trials = max(len(d.values) for d in space.values())
        else:
            raise ConfigError("give the number of trials: --trials N")
    if trials < have:
        raise ConfigError(f"{sweep_dir} already has {have} trials; --trials can grow a sweep, not shrink it "
                          f"(leave it out to run the {have})")
    new = []
    envs = {}
    run_opts = {k: v for k, v in fixed.items() if k != "threads"}
    for k, values in enumerate(sample_trials(space, trials, seed, start=have), start=have):
        try:
            cfg = C.build({**run_opts, "threads": fixed["threads"], **values})
        except ConfigError as exc:
            raise ConfigError(f"{trial_name(k)} ({', '.join(f'{n} {format_value(v)}' for n, v in values.items())}): "
                              f"{exc}") from None
        envs.setdefault((cfg.env.env, cfg.env.backend), cfg)
        new.append({"name": trial_name(k), "values": values, "frames": cfg.run.frames, "status": "pending",
                    "exit_code": None, "attempts": 0, "wall_s": 0.0})
    for cfg in envs.values():  # an env id that does not exist fails here, not in every trial
        from .envs import EnvError, env_info, view_options

        try:
            env_info(cfg.env.env, C.resolve(cfg).env.backend, **view_options(cfg.env))
        except EnvError as exc:
            raise ConfigError(str(exc)) from None
    exec_options = dict(old["options"]) if old else {}
    exec_options = {k: v for k, v in exec_options.items() if k in EXECUTION}
    exec_options.update(ex_given)
    x, log = axis_option(space)
    state = {
        "version": STATE_VERSION,
        "space": canonical,
        "sweep_seed": seed,
        "options": {**fixed, **exec_options},
        "targets": targets if targets is not None else (old.get("targets", []) if old else []),
        "eval_episodes": eval_episodes if eval_episodes is not None else (old.get("eval_episodes", 0) if old else 0),
        "x": x,
        "x_log": log,
        "created": old.get("created") if old else time.strftime("%Y-%m-%d %H:%M:%S"),
        "trials": (old["trials"] if old else []) + new,
    }
    # the title names the env, method and budget, also where they are left to their defaults
    cfg0 = C.build({**run_opts, **state["trials"][0]["values"]})
    state["labels"] = {"env": "several envs" if "env" in space else cfg0.env.env,
                       "algo": "several methods" if "algo" in space else cfg0.algo.algo,
                       "frames": None if "frames" in space else cfg0.run.frames}
    return sweep_dir, state, exec_options


def _values_text(values: dict) -> str:
    return ", ".join(f"{k} {format_value(v)}" for k, v in values.items())


def run_trials(sweep_dir: str, state: dict, executor, exec_options: dict, out, resume_hint: str,
               progress_every_s: float = 30.0, only: list | None = None) -> SweepResult:
    """Run every trial of ``state`` that is not done (``only``: of these trial names only; the
    others stay as they are), through ``executor`` (:class:`LocalTrials` or the Ray one),
    keeping sweep.json, sweep.csv and the summary current; then sweep.png and the table.
    Ctrl-C or SIGTERM: the running trials get one SIGINT each (each writes its checkpoint and
    exits 130), their state is written, and ``out`` says how to go on."""
    stop = {"signal": None, "count": 0}

    def handler(signum, frame):
        stop["count"] += 1
        if stop["signal"] is None:
            stop["signal"] = int(signum)

    old = {}
    if threading.current_thread() is threading.main_thread():
        old = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return _run(sweep_dir, state, executor, exec_options, out, resume_hint, progress_every_s, stop, only)
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)
        executor.close()


def _run(sweep_dir, state, executor, exec_options, out, resume_hint, progress_every_s, stop, only=None):
    trials = state["trials"]
    for t in trials:
        if t["status"] == "running":  # a sweep that ended without writing its trials' end
            t["status"] = "stopped"
    def unevaluated(t):
        return t["status"] == "done" and eval_step(make_job(sweep_dir, state, t, exec_options)) is not None

    every_hint = resume_hint  # all of the sweep's trials; resume_hint from here on: those of --only
    if only is not None:
        resume_hint += f" --only {','.join(only)}"
    chosen = [t for t in trials if only is None or t["name"] in only]
    pending = [t for t in chosen if t["status"] != "done" or unevaluated(t)]
    # the trials --only leaves for another run
    others = [t for t in trials if t not in chosen and (t["status"] != "done" or unevaluated(t))]
    if os.path.exists(os.path.join(sweep_dir, STOP_NAME)):  # the last run's stop
        os.unlink(os.path.join(sweep_dir, STOP_NAME))
    x = state.get("x")
    done_rows = {r["trial"]: r for r in collect_rows(sweep_dir, {**state, "trials": [t for t in trials
                                                                                       if t["status"] == "done"]})}
    done_walls = [r["wall_s"] for r in done_rows.values() if r["wall_s"]]
    handles = {}  # name -> [trial, handle, start time (None: queued), frames at start, only its eval]
    t0 = time.monotonic()
    last = -math.inf
    forwarded = 0
    failed = []
    eval_failed = []  # trials whose training finished and whose eval did not
    if pending:
        evals = sum(t["status"] == "done" for t in pending)
        n_eval = state.get("eval_episodes")
        out(f"sweep: {sweep_dir}: {len(trials)} trials, {sum(t['status'] == 'done' for t in trials)} done, "
            f"{len(pending) - evals} to run" + (f", {evals} to evaluate" if evals else "")
            + (f" (each finished trial evaluated over {n_eval} games)" if n_eval else "")
            + (f" (--only: {', '.join(t['name'] for t in pending)}; {len(others)} other(s) left for later)"
               if only is not None else "") + f"; {executor.describe()}")
    elif only is not None:
        out(f"sweep: {sweep_dir}: nothing to run: {', '.join(only)} "
            + ("is" if len(only) == 1 else "are") + " done" + (" and evaluated" if state.get("eval_episodes") else ""))

    def best():
        rows = [r for r in done_rows.values() if not math.isnan(r["final_mean10"])]
        return max(rows, key=lambda r: r["final_mean10"]) if rows else None

    def progress():
        now = time.monotonic()
        running = []
        for t, _h, started, f0, eval_only in handles.values():
            if started is None or eval_only:
                continue
            f = last_frames(os.path.join(sweep_dir, t["name"]))
            running.append((now - started, max(0, f - f0) / t["frames"], max(0, t["frames"] - max(f, f0)) / t["frames"]))
        left = sum(t["status"] != "done" for t in pending) + sum(v[2] is None and not v[4] for v in handles.values())
        evals = sum(t["status"] == "done" for t in pending) + sum(v[4] for v in handles.values())
        eta = eta_s(done_walls, running, left, getattr(executor, "slots", None) or max(1, len(handles)))
        out(progress_line(sum(t["status"] == "done" for t in trials), len(running), left, len(failed), best(), x,
                          now - t0, eta if left or running else None, evals=evals))

    from .evaluate import read_eval

    quiet_s = max(QUIET_S, 30 * float(state["options"].get("progress_every_s") or 0))
    quiet = {}  # name -> the train.log mtime it was said at (said once until the log changes)

    def quiet_trials(now):
        """Say each running trial whose train.log has not changed for ``quiet_s``."""
        wall = time.time()
        for name, (t, _h, started, _f0, _ev) in handles.items():
            if started is None:
                continue
            try:
                mtime = os.path.getmtime(os.path.join(sweep_dir, name, "train.log"))
            except OSError:
                mtime = None  # none yet: quiet since its start
            age = now - started if mtime is None else min(wall - mtime, now - started)
            if age >= quiet_s and quiet.get(name, "never") != mtime:
                quiet[name] = mtime
                out(f"{name}: nothing written to its train.log for {format_s(age)} (a stuck process, or on Ray a "
                    "lost task that was not rerun?); Ctrl-C stops the sweep, each running trial with a checkpoint, "
                    f"and {resume_hint} goes on")

    def said_eval(t, res):
        """Say the trial's eval (or its failure), where its slot ran one."""
        if "eval_code" not in res:
            return
        ev = read_eval(os.path.join(sweep_dir, t["name"]))
        if res["eval_code"] == 0 and ev is not None:
            out(f"{t['name']}: eval of its final checkpoint: mean {ev['mean']:.4g} over {ev['games']} games "
                f"({ev.get('policy', '?')})")
        elif stop["signal"] is None:
            eval_failed.append(t["name"])
            log = os.path.join(sweep_dir, t["name"], "train.log")
            out(f"{t['name']}: its eval failed (exit {res['eval_code']}): {last_log_line(log)}  "
                f"[its output: {log}]; a rerun tries it again")

    def finish(name, res):
        t, _h, started, _f0, eval_only = handles.pop(name)
        code = res.get("code")
        t["wall_s"] = round(t.get("wall_s", 0.0) + res.get("wall_s", 0.0), 1)
        if res.get("host"):
            t["host"] = res["host"]
        if code is None:  # its task never started its trial (a stop came first)
            if not eval_only:
                t["status"] = "stopped" if checkpoint_counts(os.path.join(sweep_dir, t["name"])) else "pending"
            return
        if eval_only:  # trained before: only its eval to say
            said_eval(t, res)
            return
        t["exit_code"] = code
        row = collect_rows(sweep_dir, {**state, "trials": [t]})[0]
        if code == 0:
            t["status"] = "done"
            row["status"] = "done"
            done_rows[t["name"]] = row
            if res.get("wall_s"):
                done_walls.append(res["wall_s"])
            final = row["final_mean10"]
            out(f"{t['name']} done" + (" (its checkpoint already held the whole budget)" if res.get("what") == "done"
                                       else f" in {format_s(res.get('wall_s'))}")
                + f": {row['frames']:,} frames, {row['games']} games, final mean10 "
                + ("-" if math.isnan(final) else f"{final:.4g}") + f" ({_values_text(t['values'])})")
            said_eval(t, res)
        elif code in (130, 143) or stop["signal"] is not None:  # (one stopped while starting exits 1)
            t["status"] = "stopped"
            if stop["signal"] is None:
                out(f"{t['name']} stopped (exit {code}) with a checkpoint at {row['frames']:,} frames; "
                    "a rerun resumes it")
        else:
            t["status"] = "failed"
            failed.append(t["name"])
            log = os.path.join(sweep_dir, t["name"], "train.log")
            why = res.get("error") or last_log_line(log)
            out(f"{t['name']} failed (exit {code}): {why}  [its output: {log}]")

    def write():
        save_state(sweep_dir, state)
        try:  # the table and summary so far; a failure here must not end hours of trials
            write_outputs(sweep_dir, state, png=None)
        except Exception as exc:  # noqa: BLE001 - said, and tried again at the next trial's end
            out(f"could not write sweep.csv and the summary ({type(exc).__name__}: {exc}); the trials go on")

    while (pending or handles) and stop["signal"] is None:
        while pending and executor.room(len(handles)) and stop["signal"] is None:
            t = pending.pop(0)
            _prepare_trial_dir(sweep_dir, state, t)
            job = make_job(sweep_dir, state, t, exec_options)
            f0 = (checkpoint_counts(job["run_dir"]) or (0, 0.0))[0]
            h = executor.start(job)
            eval_only = t["status"] == "done"  # a finished trial is started again only for its eval
            handles[t["name"]] = [t, h, None, f0, eval_only]
            if not eval_only:
                t["attempts"] = t.get("attempts", 0) + 1
                t["status"] = "running"
            save_state(sweep_dir, state)
        for name, v in list(handles.items()):
            if v[2] is None and executor.started(v[1]):
                v[2] = time.monotonic()
                what = "evaluating its final checkpoint" if v[4] else "resumed" if v[3] else "started"
                out(f"{name}: {what} ({_values_text(v[0]['values'])})")
        ended = False
        for name, v in list(handles.items()):
            res = executor.poll(v[1])
            if res is not None:
                finish(name, res)
                ended = True
        for msg in executor.events():
            out(msg)
        if ended:
            write()
        now = time.monotonic()
        quiet_trials(now)
        if ended or now - last >= progress_every_s:
            if pending or handles:
                progress()
            last = now
        time.sleep(0.2)
    if stop["signal"] is not None:
        running = sum(v[2] is not None for v in handles.values())
        if handles:
            out(f"stopping: asking the {running} running trial(s) to write their checkpoints"
                + (f" (and the {len(handles) - running} queued not to start)" if len(handles) > running else "")
                + " ...")
        executor.stop([v[1] for v in handles.values()])
        forwarded = stop["count"]
        while handles:
            if stop["count"] > forwarded:  # another Ctrl-C: say it again
                executor.stop([v[1] for v in handles.values()])
                forwarded = stop["count"]
            for name, v in list(handles.items()):
                res = executor.poll(v[1])
                if res is not None:
                    finish(name, res)
            time.sleep(0.2)
        if os.path.exists(os.path.join(sweep_dir, STOP_NAME)):
            os.unlink(os.path.join(sweep_dir, STOP_NAME))
    for msg in executor.events(wait_s=5.0):  # the last word on the tasks (a rerun said late)
        out(msg)
    save_state(sweep_dir, state)
    rows, summary, _png = write_outputs(sweep_dir, state)
    out("")
    cols = csv_columns(list(state["space"]), state.get("targets") or [])[:-1]
    if not any(r.get("eval_games") for r in rows):  # no trial evaluated: the terminal's table leaves them out
        cols = [c for c in cols if not c.startswith("eval_")]
    out(table_text(rows, cols))
    out("")
    for line in summary_markdown(summary, sweep_title(state)).splitlines()[2:]:
        if line:
            out(line)
    out(f"wrote {os.path.join(sweep_dir, 'sweep.csv')}, summary.json, SUMMARY.md" + (", sweep.png" if _png else ""))
    if stop["signal"] is not None:
        left = sum(t["status"] != "done" for t in trials)
        out(f"sweep stopped: {sum(t['status'] == 'done' for t in trials)} trials done, {left} to go "
            f"(the stopped ones resume from their checkpoints). Continue with: {resume_hint}")
    else:
        if failed:
            out(f"{len(failed)} trial(s) failed ({', '.join(failed)}); rerun to retry them: {resume_hint}")
        if eval_failed:
            out(f"the eval of {len(eval_failed)} finished trial(s) failed ({', '.join(eval_failed)}); rerun to "
                f"evaluate them: {resume_hint}")
        if others:
            out(f"{len(others)} other trial(s) of the sweep not run (--only): {every_hint} runs them")
    return SweepResult(sweep_dir, rows, summary, stop["signal"] is not None, stop["signal"],
                       tuple(failed + eval_failed))


def redraw(sweep_dir: str, png: str | None = "") -> tuple:
    """``fastasync plot SWEEP_DIR``: sweep.csv, the summary and sweep.png (``png``) from the
    trials' run directories as they are now; (rows, summary, png path or None)."""
    state = load_state(sweep_dir)
    if state is None:
        raise ConfigError(f"{sweep_dir} holds no sweep ({STATE_NAME})")
    return write_outputs(sweep_dir, state, png)


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run_sweep(env=None, algo: str | None = None, frames=None, *, trials: int | None = None, sweep_seed: int | None = None,
          parallel: int | None = None, threads: int | None = None, run_dir: str | None = None, target=None,
          space: dict | None = None, config: str | None = None, resume: str | None = None, ray: str | None = None,
          eval_episodes: int | None = None, only=None, quiet: bool = False, out=None, **options):
    """:func:`fastasync.api.sweep` (its docstring says what each argument does)."""
    say = (lambda msg: None) if quiet else (out or _stderr)
    given = dict(options)
    if env is not None:
        from .envs.custom import env_name

        given["env"] = env_name(env)
    for k, v in (("algo", algo), ("frames", frames)):
        if v is not None:
            given[k] = v
    given = {k.replace("-", "_"): v for k, v in given.items() if v is not None}
    flat = C.load_toml(config) if config else {}
    table = flat.pop("sweep", {})
    if not isinstance(table, dict):
        raise ConfigError(f"config file {config}: [sweep] must be a table of distributions and settings")
    settings = {k: table.pop(k) for k in SETTINGS if k in table}
    trials = settings.get("trials") if trials is None else trials
    sweep_seed = settings.get("sweep_seed") if sweep_seed is None else sweep_seed
    parallel = settings.get("parallel") if parallel is None else parallel
    target = settings.get("target") if target is None else target
    eval_episodes = settings.get("eval_episodes") if eval_episodes is None else eval_episodes
    targets = None if target is None else [target] if isinstance(target, (int, float)) else list(target)
    if targets is not None and not all(isinstance(t, (int, float)) and not isinstance(t, bool) for t in targets):
        raise ConfigError(f"--target must be a number, got {target!r}")
    flat.update(given)
    space_texts, fixed = split_options(flat)
    space_texts = {**{k.replace("-", "_"): v for k, v in table.items()}, **space_texts, **(space or {})}
    if ray is not None and parallel not in (None, 1):
        raise ConfigError("--parallel is for sweeps on this machine; on Ray the cluster's CPUs decide how many "
                          "trials run side by side")
    sweep_dir, state, exec_options = prepare(
        fixed, space_texts, trials=trials, sweep_seed=sweep_seed, targets=targets, threads=threads,
        parallel=parallel or 1, run_dir=run_dir, resume=resume, ray=ray is not None, eval_episodes=eval_episodes)
    chosen = select_trials(state, only)
    if ray is None:
        executor = LocalTrials(parallel or 1, state["options"]["threads"], exec_options.get("pin_threads"))
    else:
        from .distributed.sweep import RayTrials

        # connects (a bad address fails here); plan_trial and launch_trial go to the tasks as
        # arguments: distributed/ does not import this module, which imports it
        executor = RayTrials(ray, state["options"]["threads"], plan_trial, launch_trial, eval_step)
    made = not os.path.exists(sweep_dir)
    try:
        os.makedirs(sweep_dir, exist_ok=True)
        lock = lock_sweep(sweep_dir)
        save_state(sweep_dir, state)
    except (OSError, ConfigError) as exc:
        executor.close()
        if made:
            try:
                os.rmdir(sweep_dir)
            except OSError:
                pass
        if isinstance(exc, ConfigError):
            raise
        raise StartError(f"cannot start the sweep in {sweep_dir}: {exc.strerror or exc}") from None
    hint = f"fastasync sweep --resume {sweep_dir}" + ("" if ray is None else f" --ray {ray}")
    try:
        return run_trials(sweep_dir, state, executor, exec_options, say, hint, only=chosen)
    finally:
        lock.close()


def lock_sweep(sweep_dir: str):
    """Hold ``SWEEP_DIR/.sweep-lock`` while the sweep runs (the OS drops it when the process
    ends): a second sweep of the same directory is refused (ConfigError) instead of starting
    the same trials twice. Returns the open file; close it to release."""
    fh = open(os.path.join(sweep_dir, ".sweep-lock"), "a+")
    try:
        import fcntl

        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except ImportError:
        return fh
    except BlockingIOError:
        fh.seek(0)
        owner = fh.read().strip()
        fh.close()
        raise ConfigError(f"{sweep_dir} is in use by another fastasync sweep"
                          + (f" (process {owner})" if owner else "") + "; wait for it to end") from None
    except OSError:  # a file system without locks
        return fh
    fh.seek(0)
    fh.truncate()
    fh.write(f"{os.getpid()}\n")
    fh.flush()
    return fh


class _CallableModule(types.ModuleType):
    """This module is also the API's ``fastasync.sweep(...)``: the package's name ``sweep`` is
    this module once it is imported (Python sets a package's attribute to its submodule), so
    calling the module does what :func:`fastasync.api.sweep` does."""

    def __call__(self, *args, **kwargs):
        return run_sweep(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
