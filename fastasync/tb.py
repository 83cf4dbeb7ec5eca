"""TensorBoard event files of a run (``--tensorboard``), written with tensorboardX.

Everything is plotted against emulator frames (the step of each scalar):

* ``score/game``: the true score of every finished game (unclipped, whole games);
  ``score/length``: its length in agent steps; ``score/mean10``: the mean of the last 10;
* ``train/fps``, ``train/lr`` and what the progress line shows of the updates since the
  previous line: ``train/entropy``, ``train/value_loss`` (actor-critic),
  ``train/td_loss`` and ``train/epsilon`` (Q methods: the mean of the threads' current
  epsilons), ``train/grad_norm`` (before clipping).

A resumed run writes a new event file into the same directory; events of the old files past
the checkpoint's frame count are hidden by TensorBoard (``purge_step``).
"""

from __future__ import annotations

import importlib.util

INSTALL = 'pip install tensorboardX (in a checkout of fastasync: pip install -e ".[tb]")'


def check_installed() -> None:
    """ConfigError (exit 2) unless tensorboardX can be imported."""
    from .config import ConfigError

    if importlib.util.find_spec("tensorboardX") is None:
        raise ConfigError(f"--tensorboard needs the tensorboardX package: {INSTALL}")


class TBWriter:
    """The run's TensorBoard scalars; ``resume_frames``: where a resumed run continues."""

    def __init__(self, run_dir: str, resume_frames: int | None = None):
        from tensorboardX import SummaryWriter

        # the file name has the second it was made: the frames it starts at keep a resume made
        # in the same second from writing over the first part's file
        self._w = SummaryWriter(logdir=run_dir, purge_step=resume_frames, flush_secs=10,
                                filename_suffix=f".{resume_frames or 0}")

    def game(self, frames: int, score: float, length: int) -> None:
        self._w.add_scalar("score/game", score, frames)
        self._w.add_scalar("score/length", length, frames)

    def scalars(self, frames: int, values: dict) -> None:
        for tag, v in values.items():
            if v is not None and v == v:  # no NaN points (no game yet)
                self._w.add_scalar(tag, float(v), frames)

    def close(self) -> None:
        try:
            self._w.close()  # flushes
        except OSError:  # best effort: the run's own files are what counts
            pass
