"""Learning methods: each is a small module of targets and losses over the shared kernels.

An algorithm object tells the learner which head its net needs (``head``: "a3c" for
logits+value, "q" for Q values), how to act from the head output, and how to turn a
recorded segment into ``dL/d(head output)`` (written into the net's dout buffer).
"""

from __future__ import annotations


def make_algorithm(name, cfg, net, env_info):
    """The algorithm object for ``name`` (one per learner thread: it may hold buffers)."""
    if name == "a3c":
        from .a3c import A3C

        return A3C(cfg, net, env_info)
    raise ValueError(f"unknown algo {name!r}")


def head_for(name: str) -> str:
    return "a3c" if name.startswith("a3c") else "q"
