"""Two sweeps of the same draws, side by side: what a change of a fixed option did, trial by trial.

    python bench/compare_sweeps.py SWEEP_A SWEEP_B [--target T ...] [--out FILE]

A and B are `fastasync sweep` directories (or their copies in docs/learning/sweeps, kept
without checkpoints) that drew the same trials (the same search space and sweep seed, hence
the same swept values per trial name) and differ in a fixed option, e.g. B = A's command with
`--lr-warmup-frames 100k`. Prints a markdown page (and writes it to ``--out``):
- which fixed options differ;
- a table of every trial finished in either, ordered by the swept axis: its final 10-game
  mean, last-100 mean, eval of the final checkpoint and frames to the first target in each;
- per target, over the trials finished in both: how many reached it by each measure (the
  final 10 games, the last 100, the eval) and the widest interval of the swept axis in which
  every one of them did (``fastasync.sweep.widest_interval``, decades on a log axis);
- per target, over the trials that reached it in both: in how many B was earlier, and the
  median frames to it in each.

Exit 2 with one line where a directory holds no sweep or the two did not draw the same trials.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))


def load(sweep_dir: str):
    from fastasync.sweep import collect_rows, load_state

    state = load_state(sweep_dir)
    if state is None:
        raise SystemExit(f"compare_sweeps: {sweep_dir}: no sweep there (no sweep.json)")
    return state, {r["trial"]: r for r in collect_rows(sweep_dir, state)}


def option_changes(a: dict, b: dict) -> list:
    """The fixed options that differ, as "name: A -> B" ("-" where one leaves it to its default);
    those that change how a trial runs, not what it learns (sweep.EXECUTION), are left out."""
    from fastasync.sweep import EXECUTION

    oa, ob = a.get("options") or {}, b.get("options") or {}
    return [f"{k}: {oa.get(k, '-')} -> {ob.get(k, '-')}" for k in sorted(set(oa) | set(ob))
            if k not in EXECUTION and oa.get(k) != ob.get(k)]


def check_same_draws(a: dict, b: dict) -> None:
    """SystemExit unless every trial name the two share has the same swept values."""
    va = {t["name"]: t["values"] for t in a["trials"]}
    for t in b["trials"]:
        if t["name"] in va and va[t["name"]] != t["values"]:
            raise SystemExit(f"compare_sweeps: the sweeps did not draw the same trials ({t['name']}: "
                             f"{va[t['name']]} against {t['values']}); compare sweeps of one search space and sweep seed")
    if not set(va) & {t["name"] for t in b["trials"]}:
        raise SystemExit("compare_sweeps: the sweeps share no trial")


def _num(v) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.1f}"


def _frames(v) -> str:
    return "never" if v is None else f"{v / 1e6:.2f}M"


def _n(k: int, word: str) -> str:
    return f"{k} {word}" + ("" if k == 1 else "s")


def _interval(iv, log: bool) -> str:
    if iv is None:
        return "none"
    unit = " decades" if log else ""
    return f"{iv['lo']:.3g} to {iv['hi']:.3g} ({iv['width']:.2f}{unit}, {_n(iv['trials'], 'trial')})"


def _finished(row) -> bool:
    return row is not None and row["status"] == "done" and not math.isnan(row["final_mean10"])


MEASURES = (("final 10", "final_mean10"), ("last 100", "final_mean100"), ("eval", "eval_mean"))


def compare(dir_a: str, dir_b: str, targets=None, label_a: str = "A", label_b: str = "B") -> str:
    from fastasync.sweep import target_column, widest_interval

    sa, ra = load(dir_a)
    sb, rb = load(dir_b)
    check_same_draws(sa, sb)
    x, log = sa.get("x"), bool(sa.get("x_log"))
    targets = list(targets) if targets else list(sa.get("targets") or [])
    first = targets[0] if targets else None
    names = [t["name"] for t in sa["trials"] if t["name"] in rb]
    shown = sorted((n for n in names if _finished(ra[n]) or _finished(rb[n])), key=lambda n: (ra[n].get(x), n))
    both = [n for n in shown if _finished(ra[n]) and _finished(rb[n])]
    lines = [f"# {label_b} against {label_a}: the same draws", "",
             f"- {label_a}: `{dir_a}`", f"- {label_b}: `{dir_b}`",
             "- fixed options that differ: " + ("; ".join(option_changes(sa, sb)) or "none"),
             f"- trials finished in both: {len(both)} of {len(names)}", ""]

    def cell(row):
        if not _finished(row):
            return "not run" if row is None or row["status"] == "pending" else row["status"]
        parts = [_num(row[k]) for _, k in MEASURES]
        if first is not None:
            parts.append(_frames(row.get(target_column(first))))
        return " / ".join(parts)

    what = "final 10 / last 100 / eval" + (f" / first {first:g}" if first is not None else "")
    lines += [f"| trial | {x} | {label_b}: {what} | {label_a} |", "|---|---|---|---|"]
    lines += [f"| {n} | {ra[n].get(x):.3g} | {cell(rb[n])} | {cell(ra[n])} |" for n in shown]
    for t in targets:
        lines += ["", f"## Target {t:g} ({len(both)} trials finished in both)", "",
                  f"| measure | {label_b}: reached | {label_b}: widest interval | {label_a}: reached | "
                  f"{label_a}: widest interval |", "|---|--:|---|--:|---|"]
        for name, key in MEASURES:
            have = [n for n in both if not math.isnan(ra[n][key]) and not math.isnan(rb[n][key])]
            if not have:
                continue
            cells = []
            for rows in (rb, ra):
                hit = [rows[n][key] >= t for n in have]
                iv = widest_interval([rows[n][x] for n in have], hit, log) if x else None
                cells += [f"{sum(hit)} of {len(have)}", _interval(iv, log)]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        col = target_column(t)
        reached = [n for n in both if ra[n].get(col) is not None and rb[n].get(col) is not None]
        if reached:
            earlier = sum(rb[n][col] < ra[n][col] for n in reached)
            lines += ["", f"First reached {t:g} in both: {_n(len(reached), 'trial')}; {label_b} earlier in {earlier}, "
                          f"median frames {_frames(statistics.median(rb[n][col] for n in reached))} ({label_b}) "
                          f"against {_frames(statistics.median(ra[n][col] for n in reached))} ({label_a})."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("sweep_a")
    p.add_argument("sweep_b")
    p.add_argument("--target", type=float, action="append", help="targets (default: A's)")
    p.add_argument("--label-a", default=None, help="A's name in the page (default: its folder's name)")
    p.add_argument("--label-b", default=None)
    p.add_argument("--out", default=None, help="also write the page here")
    a = p.parse_args(argv)
    page = compare(a.sweep_a, a.sweep_b, a.target,
                   a.label_a or os.path.basename(os.path.normpath(a.sweep_a)),
                   a.label_b or os.path.basename(os.path.normpath(a.sweep_b)))
    sys.stdout.write(page)
    if a.out:
        from fastasync.checkpoint import atomic_write_text

        atomic_write_text(a.out, page)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
