"""SIGINT/SIGTERM as a stop request, shared by every long-running verb: the loop finishes its step,
checkpoints, finishes the file it was writing or waits for its acks, prints its final line and exits
0. A second Ctrl-C interrupts at once (KeyboardInterrupt, which `realrl` turns into exit 130)."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_log = logging.getLogger(__name__)


@contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """An event set by SIGINT/SIGTERM (the first one; a second SIGINT raises KeyboardInterrupt).
    `realrl` installs it before a verb builds anything, so a signal during setup (demo recording,
    journal replay) is a stop request too, not a traceback."""
    stop = threading.Event()
    previous = {}

    def handler(signum, frame):
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        _log.warning(
            "%s: finishing (the learner checkpoints, an actor waits for its acks), then exiting; "
            "Ctrl-C again to interrupt at once",
            signal.Signals(signum).name,
        )
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        previous[signum] = signal.signal(signum, handler)
    try:
        yield stop
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
