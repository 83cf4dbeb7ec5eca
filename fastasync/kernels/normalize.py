"""Running observation statistics and normalisation (continuous control).

The statistics are shared by every learner (``fastasync/obsnorm.py``): a count, a mean and
the sum of squared deviations M2 per observation entry, all float64, merged batch by batch
with the parallel-variance update of Chan, Golub & LeVeque (1979). A learner normalises with
a float32 snapshot of them, taken once per segment (frozen within a segment).
"""

import math

from ._jit import jit


@jit
def moments_merge(x, count, mean, m2):
    """Merge the rows of ``x`` into running moments, in place (Chan et al.'s pairwise update).

    x: (N, D) float32 observations, N >= 1; count: (1,) float64 rows seen so far; mean, m2:
    (D,) float64 mean and sum of squared deviations. With the batch's n_b = N, mean_b, M2_b:

        n = n_a + n_b;  delta = mean_b - mean_a
        mean = mean_a + delta * n_b / n;  M2 = M2_a + M2_b + delta^2 * n_a * n_b / n
    """
    N, D = x.shape
    na = count[0]
    n = na + N
    for d in range(D):
        s = 0.0
        for i in range(N):
            s += float(x[i, d])  # float64 sums (as plain Python too, where float32 + float stays float32)
        mb = s / N
        m2b = 0.0
        for i in range(N):
            dd = float(x[i, d]) - mb
            m2b += dd * dd
        delta = mb - mean[d]
        mean[d] += delta * N / n
        m2[d] += m2b + delta * delta * na * N / n
    count[0] = n


@jit
def moments_snapshot(count, mean, m2, eps, mean32, inv_std32):
    """The normaliser of a segment: mean32 = mean, inv_std32 = 1 / sqrt(M2 / count + eps)
    (population variance); with no data yet, mean 0 and inv_std 1 (the identity).

    count: (1,) float64; mean, m2: (D,) float64; mean32, inv_std32: (D,) float32, written.
    """
    c = count[0]
    for d in range(mean.shape[0]):
        if c > 0.0:
            mean32[d] = mean[d]
            inv_std32[d] = 1.0 / math.sqrt(m2[d] / c + eps)
        else:
            mean32[d] = 0.0
            inv_std32[d] = 1.0


@jit
def normalize_obs(obs, mean, inv_std, clip, raw, out):
    """out = clip((obs - mean) * inv_std, -clip, clip), keeping a float32 copy of obs in raw.

    obs: (E, D) float32 (any strides); mean, inv_std: (D,) float32; raw, out: (E, D) float32,
    written. Returns the index of the first env whose observation holds a NaN or an inf, or
    -1 when every entry is finite (the learner turns that into a clear error).
    """
    E, D = obs.shape
    bad = -1
    for e in range(E):
        for d in range(D):
            x = obs[e, d]
            if bad < 0 and not math.isfinite(x):
                bad = e
            raw[e, d] = x
            y = (x - mean[d]) * inv_std[d]
            out[e, d] = min(max(y, -clip), clip)
    return bad
