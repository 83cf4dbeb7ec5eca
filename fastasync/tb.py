"""TensorBoard event files of a run (``--tensorboard``), written with the ``tensorboard``
package's own event-file writer (the one PyTorch's SummaryWriter uses): one background
*thread* and a ``queue.Queue``, no child process and no multiprocessing queue. (tensorboardX
2.6 feeds a multiprocessing.Queue whose feeder thread was seen to die, after which the
writer blocked a run forever in ``Queue.put``.)

Everything is plotted against emulator frames (the step of each scalar):

* ``score/game``: the true score of every finished game (unclipped, whole games);
  ``score/length``: its length in agent steps; ``score/mean10``: the mean of the last 10;
* ``train/fps``, ``train/lr`` and what the progress line shows of the updates since the
  previous line: ``train/entropy``, ``train/value_loss`` (actor-critic),
  ``train/td_loss`` and ``train/epsilon`` (Q methods: the mean of the threads' current
  epsilons), ``train/grad_norm`` (before clipping);
* with ``--video-every``: ``video/score``, the true score of each recorded game, and
  ``video/game``, that game as an animated GIF (the images dashboard; fastasync.video).

A resumed run writes a new event file into the same directory; events of the old files past
the checkpoint's frame count are hidden by TensorBoard (``purge_step``).
"""

from __future__ import annotations

import importlib.util
import time

from .errors import ConfigError

INSTALL = 'pip install tensorboard (in a checkout of fastasync: pip install -e ".[tb]")'
QUEUE = 1024  # events waiting for the writer thread (a burst of finished games fits)


def check_installed() -> None:
    """ConfigError (exit 2) unless the tensorboard package can be imported."""
    if importlib.util.find_spec("tensorboard") is None:
        raise ConfigError(f"--tensorboard needs the tensorboard package: {INSTALL}")


class TBWriter:
    """The run's TensorBoard scalars; ``resume_frames``: where a resumed run continues."""

    def __init__(self, run_dir: str, resume_frames: int | None = None):
        from tensorboard.compat.proto.event_pb2 import Event, SessionLog
        from tensorboard.compat.proto.summary_pb2 import Summary
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        self._event, self._summary = Event, Summary
        # a new file per run part (its name has the time, host, pid and a counter)
        self._w = EventFileWriter(run_dir, max_queue_size=QUEUE, flush_secs=10,
                                  filename_suffix=f".{resume_frames or 0}")
        if resume_frames is not None:  # TensorBoard hides the older files' events from this step on
            self._w.add_event(Event(wall_time=time.time(), step=int(resume_frames),
                                    session_log=SessionLog(status=SessionLog.START)))

    def _add(self, tag: str, value: float, frames: int) -> None:
        summary = self._summary(value=[self._summary.Value(tag=tag, simple_value=float(value))])
        self._w.add_event(self._event(wall_time=time.time(), step=int(frames), summary=summary))

    def game(self, frames: int, score: float, length: int) -> None:
        self._add("score/game", score, frames)
        self._add("score/length", length, frames)

    def scalars(self, frames: int, values: dict) -> None:
        for tag, v in values.items():
            if v is not None and v == v:  # no NaN points (no game yet)
                self._add(tag, v, frames)

    def progress(self, frames: int, learning: dict, fps: float, lr: float, mean10: float, epsilon=None) -> None:
        """What a progress line shows: ``learning`` (fastasync.stats.learning_values of the
        updates since the last line) under ``train/``, ``train/fps``, ``train/lr``,
        ``score/mean10`` and, for the Q methods, ``train/epsilon`` (the threads' mean)."""
        values = {f"train/{k}": v for k, v in learning.items()}
        values.update({"train/fps": fps, "train/lr": lr, "score/mean10": mean10})
        if epsilon is not None:
            values["train/epsilon"] = float(epsilon)
        self.scalars(frames, values)

    def image(self, tag: str, encoded: bytes, height: int, width: int, frames: int) -> None:
        """An encoded image (PNG, or an animated GIF, which the image dashboard plays) at ``frames``."""
        img = self._summary.Image(height=int(height), width=int(width), colorspace=3, encoded_image_string=encoded)
        summary = self._summary(value=[self._summary.Value(tag=tag, image=img)])
        self._w.add_event(self._event(wall_time=time.time(), step=int(frames), summary=summary))

    def close(self) -> None:
        try:
            self._w.close()  # flushes
        except OSError:  # best effort: the run's own files are what counts
            pass
