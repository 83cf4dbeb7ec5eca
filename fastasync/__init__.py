"""fastasync: the asynchronous methods of Mnih et al. (2016) on CPUs, fast.

From Python::

    import fastasync

    run = fastasync.train(env="CartPole-v1", frames="200k")
    policy = fastasync.load(run.run_dir)      # or run.policy()

``train``, ``load``, ``Run`` and ``Policy`` live in :mod:`fastasync.api`. Importing the
package is cheap: they are loaded on first use, and numba and envpool only by the modules
that need them, so ``fastasync --help`` starts quickly.
"""

__version__ = "0.1.0"

__all__ = ["train", "load", "Run", "Policy"]


def __getattr__(name):
    if name in __all__:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'fastasync' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
