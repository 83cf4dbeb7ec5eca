"""Ctrl-C and SIGTERM while training: the handler never blocks (stop_on_signals)."""

import os
import signal
import threading
import time

from fastasync.trainer import stop_on_signals


class _Run:
    interrupted = False
    stop_signal = None


def test_signals_while_the_main_thread_holds_the_stop_events_lock_stop_the_run():
    """A signal handler runs in the main thread between two bytecodes: inside Event.wait with
    the Event's lock held, or inside itself when signals come in quick succession (a Ray
    worker's death brought several). A handler that called Event.set() then waited for ever on
    a lock its own thread held (a sweep trial hung so); now it sets attributes and a relay
    thread sets the stop Event."""
    run, flag = _Run(), threading.Event()
    with stop_on_signals(run, flag):
        with flag._cond:  # as the main loop's stop.wait(0.2) holds it
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)  # the handler runs here, the lock held
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)
        assert flag.wait(5), "the stop flag was not set"
    assert run.interrupted and run.stop_signal == int(signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back
    assert not any(t.name == "fastasync-signal-relay" for t in threading.enumerate())
