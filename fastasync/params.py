"""Parameter layout: named slices of ONE flat float32 array.

The whole model is one contiguous ``float32 (P,)`` array; every weight a layer uses is a
reshaped *view* into it. So the shared parameters, the shared RMSProp statistics, a target
network, a learner's snapshot and a learner's gradient buffer are each a single array with
the same layout: threads share them, kernels update them in place, a checkpoint saves each
in one piece, and ``layout.views(arr)`` names the parts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ParamSpec:
    """One named tensor in the flat array.

    ``init`` is one of: ``"uniform"`` (U(-s, s) with s = gain / sqrt(fan_in)), ``"zeros"``,
    ``"const"`` (every element = gain).
    """

    name: str
    shape: tuple
    init: str = "uniform"
    fan_in: int = 1
    gain: float = 1.0

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))


class Layout:
    """Offsets of named tensors in one flat float32 array."""

    def __init__(self, specs: list[ParamSpec]):
        names = [s.name for s in specs]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate parameter names in {names}")
        self.specs = list(specs)
        self.offsets = {}
        off = 0
        for s in specs:
            self.offsets[s.name] = (off, off + s.size)
            off += s.size
        self.size = off

    def signature(self) -> list:
        """JSON-able description (names and shapes): checkpoints store it to detect a wrong net."""
        return [[s.name, list(s.shape)] for s in self.specs]

    def views(self, flat: np.ndarray) -> dict[str, np.ndarray]:
        """Named reshaped views into ``flat`` (no copies)."""
        if flat.dtype != np.float32 or flat.ndim != 1 or flat.size != self.size or not flat.flags.c_contiguous:
            raise ValueError(
                f"parameter array has shape {flat.shape} {flat.dtype}, expected ({self.size},) float32 C-contiguous"
            )
        return {s.name: flat[a:b].reshape(s.shape) for s, (a, b) in zip(self.specs, self.offsets.values())}

    def zeros(self) -> np.ndarray:
        return np.zeros(self.size, dtype=np.float32)

    def init(self, seed: int) -> np.ndarray:
        """Freshly initialised parameters (deterministic in ``seed``)."""
        rng = np.random.default_rng(seed)
        flat = self.zeros()
        for s, v in zip(self.specs, self.views(flat).values()):
            if s.init == "uniform":
                bound = s.gain / math.sqrt(max(s.fan_in, 1))
                v[...] = rng.uniform(-bound, bound, size=s.shape)
            elif s.init == "const":
                v[...] = s.gain
            elif s.init != "zeros":
                raise ValueError(f"unknown init {s.init!r} for {s.name}")
        return flat
