"""fastasync: the asynchronous methods of Mnih et al. (2016) on CPUs, fast.

From Python::

    import fastasync

    run = fastasync.train(env="CartPole-v1", frames="200k")
    policy = fastasync.load(run.run_dir)      # or run.policy()

``train``, ``load``, ``sweep``, ``Run`` and ``Policy`` live in :mod:`fastasync.api`. Importing the
package is cheap: they are loaded on first use, and numba and envpool only by the modules
that need them, so ``fastasync --help`` starts quickly.
"""

import os as _os

# OpenBLAS with one thread, unless the user says otherwise, set before numpy or scipy load it
# (it reads this once, at load). Every learner calls BLAS from its own thread with one BLAS
# thread (threadpoolctl limits it to 1 while training) so nothing is lost; and a loaded
# OpenBLAS with a thread pool made envpool's ViZDoom start hang for good: envpool starts the
# Doom engines from two threads at once, and OpenBLAS's fork handler deadlocked them (with
# scipy's OpenBLAS loaded first, 4 of 5 starts of 8 engines hung; with this set, 0 of 8).
_os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

__version__ = "0.1.0"

__all__ = ["train", "load", "sweep", "Run", "Policy"]


def __getattr__(name):
    if name == "sweep":  # the module fastasync/sweep.py, which calls api.sweep when called
        import importlib

        return importlib.import_module(".sweep", __name__)
    if name in __all__:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'fastasync' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
