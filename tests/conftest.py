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


# -- a Ray cluster on this machine: a head and a second node, 1 CPU each --------------------


def _start_two_node_cluster():
    """A head and a second node of 1 CPU each (what the tests place: at most 2 node actors or
    trial tasks of 1 CPU; the parameter actor takes no CPU)."""
    from ray.cluster_utils import Cluster

    # a loaded CI machine (or a shared 2-core one) can take longer than Ray's default
    os.environ.setdefault("RAY_raylet_start_wait_time_s", "180")
    c = Cluster(initialize_head=True, head_node_args=dict(num_cpus=1, include_dashboard=False))
    try:
        c.add_node(num_cpus=1)
        c.wait_for_nodes(timeout=180)
    except BaseException:
        c.shutdown()
        raise
    return c


@pytest.fixture(scope="module")
def _module_ray_cluster():
    """One cluster per test module (its start is 15-30 s of a 2-core machine), torn down when
    the module's tests are done: no two clusters share the machine at once."""
    pytest.importorskip("ray")
    c = _start_two_node_cluster()
    try:
        yield c
    finally:
        import ray

        try:
            ray.shutdown()
        finally:
            c.shutdown()


@pytest.fixture
def ray_cluster(_module_ray_cluster):
    """(cluster, its second node), whole again for every test: a second node that a test
    removed, or whose processes died, is replaced before the next test, so that a test which
    kills nodes (or failed half way) cannot leave the next one a cluster too small to place
    its actors (seen: a Ray test waiting forever after the one before it failed half way);
    the test's own Ray connection is closed after it."""
    import ray

    c = _module_ray_cluster
    if not c.head_node.remaining_processes_alive():
        pytest.fail("the module's Ray head node died in an earlier test; its logs: " + c.head_node.get_logs_dir_path())
    for node in list(c.worker_nodes):
        if not node.remaining_processes_alive():
            c.remove_node(node, allow_graceful=False)
    while len(c.worker_nodes) < 1:
        c.add_node(num_cpus=1)
    c.wait_for_nodes(timeout=180)
    try:
        yield c, next(iter(c.worker_nodes))
    finally:
        ray.shutdown()
