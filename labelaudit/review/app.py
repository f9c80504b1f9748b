"""Start the FiftyOne App on a review dataset, and stop what FiftyOne started."""
from __future__ import annotations

import logging
import os
import signal

log = logging.getLogger(__name__)


def launch(dataset, port: int = 5151, address: str = "127.0.0.1", remote: bool = True,
           view: str = "worst-first"):
    """The App session on `dataset`, opened on the saved `view` ("worst-first": images;
    "findings-first": one tile per finding) when it has it (remote: serve, no browser)."""
    import fiftyone as fo

    view = dataset.load_saved_view(view) if dataset.has_saved_view(view) else None
    return fo.launch_app(dataset, view=view, port=port, address=address, remote=remote,
                         auto=False)


class _Stop(Exception):
    """SIGTERM or SIGHUP reached the review: end it like Ctrl-C."""


def serve(sync, every: float = 2.0) -> int:
    """Wait until Ctrl-C, SIGTERM or SIGHUP (a closed terminal), calling `sync()` (it records
    the App's new tags as decisions) every `every` seconds and once at the end, so stopping the
    review in any of these ways loses nothing. Returns the decisions recorded in all."""
    import time

    def stop(signum, frame):
        raise _Stop(signal.Signals(signum).name)

    old = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGHUP)}
    total = 0
    try:
        while True:
            time.sleep(every)
            total += sync()
    except (KeyboardInterrupt, _Stop) as e:
        log.info("review stopped (%s)", type(e).__name__ if isinstance(e, KeyboardInterrupt) else e)
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
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
