"""Kernel caches are stamped with every kernel file, not just the function's own.

A cached kernel has the kernels it calls compiled into it, from other files of the package
(conv_backward holds dense.sparse_backward_acc). Numba keys a cache to the function's own
file, so an edit of dense.py alone would leave conv's cache, and the old code, in use.
"""

import importlib.util
import sys

import numba
import pytest

from fastasync.kernels import _jit, conv, dense

pytestmark = pytest.mark.skipif(numba.config.DISABLE_JIT, reason="no caches without the JIT")


def test_kernel_caches_are_stamped_with_every_kernel_file():
    for kernel in (dense.dense_forward, conv.conv_backward):
        locator = kernel._cache._impl.locator
        assert getattr(type(locator), "_fastasync", False), type(locator)
        assert locator.get_source_stamp() == _jit.kernels_stamp()


def test_the_stamp_changes_with_any_file_of_the_package(tmp_path):
    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "b.py").write_text("y = 2\n")
    s0 = _jit.kernels_stamp(tmp_path)
    (tmp_path / "notes.txt").write_text("not source")
    assert _jit.kernels_stamp(tmp_path) == s0
    (tmp_path / "b.py").write_text("y = 3\n")
    s1 = _jit.kernels_stamp(tmp_path)
    assert s1 != s0
    (tmp_path / "c.py").write_text("")
    assert _jit.kernels_stamp(tmp_path) not in (s0, s1)


def test_functions_outside_the_package_keep_numbas_own_locator(tmp_path):
    src = tmp_path / "outside_mod.py"
    src.write_text("import numba\n\n@numba.njit(cache=True)\ndef f(x):\n    return x + 1\n")
    spec = importlib.util.spec_from_file_location("outside_mod", src)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["outside_mod"] = mod
    try:
        spec.loader.exec_module(mod)
        assert mod.f(1) == 2
        assert not getattr(type(mod.f._cache._impl.locator), "_fastasync", False)
    finally:
        del sys.modules["outside_mod"]
