"""The one place that defines how kernels are compiled.

Every kernel is ``nogil=True`` (learner threads run them in parallel), ``cache=True``
(reruns skip compilation) and uses a fastmath flag set WITHOUT ``nnan``/``ninf``, so
NaN/Inf checks on parameters and losses keep working.

Cache freshness: Numba keys each function's on-disk cache to its own source file only, but a
cached kernel has the kernels it calls compiled into it, from other files (conv's backward
holds dense's ``sparse_backward_acc``): after an edit of dense.py alone, conv's stale cache
would still run the old code. So every kernel's cache is stamped with one hash of ALL the
files of this package (``kernels_stamp``): editing any kernel file recompiles them all once.
"""

import hashlib
import os

import numba

FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}

JIT_OPTIONS = dict(nogil=True, cache=True, fastmath=FASTMATH, error_model="numpy", boundscheck=False)

KERNELS_DIR = os.path.dirname(os.path.abspath(__file__))


def kernels_stamp(directory=KERNELS_DIR):
    """sha256 over the names and contents of every ``.py`` file in ``directory``."""
    h = hashlib.sha256()
    for name in sorted(os.listdir(directory)):
        if name.endswith(".py"):
            with open(os.path.join(directory, name), "rb") as f:
                h.update(name.encode() + b"\0" + f.read() + b"\0")
    return h.hexdigest()


_STAMP = []  # computed once per process, on the first kernel that asks


class _KernelsStamp:
    """Locator mixin: the package-wide stamp instead of the function's own file's."""

    def get_source_stamp(self):
        if not _STAMP:
            _STAMP.append(kernels_stamp())
        return _STAMP[0]


def _in_kernels(py_file):
    return os.path.dirname(os.path.abspath(py_file)) == KERNELS_DIR


def _install_locators():
    """Put the package-stamped locators first in Numba's list (they answer only for files of
    this package; everything else is located as before). Numba names these classes with or
    without a leading underscore depending on its version; an unknown layout keeps Numba's
    own per-file stamps."""
    from numba.core import caching

    def find(name):
        return getattr(caching, name, None) or getattr(caching, "_" + name, None)

    impl, in_tree, user = find("CacheImpl"), find("InTreeCacheLocator"), find("UserProvidedCacheLocator")
    if impl is None or in_tree is None or user is None or not isinstance(impl._locator_classes, list):
        return
    if any(getattr(c, "_fastasync", False) for c in impl._locator_classes):
        return

    class KernelsUserProvidedLocator(_KernelsStamp, user):  # NUMBA_CACHE_DIR set
        _fastasync = True

        @classmethod
        def from_function(cls, py_func, py_file):
            return super().from_function(py_func, py_file) if _in_kernels(py_file) else None

    class KernelsInTreeLocator(_KernelsStamp, in_tree):  # __pycache__ next to the file
        _fastasync = True

        @classmethod
        def from_function(cls, py_func, py_file):
            if numba.config.CACHE_DIR or not _in_kernels(py_file):
                return None
            return super().from_function(py_func, py_file)

    impl._locator_classes[:0] = [KernelsUserProvidedLocator, KernelsInTreeLocator]


_install_locators()


def jit(fn=None, **overrides):
    """``numba.njit`` with the project's options (``@jit`` or ``@jit(inline='always')``)."""
    opts = {**JIT_OPTIONS, **overrides}
    if fn is None:
        return lambda f: numba.njit(**opts)(f)
    return numba.njit(**opts)(fn)
