"""Start the FiftyOne App on a review dataset, and stop what FiftyOne started."""
from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Iterator

log = logging.getLogger(__name__)


def launch(dataset, port: int = 5151, address: str = "127.0.0.1", remote: bool = True,
           view: str = "worst-first"):
    """The App session on `dataset`, opened on the saved `view` ("worst-first": images;
    "findings-first": one tile per finding) when it has it (remote: serve, no browser)."""
    import fiftyone as fo

    view = dataset.load_saved_view(view) if dataset.has_saved_view(view) else None
    return fo.launch_app(dataset, view=view, port=port, address=address, remote=remote,
                         auto=False)


class Stopped(BaseException):
    """SIGTERM or SIGHUP reached the review: end it like Ctrl-C (a BaseException, as
    KeyboardInterrupt is, so that no `except Exception` on the way swallows it)."""


_STOP_REQUESTED = threading.Event()  # set by the handler: a raise that library code swallowed
# (FiftyOne's App launch polls its server under a bare `except:`) still ends the review

STOPS = (KeyboardInterrupt, Stopped)  # what ends a review: Ctrl-C, or a signal under `stop_signals`


@contextlib.contextmanager
def stop_signals() -> Iterator[None]:
    """While open, SIGTERM and SIGHUP (a closed terminal) raise `Stopped` and Ctrl-C
    KeyboardInterrupt, each remembered for `serve` too, in case library code swallowed it.
    Opened before the App starts: a signal that came between the App's start and the wait would
    otherwise kill the review, losing the last tags and leaving the App server and MongoDB
    running (seen under load)."""

    def stop(signum, frame):
        _STOP_REQUESTED.set()
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise Stopped(signal.Signals(signum).name)

    _STOP_REQUESTED.clear()
    old = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def serve(sync, start=None, every: float = 2.0) -> int:
    """Call `start()` (the App's launch), then `sync()` (it records the App's new tags as
    decisions) every `every` seconds until one of `STOPS`, at any moment from the start on, and
    once at the end, so stopping the review loses nothing. Returns the decisions recorded in all."""
    import time

    total = 0
    try:
        if start is not None:
            start()
        while True:
            if _STOP_REQUESTED.is_set():  # a signal that library code caught (a bare except)
                raise Stopped("a stop signal that the App's code caught")
            time.sleep(every)
            total += sync()
    except STOPS as e:
        log.info("review stopped (%s)", type(e).__name__ if isinstance(e, KeyboardInterrupt) else e)
    return total + sync()


def stop_fiftyone() -> None:
    """Close the App session, then stop the App server and the MongoDB this process's FiftyOne
    started: every process below this one, signalled by PID (the launcher alone leaves them)."""
    import sys

    import psutil

    if "fiftyone" in sys.modules:  # close the session first, or its client keeps reconnecting
        import fiftyone as fo

        try:
            fo.close_app()
        except Exception as e:  # noqa: BLE001 - best effort: the processes are stopped anyway
            log.warning("closing the FiftyOne App session: %s", e)
    me = psutil.Process()
    for child in me.children(recursive=True):
        try:
            os.kill(child.pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass
    psutil.wait_procs(me.children(recursive=True), timeout=10)
