"""Learning methods: each is a small module of targets and losses over the shared kernels.

An algorithm object tells the learner which head its net needs (``head``: "a3c" for
logits+value, "q" for Q values), how to act from the head output, and how to turn a
recorded segment into ``dL/d(head output)`` (written into the net's dout buffer).
"""

from __future__ import annotations


def check_discrete(env_info, algo):
    """Every method here acts in discrete action spaces: a ValueError for any other."""
    if not env_info.discrete or env_info.num_actions < 1:
        raise ValueError(f"{algo} needs a discrete action space; {env_info.env_id} has continuous actions")


def make_algorithm(name, cfg, net, env_info):
    """The algorithm object for ``name`` (one per learner thread: it may hold buffers)."""
    check_discrete(env_info, name)
    if name in ("a3c", "a3c-lstm"):
        from .a3c import A3C

        return A3C(cfg, net, env_info)
    if name == "onestep-q":
        from .onestep_q import OneStepQ

        return OneStepQ(cfg, net, env_info)
    if name == "onestep-sarsa":
        from .sarsa import OneStepSarsa

        return OneStepSarsa(cfg, net, env_info)
    if name == "nstep-q":
        from .nstep_q import NStepQ

        return NStepQ(cfg, net, env_info)
    raise ValueError(f"unknown algo {name!r}")


def head_for(name: str) -> str:
    return "a3c" if name.startswith("a3c") else "q"


def build_net(cfg, env_info):
    """The net a config needs for an env (head and LSTM from the algorithm)."""
    from ..nets import make_net

    lstm = cfg.algo.lstm_size if cfg.algo.algo == "a3c-lstm" else 0
    return make_net(env_info.obs_shape, env_info.num_actions, head_for(cfg.algo.algo), cfg.algo.hidden, lstm)
