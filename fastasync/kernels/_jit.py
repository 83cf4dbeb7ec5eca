"""The one place that defines how kernels are compiled.

Every kernel is ``nogil=True`` (learner threads run them in parallel), ``cache=True``
(reruns skip compilation) and uses a fastmath flag set WITHOUT ``nnan``/``ninf``, so
NaN/Inf checks on parameters and losses keep working.
"""

import numba

FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}

JIT_OPTIONS = dict(nogil=True, cache=True, fastmath=FASTMATH, error_model="numpy", boundscheck=False)


def jit(fn=None, **overrides):
    """``numba.njit`` with the project's options (``@jit`` or ``@jit(inline='always')``)."""
    opts = {**JIT_OPTIONS, **overrides}
    if fn is None:
        return lambda f: numba.njit(**opts)(f)
    return numba.njit(**opts)(fn)
