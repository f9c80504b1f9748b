"""Start the FiftyOne App on a review dataset, and stop what FiftyOne started."""
from __future__ import annotations

import logging
import os
import signal

log = logging.getLogger(__name__)


def launch(dataset, port: int = 5151, address: str = "127.0.0.1", remote: bool = True):
    """The App session on `dataset`, opened on its worst-first view (remote: serve, no browser)."""
    import fiftyone as fo

    view = dataset.load_saved_view("worst-first") if dataset.has_saved_view("worst-first") else None
    return fo.launch_app(dataset, view=view, port=port, address=address, remote=remote,
                         auto=False)


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
