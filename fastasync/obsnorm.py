"""Running observation normalisation for continuous control: shared state beside theta.

Every learner merges the raw observations of its segment into one set of running moments
(count, mean, M2; float64) under a lock, once per segment, and normalises the observations
of its next segment with a float32 snapshot of them taken when the segment starts (frozen
within a segment, as the parameters are). The moments are saved in checkpoints (``extra``:
obs_count, obs_mean, obs_m2), restored on resume and used frozen by evaluation. On Ray the
parameter actor holds the global moments: each node sends what its learners merged since
its last sync (``difference``) and takes the global ones back (``ObsNorm.rebase``).

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


def combine(a: dict, b: dict) -> dict:
    """The moments (``KEYS``) of the observations of ``a`` and ``b`` together (the parallel
    form of Welford's update, Chan et al. 1979)."""
    na, nb = float(a["obs_count"][0]), float(b["obs_count"][0])
    if nb <= 0:
        return {k: np.array(a[k], np.float64) for k in KEYS}
    if na <= 0:
        return {k: np.array(b[k], np.float64) for k in KEYS}
    n = na + nb
    delta = b["obs_mean"] - a["obs_mean"]
    return {"obs_count": np.array([n]), "obs_mean": a["obs_mean"] + delta * (nb / n),
            "obs_m2": a["obs_m2"] + b["obs_m2"] + delta**2 * (na * nb / n)}


def difference(c: dict, a: dict) -> dict:
    """The moments of the observations of ``c`` that are not in ``a``, where ``c`` is ``a``
    combined with more (``combine``'s inverse: ``combine(a, difference(c, a)) == c``)."""
    nc, na = float(c["obs_count"][0]), float(a["obs_count"][0])
    nb = nc - na
    dim = len(c["obs_mean"])
    if nb <= 0:
        return {"obs_count": np.zeros(1), "obs_mean": np.zeros(dim), "obs_m2": np.zeros(dim)}
    mean = (nc * c["obs_mean"] - na * a["obs_mean"]) / nb
    m2 = c["obs_m2"] - a["obs_m2"] - (mean - a["obs_mean"]) ** 2 * (na * nb / nc)
    return {"obs_count": np.array([nb]), "obs_mean": mean, "obs_m2": np.maximum(m2, 0.0)}


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

    def rebase(self, sent: dict, merged: dict) -> None:
        """Replace the moments ``sent`` (a ``state()`` taken earlier) with ``merged`` (sent's
        observations together with others': a Ray node's, from the parameter actor), keeping
        what the learners merged here since ``sent`` was taken."""
        with self.lock:
            now = {"obs_count": self.count.copy(), "obs_mean": self.mean.copy(), "obs_m2": self.m2.copy()}
            new = combine(merged, difference(now, sent))
            self.count[...], self.mean[...], self.m2[...] = new["obs_count"], new["obs_mean"], new["obs_m2"]

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


