"""Running observation normalisation for continuous control: shared state beside theta.

Every learner merges the raw observations of its segment into one set of running moments
(count, mean, M2; float64) under a lock, once per segment, and normalises the observations
of its next segment with a float32 snapshot of them taken when the segment starts (frozen
within a segment, as the parameters are). The moments are saved in checkpoints (``extra``:
obs_count, obs_mean, obs_m2), restored on resume and used frozen by evaluation.

Normalised observation: clip((o - mean) / sqrt(var + 1e-8), -10, 10), var the population
variance of every observation seen so far. Kernels: ``kernels/normalize.py``.
"""

from __future__ import annotations

import threading

import numpy as np

from .errors import NonFiniteObservation
from .kernels import normalize as knorm

CLIP = 10.0
EPS = 1e-8
KEYS = ("obs_count", "obs_mean", "obs_m2")  # checkpoint extra names


class ObsNorm:
    """Running moments of D-dimensional observations. ``enabled=False``: the identity (the
    learners still pass observations through ``normalize_obs`` for its finiteness check)."""

    def __init__(self, dim: int, enabled: bool):
        self.dim = int(dim)
        self.enabled = bool(enabled)
        self.clip = CLIP if self.enabled else np.inf
        self.count = np.zeros(1, np.float64)
        self.mean = np.zeros(self.dim, np.float64)
        self.m2 = np.zeros(self.dim, np.float64)
        self.lock = threading.Lock()

    @property
    def var(self) -> np.ndarray:
        """Population variance of the observations merged so far (zeros before any)."""
        return self.m2 / self.count[0] if self.count[0] > 0 else np.zeros(self.dim)

    def merge(self, x: np.ndarray) -> None:
        """Add the rows of ``x`` (N, D) float32 to the moments (no-op when disabled)."""
        if self.enabled and x.shape[0]:
            with self.lock:
                knorm.moments_merge(x, self.count, self.mean, self.m2)

    def snapshot(self, mean32: np.ndarray, inv_std32: np.ndarray) -> None:
        """Write the normaliser of a segment into (D,) float32 ``mean32`` and ``inv_std32``."""
        if not self.enabled:
            mean32[...] = 0.0
            inv_std32[...] = 1.0
            return
        with self.lock:
            knorm.moments_snapshot(self.count, self.mean, self.m2, EPS, mean32, inv_std32)

    def state(self) -> dict:
        """Arrays for a checkpoint's ``extra`` (empty when disabled)."""
        if not self.enabled:
            return {}
        with self.lock:
            return {"obs_count": self.count.copy(), "obs_mean": self.mean.copy(), "obs_m2": self.m2.copy()}

    def load(self, extra: dict, where: str = "the checkpoint") -> None:
        """Restore the moments saved by ``state`` (a ValueError if they do not fit)."""
        if not self.enabled:
            return
        if not all(k in extra for k in KEYS):
            raise ValueError(f"{where} has no observation statistics, but this run normalises observations "
                             "(it was trained with obs-norm off: resume with --no-obs-norm)")
        count = np.asarray(extra["obs_count"], np.float64).reshape(-1)
        mean = np.asarray(extra["obs_mean"], np.float64)
        m2 = np.asarray(extra["obs_m2"], np.float64)
        if count.shape != (1,) or mean.shape != (self.dim,) or m2.shape != (self.dim,):
            raise ValueError(f"{where} holds observation statistics of size {mean.shape}, this env's observations "
                             f"have {self.dim} entries")
        self.count[...], self.mean[...], self.m2[...] = count, mean, m2


