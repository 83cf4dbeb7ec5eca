"""Learning curves: true game score against emulator frames, from episodes.csv."""

from __future__ import annotations

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


def plot_scores(episodes_csv: str, out: str, window: int = 10) -> str:
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
    title = os.path.basename(os.path.dirname(os.path.abspath(episodes_csv)))
    cfg_path = os.path.join(os.path.dirname(episodes_csv), "config.json")
    if os.path.exists(cfg_path):
        try:
            cfg = json.load(open(cfg_path))
            title = f"{cfg['algo']['algo']} on {cfg['env']['env']}, {cfg['run']['threads']} threads"
        except (ValueError, KeyError):
            pass
    wall = np.array(d["wall_s"])[order]
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    ax.plot(frames / 1e6, score, ".", ms=2, alpha=0.3, color="tab:blue", label="game score")
    ax.plot(frames / 1e6, rolling_mean(score, window), color="tab:red", lw=2, label=f"mean of last {window}")
    ax.set_xlabel("emulator frames (millions)")
    ax.set_ylabel("true game score")
    ax.set_title(f"{title}\n{len(score)} games, {frames[-1] / 1e6:.1f}M frames, {wall.max() / 60:.1f} min")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    atomic_write_bytes(out, lambda fh: fig.savefig(fh, format=os.path.splitext(out)[1][1:] or "png"))
    plt.close(fig)
    return out
