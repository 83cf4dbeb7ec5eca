"""Checkpoints: one .npz with params, RMSProp statistics, counters, rng states and config.

Written atomically (temp file in the same directory, fsync, rename), so a crash or Ctrl-C
never leaves a half-written checkpoint in place of a good one. Reading checks every field
and raises CheckpointError with a one-line reason.
"""

from __future__ import annotations

import json
import os
import zipfile

import numpy as np

from .errors import CheckpointError

FORMAT_VERSION = 1
CHECKPOINT_NAME = "checkpoint.npz"




def checkpoint_path(path: str) -> str:
    """A run directory or a checkpoint file -> the checkpoint file path."""
    return os.path.join(path, CHECKPOINT_NAME) if os.path.isdir(path) else path


def atomic_write_bytes(path: str, write) -> None:
    """Call ``write(fileobj)`` on a temp file next to ``path``, then rename it over ``path``."""
    d = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(d, f".{os.path.basename(path)}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str, text: str) -> None:
    atomic_write_bytes(path, lambda fh: fh.write(text.encode()))


def save(path: str, *, theta, rms_g, frames, wall_s, games, rng_states, config: dict, layout_signature, extra=None):
    """Write a checkpoint atomically. ``extra``: more named arrays (target net, LSTM state)."""
    arrays = dict(
        format_version=np.array(FORMAT_VERSION),
        theta=np.asarray(theta, np.float32),
        rms_g=np.asarray(rms_g, np.float32),
        frames=np.array(int(frames), np.int64),
        wall_s=np.array(float(wall_s)),
        games=np.array(int(games), np.int64),
        rng_states=np.asarray(rng_states, np.uint64),
        config=np.array(json.dumps(config)),
        layout=np.array(json.dumps(layout_signature)),
    )
    for k, v in (extra or {}).items():
        arrays[f"extra_{k}"] = np.asarray(v)
    atomic_write_bytes(path, lambda fh: np.savez(fh, **arrays))


def load(path: str) -> dict:
    """Read and check a checkpoint (a run directory or a .npz path)."""
    p = checkpoint_path(path)
    if not os.path.exists(p):
        raise CheckpointError(f"no checkpoint at {p}")
    try:
        with np.load(p, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError, TypeError) as exc:
        # TypeError: a .npy file (np.load returns a bare array)
        raise CheckpointError(f"cannot read checkpoint {p}: not a fastasync checkpoint ({type(exc).__name__}: {exc})") from None
    need = ["format_version", "theta", "rms_g", "frames", "rng_states", "config", "layout"]
    missing = [k for k in need if k not in data]
    if missing:
        raise CheckpointError(f"checkpoint {p} is missing {', '.join(missing)}")
    if int(data["format_version"]) != FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {p} has format {int(data['format_version'])}, expected {FORMAT_VERSION}")
    try:
        out = dict(
            path=p,
            theta=np.ascontiguousarray(data["theta"], np.float32),
            rms_g=np.ascontiguousarray(data["rms_g"], np.float32),
            frames=int(data["frames"]),
            wall_s=float(data.get("wall_s", 0.0)),
            games=int(data.get("games", 0)),
            rng_states=np.ascontiguousarray(data["rng_states"], np.uint64),
            config=json.loads(str(data["config"])),
            layout=json.loads(str(data["layout"])),
            extra={k[6:]: v for k, v in data.items() if k.startswith("extra_")},
        )
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"checkpoint {p} is corrupt: {exc}") from None
    if not isinstance(out["config"], dict) or not isinstance(out["layout"], list):
        raise CheckpointError(f"checkpoint {p} is corrupt: config or layout is not what fastasync writes")
    if out["rng_states"].ndim != 2 or out["rng_states"].shape[1] != 2:
        raise CheckpointError(f"checkpoint {p} is corrupt: rng_states has shape {out['rng_states'].shape}")
    if out["theta"].shape != out["rms_g"].shape or out["theta"].ndim != 1:
        raise CheckpointError(f"checkpoint {p} is corrupt: params {out['theta'].shape} vs RMSProp {out['rms_g'].shape}")
    return out


def check_matches(ck: dict, layout) -> None:
    """Raise CheckpointError unless the checkpoint's params fit ``layout`` (same net)."""
    if ck["layout"] != layout.signature() or ck["theta"].size != layout.size:
        want = ", ".join(f"{n}{tuple(s)}" for n, s in layout.signature())
        got = ", ".join(f"{n}{tuple(s)}" for n, s in ck["layout"])
        raise CheckpointError(
            f"checkpoint {ck['path']} holds a different network ({got}); this run needs ({want})"
        )
