"""Episode log (episodes.csv), score summaries and the live progress line."""

from __future__ import annotations

import csv
import math
import os
from collections import deque

EPISODES_HEADER = ["frames", "wall_s", "thread", "score", "length"]


class EpisodeLog:
    """Appends one row per finished GAME to episodes.csv, flushed at once (nothing is lost)."""

    def __init__(self, path: str):
        self.path = path
        new = not os.path.exists(path) or os.path.getsize(path) == 0
        self.fh = open(path, "a", newline="")
        self.writer = csv.writer(self.fh)
        if new:
            self.writer.writerow(EPISODES_HEADER)
            self.fh.flush()

    def write(self, rows):
        for frames, wall_s, thread, score, length in rows:
            self.writer.writerow([frames, f"{wall_s:.2f}", thread, f"{score:g}", length])
        self.fh.flush()

    def close(self):
        self.fh.close()


def read_episodes(path: str):
    """Rows of an episodes.csv as dict of lists (frames, wall_s, thread, score, length)."""
    cols = {k: [] for k in EPISODES_HEADER}
    with open(path, newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header != EPISODES_HEADER:
            raise ValueError(f"{path} is not an episodes.csv (header {header})")
        for row in reader:
            if len(row) != len(EPISODES_HEADER):
                continue  # a row cut short by a crash
            for k, v in zip(EPISODES_HEADER, row):
                cols[k].append(float(v) if k in ("wall_s", "score") else int(v))
    return cols


class ScoreWindow:
    """Mean of the last ``n`` game scores."""

    def __init__(self, n=10):
        self.scores = deque(maxlen=n)
        self.games = 0

    def add(self, score):
        self.scores.append(score)
        self.games += 1

    def mean(self):
        return sum(self.scores) / len(self.scores) if self.scores else math.nan


class OutcomeWindow:
    """Share of the last ``n`` games that succeeded, for envs whose games have an outcome a
    user reads (ViZDoom: MyWayHome's vest reached, HealthGathering's full time survived)."""

    def __init__(self, env_id: str, n=100):
        from .envs.families import family

        fam = family(env_id)
        self.env_id, self.name, self.outcome = env_id, fam.outcome_name(env_id), fam.outcome
        self.hits = deque(maxlen=n)

    @classmethod
    def for_env(cls, env_id: str, n=100):
        """The window of ``env_id``'s family, or None where its games only score."""
        from .envs.families import family

        return cls(env_id, n) if family(env_id).outcome_name(env_id) is not None else None

    def add(self, score, length):
        self.hits.append(bool(self.outcome(self.env_id, score, length)))

    def text(self) -> str:
        if not self.hits:
            return ""
        return f"{self.name} {100 * sum(self.hits) / len(self.hits):.0f}% of last {len(self.hits)}"


def human_count(n: float) -> str:
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= div:
            return f"{n / div:.2f}{unit}"
    return f"{n:.0f}"


def hms(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "--:--:--"
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def progress_line(frames, total, fps, games, mean10, elapsed, eta, learning="") -> str:
    score = "   n/a" if math.isnan(mean10) else f"{mean10:6.1f}"
    return (
        f"frames {human_count(frames):>7}/{human_count(total)} ({100 * frames / total:5.1f}%) | "
        f"{fps:8,.0f} fps | games {games:5d} | score(last 10) {score} | "
        f"elapsed {hms(elapsed)} | ETA {hms(eta)}" + (f" | {learning}" if learning else "")
    )


def learning_summary(diag, head) -> str:
    """What the updates since the last line looked like, from the learners' running sums.

    ``diag``: sums of [w*policy loss, w*value (A3C) or TD (Q) loss, w*entropy, w, gradient
    norm before clipping, updates]. A3C shows the policy entropy (ln A for a uniform policy)
    and the value loss per sample; Q methods the TD loss per sample; both the mean gradient
    norm. Empty when no update happened.
    """
    v = learning_values(diag, head)
    if not v:
        return ""
    grad = f"|g| {v['grad_norm']:.3g}"
    if "entropy" in v:
        return f"entropy {v['entropy']:.3f} value loss {v['value_loss']:.3g} {grad}"
    return f"TD loss {v['td_loss']:.3g} {grad}"


def learning_values(diag, head) -> dict:
    """The numbers of ``learning_summary`` by name (``entropy``, ``value_loss`` or
    ``td_loss``, ``grad_norm``); empty when no update happened."""
    w, updates = diag[3], diag[5]
    if w <= 0 or updates <= 0:
        return {}
    if head in ("a3c", "gaussian"):  # a Gaussian's entropy is per action vector, in nats (can be < 0)
        return dict(entropy=diag[2] / w, value_loss=diag[1] / w, grad_norm=diag[4] / updates)
    return dict(td_loss=diag[0] / w, grad_norm=diag[4] / updates)
