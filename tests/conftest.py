"""Shared test set-up: BLAS pinned to one thread, seeded generators, tests/ importable."""

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # `import reference` from any cwd


@pytest.fixture(scope="session", autouse=True)
def blas_one_thread():
    """Pin every BLAS/OpenMP pool to one thread for the whole session, as learners do.

    Numba's np.dot calls SciPy's BLAS; an unpinned pool would fight the test's own threads
    (test_gil) and make timings noisy on a small machine.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl is a dependency
        yield None
        return
    import scipy.linalg  # noqa: F401  (load SciPy's BLAS so that the limit applies to it too)

    with threadpool_limits(limits=1) as limits:
        yield limits


@pytest.fixture
def rng():
    """A fresh seeded NumPy generator per test (tests stay independent of their order)."""
    return np.random.default_rng(12345)
