"""Argument checks at the Python boundary, never inside a kernel.

Kernels trust their inputs (no bounds checks, no dtype dispatch). The plain-Python code that
calls them checks shapes, dtypes and contiguity once, up front, and raises a ``ValueError``
that names the function, the array, what it got and what was expected::

    dense_forward: W has shape (8, 3) float64, expected (16, 3) float32 C-contiguous
"""

from __future__ import annotations

import numpy as np

__all__ = ["check_array", "format_shape"]


def format_shape(shape) -> str:
    """``(8, 3)``-style text for a shape; ``None`` entries (any size) print as ``*``."""
    parts = ["*" if d is None else str(int(d)) for d in shape]
    if len(parts) == 1:
        return f"({parts[0]},)"
    return "(" + ", ".join(parts) + ")"


def check_array(name: str, arr, shape, dtype, contiguous: bool = True) -> np.ndarray:
    """Check that ``arr`` is an ndarray of the expected shape, dtype and layout.

    Parameters
    ----------
    name : str
        ``"function: array"`` (e.g. ``"dense_forward: W"``), used verbatim in the message.
    arr : object
        The argument to check.
    shape : tuple of (int or None)
        Expected shape; ``None`` in a position means any size along that axis. The number
        of dimensions must match.
    dtype : numpy dtype-like
        Expected dtype (exact match, no casting).
    contiguous : bool
        Require C-contiguity.

    Returns
    -------
    The array unchanged, so calls can be chained.

    Raises
    ------
    ValueError
        ``"{name} has shape {got} {got_dtype}, expected {shape} {dtype}[ C-contiguous]"``;
        the message adds ``(not C-contiguous)`` when only the layout is wrong.
    """
    label = name
    want_dtype = np.dtype(dtype)
    want = f"{format_shape(shape)} {want_dtype}{' C-contiguous' if contiguous else ''}"
    if not isinstance(arr, np.ndarray):
        raise ValueError(f"{label} is a {type(arr).__name__}, expected a numpy array {want}")
    ok_shape = arr.ndim == len(shape) and all(w is None or int(w) == g for w, g in zip(shape, arr.shape))
    ok_dtype = arr.dtype == want_dtype
    ok_layout = (not contiguous) or arr.flags.c_contiguous
    if not (ok_shape and ok_dtype and ok_layout):
        got = f"{format_shape(arr.shape)} {arr.dtype}"
        extra = "" if ok_layout else " (not C-contiguous)"
        raise ValueError(f"{label} has shape {got}{extra}, expected {want}")
    return arr
