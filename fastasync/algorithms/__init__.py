"""Learning methods: each is a small module of targets and losses over the shared kernels.

An algorithm object tells the learner which head its net needs (``head``: "a3c" for
logits+value, "gaussian" for a Gaussian policy+value, "q" for Q values), how to act from
the head output, and how to turn a recorded segment into ``dL/d(head output)`` (written
into the net's dout buffer).

Acting is three methods, called only by :class:`fastasync.acting.Actor`, each writing into
buffers it is given (the algorithm holds none): ``act(out, actions, sent, rng_state, frames)``
(the behaviour policy while training), ``act_greedy(out, actions, sent)`` and
``act_eval(out, actions, sent, rng_state)``. ``sent`` is what the env is stepped with
(``actions`` itself for discrete actions). State an algorithm keeps per learner thread is
set through methods (``bind``; the Q methods' ``set_final_epsilon``), never written from outside.
"""

from __future__ import annotations

import numpy as np


def epsilon_at(final_epsilon, frames, anneal):
    """The Q methods' epsilon after ``frames``: 1 annealed linearly to ``final_epsilon`` (a
    number or an array of them) over ``anneal`` frames (the paper's 4M)."""
    frac = min(1.0, frames / anneal) if anneal > 0 else 1.0
    return 1.0 + (final_epsilon - 1.0) * frac


def check_discrete(env_info, algo, options):
    """The Q methods act in discrete action spaces only, A3C in both (a Gaussian policy for
    Box actions): a ValueError for a Q method on continuous actions. ``options`` (an
    AlgoConfig): the Gaussian head's options (--bounded-mean, --capg) on any other head, or
    --bounded-mean on a Box with an infinite bound, are a ValueError too."""
    gaussian = [f"--{n.replace('_', '-')}" for n in ("bounded_mean", "capg") if getattr(options, n)]
    if gaussian and (env_info.discrete or not algo.startswith("a3c")):
        raise ValueError(f"{' and '.join(gaussian)} appl{'y' if len(gaussian) > 1 else 'ies'} to the Gaussian policy "
                         "of a3c on Box actions; "
                         f"{algo} on {env_info.env_id} does not have one")
    if algo.startswith("a3c") and not env_info.discrete:
        if not env_info.action_shape or len(env_info.action_low) != env_info.action_dim:
            raise ValueError(f"{algo}: {env_info.env_id}'s action space is neither discrete nor a bounded Box")
        if options.bounded_mean and not (
            np.isfinite(env_info.action_low).all() and np.isfinite(env_info.action_high).all()
        ):
            raise ValueError(f"--bounded-mean needs finite action bounds; {env_info.env_id}'s are "
                             f"[{list(env_info.action_low)}, {list(env_info.action_high)}]")
        return
    if not env_info.discrete or env_info.num_actions < 1:
        raise ValueError(
            f"{algo} needs a discrete action space; {env_info.env_id} has continuous actions "
            "(use --algo a3c or a3c-lstm, which learn a Gaussian policy"
            + ("; CarRacingDiscrete-v3 has five discrete actions)" if env_info.family == "car" else ")")
        )


def make_algorithm(name, cfg, net, env_info):
    """The algorithm object for ``name`` (one per learner thread: it may hold buffers)."""
    check_discrete(env_info, name, cfg.algo)
    if name in ("a3c", "a3c-lstm"):
        from .a3c import A3C, GaussianA3C

        return A3C(cfg, net, env_info) if env_info.discrete else GaussianA3C(cfg, net, env_info)
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


def head_for(name: str, env_info=None) -> str:
    """"a3c" (softmax policy + value), "gaussian" (a3c on Box actions) or "q"."""
    if not name.startswith("a3c"):
        return "q"
    return "gaussian" if env_info is not None and not env_info.discrete else "a3c"


def build_net(cfg, env_info):
    """The net a config needs for an env (head from the algorithm and the action space, LSTM from the algorithm)."""
    from ..nets import make_net

    lstm = cfg.algo.lstm_size if cfg.algo.algo == "a3c-lstm" else 0
    head = head_for(cfg.algo.algo, env_info)
    n = env_info.action_dim if head == "gaussian" else env_info.num_actions
    return make_net(env_info.obs_shape, n, head, cfg.algo.hidden, lstm, cfg.algo.frame_center)
