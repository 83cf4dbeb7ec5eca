"""The project's exceptions, in one place that imports nothing, so that every room can raise
them and the front doors (cli.py, api.py) can catch them by class.

Bad input is a ``ValueError`` with a one-line message the CLI prints as it is (exit 2):
:class:`ConfigError`, :class:`EnvError`, :class:`CheckpointError`, :class:`RunDirError`,
:class:`StartError`. A run that stopped on a fault (exit 1) is a :class:`LearnerError` (a
learner thread raised; ``.tb`` holds its traceback), a :class:`RunIOError` (its log or final
checkpoint could not be written) or a :class:`RayRunError` (the run on Ray lost its parameter
actor or every node); each carries what the run directory still holds.
"""

from __future__ import annotations


class ConfigError(ValueError):
    """Invalid configuration: a clear one-line message for the user."""


class EnvError(ValueError):
    """A bad environment request: unknown id/backend, bad argument, missing package."""


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: unreadable, truncated, or for another net."""


class RunDirError(ValueError):
    """This run may not write into this directory; the message says why and what to do."""


class StartError(ValueError):
    """The run could not start (memory, the run directory): a one-line reason, nothing written."""


class RunStopped(RuntimeError):
    """A run that stopped on a fault; ``checkpoint_note`` says what the run directory still
    holds (the last good checkpoint and how to resume, or that none was written)."""

    def __init__(self, message: str, checkpoint_note: str = ""):
        super().__init__(message)
        self.checkpoint_note = checkpoint_note


class LearnerError(RunStopped):
    """A learner thread raised: ``index`` (-1 for a node of a run on Ray), ``exc`` the
    exception, ``tb`` its traceback text."""

    def __init__(self, index: int, exc: BaseException, tb: str, checkpoint_note: str = "", message: str | None = None):
        super().__init__(message or f"learner {index} failed: {type(exc).__name__}: {exc}", checkpoint_note)
        self.index, self.exc, self.tb = index, exc, tb


class RayRunError(RunStopped):
    """The run on Ray stopped: the parameter actor died, or every node was lost."""


class RunIOError(OSError):
    """The run could not write its episode log or its final checkpoint (disk full, ...):
    training stopped; the message says what the run directory still holds."""


class RayMissing(ImportError):
    """``--ray`` was given but Ray is not installed; the message says how to install it."""


class NonFiniteObservation(FloatingPointError):
    """An env returned NaN or inf in an observation: the run stops (last good checkpoint kept)."""
