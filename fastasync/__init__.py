"""fastasync: the asynchronous methods of Mnih et al. (2016) on CPUs, fast.

Importing the package is cheap: numba and envpool are imported only by the modules
that need them, so ``fastasync --help`` starts quickly.
"""

__version__ = "0.1.0"
