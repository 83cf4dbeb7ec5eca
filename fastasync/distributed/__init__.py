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

How it relates to the paper's single-machine Hogwild, and what each option trades: README,
"Many machines (Ray)".
"""

from __future__ import annotations

INSTALL_HINT = 'Ray is not installed: pip install "fastasync[ray]" (or pip install "ray[default]")'


class RayMissing(ImportError):
    """``--ray`` was given but Ray is not installed; the message says how to install it."""


def require_ray():
    """The ``ray`` module, or RayMissing with the install command."""
    try:
        import ray
    except ImportError:
        raise RayMissing(INSTALL_HINT) from None
    return ray
