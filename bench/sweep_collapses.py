"""Why the trials of a sweep that missed their target missed it: gradient norms, entropy and dead units.

    python bench/sweep_collapses.py SWEEP_DIR [--target T] [--all] [--steps 300]

For each finished trial of a `fastasync sweep` whose final 10-game mean is below the target
(the sweep's first ``--target`` unless given; ``--all``: every finished trial, for comparison):
the swept values, its final and best 10-game means and the mean of its last 100 games, what its progress lines in ``train.log``
said of the updates (the policy's entropy against ln A, a uniform policy's; the value or TD
loss; the mean gradient norm before clipping: median, largest and last), and a dead-unit
census of its final checkpoint (``bench/dead_units.py``: the share of each ReLU layer's units
that are ever positive on frames of random play), and each learner thread's last games with
its final epsilon (a Q method's threads explore with different ones). A short verdict names
what stands out. The table
goes to standard output and to ``SWEEP_DIR/COLLAPSES.md``, which the sweep's SUMMARY sits beside.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

_FRAMES = re.compile(r"^frames\s+(\S+)/")
_FIELDS = {
    "mean10": re.compile(r"score\(last 10\)\s+(\S+)"),
    "entropy": re.compile(r"entropy (\S+)"),
    "value_loss": re.compile(r"value loss (\S+)"),
    "td_loss": re.compile(r"TD loss (\S+)"),
    "grad_norm": re.compile(r"\|g\| (\S+)"),
}
DEAD_BELOW = 0.5  # a layer with fewer of its units ever on than this is called out
SPIKE = 10.0  # a largest gradient norm this many times the median is called a spike
FLAT = 0.1  # entropy below this share of ln A: a nearly deterministic policy
UNIFORM = 0.95  # entropy above this share of ln A: a policy that stayed near uniform
THREAD_LAST = 50  # games per learner thread in the by-thread means


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:  # "n/a" before the first game
        return math.nan


def parse_progress(text: str) -> dict:
    """The progress lines of a train.log -> arrays by name: ``frames`` and, where the lines
    hold them, ``mean10``, ``entropy``, ``value_loss``, ``td_loss``, ``grad_norm`` (NaN where
    a line lacks one). Lines of other kinds (commands, messages) are skipped."""
    from fastasync.config import parse_count
    from fastasync.errors import ConfigError

    rows = []
    for line in text.splitlines():
        m = _FRAMES.match(line.strip())
        if not m:
            continue
        try:
            row = {"frames": float(parse_count(m.group(1)))}  # the line's human count, "13.00M"
        except ConfigError:  # "0" before the first frame counts no progress
            continue
        for name, rx in _FIELDS.items():
            f = rx.search(line)
            row[name] = _number(f.group(1)) if f else math.nan
        rows.append(row)
    names = ["frames", *_FIELDS]
    return {n: np.array([r[n] for r in rows], float) for n in names}


def learning_facts(progress: dict, num_actions: int | None) -> dict:
    """What the updates looked like over the run: entropy (first, smallest, last, and ln A),
    the last loss, the gradient norm's median, largest and last, and whether any was not finite."""
    out = {}
    g = progress["grad_norm"]
    g_seen = g[~np.isnan(g)]
    if g_seen.size:
        finite = g_seen[np.isfinite(g_seen)]
        out["grad_nonfinite"] = int(g_seen.size - finite.size)
        if finite.size:
            out.update(grad_median=float(np.median(finite)), grad_max=float(finite.max()), grad_last=float(g_seen[-1]))
    e = progress["entropy"]
    e = e[np.isfinite(e)]
    if e.size:
        out.update(entropy_first=float(e[0]), entropy_min=float(e.min()), entropy_last=float(e[-1]))
        if num_actions and num_actions > 1:
            out["ln_a"] = math.log(num_actions)
    for name in ("value_loss", "td_loss"):
        v = progress[name]
        v = v[~np.isnan(v)]
        if v.size:
            out[name + "_last"] = float(v[-1])
    return out


def verdict(row: dict, target: float, facts: dict, dead: list | None, threads: list = ()) -> str:
    """A few words on what stands out in one trial: whether it reached the target and fell
    back or never reached it, then the entropy, gradient and dead-unit findings, and a thread
    whose own last games reached the target when the run's mean did not."""
    final, best = row.get("final_mean10", math.nan), row.get("best_mean10", math.nan)
    if not math.isfinite(final):
        return "no games"
    if final >= target:  # shown with --all
        words = [f"ended at {final:g}, at or above {target:g}"]
    elif best >= target:
        words = [f"reached {target:g}, then fell to {final:g}"]
    else:
        words = [f"never reached {target:g} (best {best:g})"]
    if facts.get("grad_nonfinite"):
        words.append(f"{facts['grad_nonfinite']} progress lines with a non-finite gradient norm")
    if "ln_a" in facts:
        share = facts["entropy_last"] / facts["ln_a"]
        if share < FLAT:
            words.append(f"entropy collapsed to {facts['entropy_last']:.3g} (ln A = {facts['ln_a']:.3g})")
        elif share > UNIFORM:
            words.append(f"the policy stayed near uniform (entropy {facts['entropy_last']:.3g} of ln A {facts['ln_a']:.3g})")
    if facts.get("grad_max") is not None and facts["grad_median"] > 0 and facts["grad_max"] > SPIKE * facts["grad_median"]:
        words.append(f"gradient-norm spikes (largest {facts['grad_max']:.3g}, median {facts['grad_median']:.3g})")
    for name, _units, alive, _pos, _std, relu in dead or []:
        if relu and alive < DEAD_BELOW:
            words.append(f"{name}: {1 - alive:.0%} of its units dead")
    if not final >= target:
        ev = row.get("eval_mean", math.nan)
        if ev >= target:
            words.append(f"the eval of its final checkpoint ({row.get('eval_policy') or 'its default policy'}) at {ev:+.1f}")
        for k, eps, _n, mean in threads:  # threads that explore alike (A3C's) differ by chance only: not named
            if mean >= target and eps is not None:
                words.append(f"thread {k} (final epsilon {eps:g}) alone at {mean:+.1f} over its last {THREAD_LAST} games")
    return "; ".join(words)


def thread_scores(episodes: dict, final_epsilon=None, last: int = THREAD_LAST) -> list:
    """Per learner thread of a run: (thread, its final epsilon or None, its games, the mean of
    its last ``last`` games). A Q method's threads each explore with a final epsilon of their
    own (0.1, 0.01 or 0.5, drawn per thread as the paper did), so the run's game scores mix
    a nearly greedy policy's with one that acts at random half the time; with 2 threads the
    10-game mean says as much about that draw as about what was learned."""
    out = []
    threads = np.asarray(episodes["thread"], int)
    scores = np.asarray(episodes["score"], float)
    for k in sorted(set(threads.tolist())):
        mine = scores[threads == k]
        eps = float(final_epsilon[k]) if final_epsilon is not None and k < len(final_epsilon) else None
        out.append((k, eps, int(mine.size), float(mine[-last:].mean())))
    return out


def _threads_text(rows: list) -> str:
    return ", ".join(f"{k}" + (f" (eps {e:g})" if e is not None else "") + f": {m:+.1f}" for k, e, _n, m in rows) or "-"


def census_of(run_dir: str, steps: int):
    """(num_actions, the dead-unit census of the final checkpoint or None where the run has
    no checkpoint or no pixel net, the threads' final epsilons or None where the method has none)."""
    import fastasync
    from dead_units import census, frames_of

    if not os.path.exists(os.path.join(run_dir, "checkpoint.npz")):
        return None, None, None
    policy = fastasync.load(run_dir)
    n = policy.num_actions if policy.info.discrete else None
    eps = (policy._agent.extra or {}).get("final_epsilon")
    if len(policy.observation_shape) != 3:
        return n, None, eps
    net = policy._agent.net
    return n, census(net, policy._agent.theta, frames_of(policy, steps)), eps


def _fmt(v, spec=".3g") -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def report(sweep_dir: str, target: float | None = None, every: bool = False, steps: int = 300) -> str:
    """The markdown of the trials that missed ``target`` (all finished trials with ``every``)."""
    from fastasync.errors import ConfigError
    from fastasync.stats import read_episodes
    from fastasync.sweep import collect_rows, format_value, load_state

    state = load_state(sweep_dir)
    if state is None:
        raise ConfigError(f"{sweep_dir} holds no sweep (no sweep.json)")
    if target is None:
        if not state.get("targets"):
            raise ConfigError("the sweep has no --target; give one with --target")
        target = float(state["targets"][0])
    swept = list(state["space"])
    rows = [r for r in collect_rows(sweep_dir, state) if r["status"] == "done"]
    chosen = [r for r in rows if every or not r["final_mean10"] >= target]
    chosen.sort(key=lambda r: r.get(state.get("x") or "trial", r["trial"]))
    head = ["trial", *swept, "final mean10", "best mean10", "last-100 mean", "eval", "entropy first/min/last", "last loss",
            "|g| median/max/last", "units ever on (per layer)", f"last {THREAD_LAST} games by thread", "what stands out"]
    lines = [f"# The trials below {target:g}" if not every else f"# Every finished trial, against {target:g}", "",
             f"{len(chosen)} of {len(rows)} finished trials of `{os.path.basename(os.path.abspath(sweep_dir))}`"
             f" ({'all shown' if every else f'final 10-game mean < {target:g}'}); written by"
             " `python bench/sweep_collapses.py`. Entropy is the policy's (ln A for a uniform one); |g| the mean"
             " gradient norm before clipping of a progress line's updates; eval: the mean score of the eval of the final"
             " checkpoint (`fastasync eval --save`) where there is one; units ever on: the share of a ReLU"
             f" layer's units positive on at least one of {steps} frames of random play, final checkpoint"
             " (the linear head is left out: its outputs may be negative on every frame without being dead);"
             f" by thread: the mean of each learner thread's last {THREAD_LAST} games, with its final epsilon where"
             " the method explores with one (a Q method's threads each draw their own).", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in chosen:
        run_dir = os.path.join(sweep_dir, r["run_dir"])
        log = os.path.join(run_dir, "train.log")
        text = ""
        if os.path.exists(log):
            with open(log, errors="replace") as fh:
                text = fh.read()
        progress = parse_progress(text)
        num_actions, dead, final_eps = census_of(run_dir, steps)
        eps_path = os.path.join(run_dir, "episodes.csv")
        threads = thread_scores(read_episodes(eps_path), final_eps) if os.path.exists(eps_path) else []
        facts = learning_facts(progress, num_actions)
        loss = facts.get("value_loss_last", facts.get("td_loss_last"))
        ent = "/".join(_fmt(facts.get(k)) for k in ("entropy_first", "entropy_min", "entropy_last")) \
            if "entropy_last" in facts else "-"
        grads = "/".join(_fmt(facts.get(k)) for k in ("grad_median", "grad_max", "grad_last"))
        units = ", ".join(f"{name} {alive:.0%}" for name, _u, alive, _p, _s, relu in dead if relu) if dead else "-"
        cells = [r["trial"], *(format_value(r.get(k)) for k in swept), _fmt(r["final_mean10"], ".1f"),
                 _fmt(r["best_mean10"], ".1f"), _fmt(r.get("final_mean100", math.nan), ".1f"),
                 _fmt(r.get("eval_mean", math.nan), ".1f"), ent, _fmt(loss), grads, units, _threads_text(threads), verdict(r, target, facts, dead, threads)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("sweep_dir")
    ap.add_argument("--target", type=float, default=None, help="[default: the sweep's first --target]")
    ap.add_argument("--all", action="store_true", help="every finished trial, not only those below the target")
    ap.add_argument("--steps", type=int, default=300, help="frames of random play in the dead-unit census")
    args = ap.parse_args(argv)
    if not os.path.isdir(args.sweep_dir):
        print(f"error: no directory {args.sweep_dir}", file=sys.stderr)
        return 2
    from fastasync.errors import ConfigError

    try:
        text = report(args.sweep_dir, args.target, args.all, args.steps)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from fastasync.checkpoint import atomic_write_text

    atomic_write_text(os.path.join(args.sweep_dir, "COLLAPSES.md"), text)
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
