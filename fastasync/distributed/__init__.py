"""Many nodes on Ray: each node runs today's threaded Hogwild trainer, one parameter actor
holds the global state, nodes exchange parameter changes asynchronously.

Ray is optional (``pip install "fastasync[ray]"``) and imported only here, and only when a
command is given ``--ray``: ``fastasync --help`` and every one-machine run never load it.

- :mod:`.server`: :class:`~.server.ParamServer`, the parameter actor (global parameters,
  frame counter, target network, the games waiting for the driver's log);
- :mod:`.node`: :class:`~.node.Node`, a node actor (a :class:`~fastasync.trainer.Trainer`'s
  learner threads on a local copy of the parameters, plus a sync thread);
- :mod:`.driver`: :class:`~.driver.RayTrainer`, what ``fastasync train --ray`` runs in its
  own process: starts the actors, writes the run directory, restarts lost nodes' work.

How it relates to the paper's single-machine Hogwild, and what each option trades:
docs/ray.md.
"""

from __future__ import annotations

from ..errors import RayMissing

INSTALL_HINT = 'Ray is not installed: pip install "fastasync[ray]" (or pip install "ray[default]")'




def require_ray():
    """The ``ray`` module, or RayMissing with the install command."""
    try:
        import ray
    except ImportError:
        raise RayMissing(INSTALL_HINT) from None
    return ray


def wait_answer(ref, every_s: float, report, limit_s: float = float("inf")):
    """``ray.get(ref)`` that waits for a slow answer rather than giving up on it: ``report``
    (a str callback) hears of every ``every_s`` seconds waited and of a late answer;
    GetTimeoutError only after ``limit_s``. The call is never sent again (a node's sync would
    add its change twice); a dead actor raises at once (RayActorError). Seen: a sync
    unanswered for 120 s on a 2-core machine running a third job (the parameter actor waiting
    for its arguments in Ray's object store), which a plain timeout made fatal for the run."""
    import ray
    from ray.exceptions import GetTimeoutError

    waited = 0.0
    while True:
        try:
            answer = ray.get(ref, timeout=min(every_s, limit_s - waited))
        except GetTimeoutError:
            waited += every_s
            if waited >= limit_s:
                raise
            report(f"{waited:.0f}s without an answer from the parameter actor (still waiting"
                   + ("" if limit_s == float("inf") else f", up to {limit_s:.0f}s") + ")")
            continue
        if waited:
            report(f"the parameter actor answered after {waited:.0f}s+ (it was slow)")
        return answer
