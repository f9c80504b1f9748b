"""Training runs recorded in the findings store.

The layer above `labelaudit.train` and `labelaudit.store`: training itself never writes the
store. Rank 0 records the run's resolved config, seed, checkpoint and final status; a store that
cannot be written only logs a warning, because the training must not depend on it. A training
killed outright (SIGKILL, power loss) cannot record its end: its row names its host and process,
and the next training recorded in the store marks it "interrupted" once that process is gone.

    with recorded_training(cfg, run_dir, db_url):
        train(cfg, run_dir)
"""
from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from labelaudit.train.config import TrainConfig
from labelaudit.train.engine import CHECKPOINT

log = logging.getLogger(__name__)


@contextmanager
def recorded_training(cfg: TrainConfig, run_dir: str | Path, db_url: str | None = None) -> Iterator[None]:
    """Record the run as started, then as done, interrupted (Ctrl-C) or failed.

    `db_url` defaults to `$LABELAUDIT_DB`, else `<run_dir>/labelaudit.db`.
    """
    record = _RunRecord(cfg, Path(run_dir), db_url)
    status = "failed"
    try:
        yield
        status = "done"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        record.finish(status)


class _RunRecord:
    """The train run's row in the store (rank 0 only)."""

    def __init__(self, cfg: TrainConfig, run_dir: Path, db_url: str | None) -> None:
        self.store = self.run_id = None
        if int(os.environ.get("RANK", "0")) != 0:
            return
        try:
            from labelaudit.store import default_db_url, open_db, repo

            run_dir.mkdir(parents=True, exist_ok=True)
            self.store = open_db(db_url or default_db_url(run_dir))
            source = cfg.data.open_source()
            with self.store.session() as s:
                mark_dead_trainings(s)
                ds = repo.get_or_create_dataset(s, source.kind, str(source.root),
                                                list(source.classes.names), source.merge_order)
                config = {**cfg.to_dict(), "run_dir": str(run_dir.resolve()), "owner": _owner()}
                run = repo.start_run(s, "train", ds, config, seed=cfg.seed,
                                     checkpoint=run_dir.resolve() / CHECKPOINT)
                self.run_id = run.id
        except Exception as e:  # the training itself must not depend on the store
            log.warning("could not record the run in the store: %s", e)
            self.store = None

    def finish(self, status: str) -> None:
        if self.store is None or self.run_id is None:
            return
        from labelaudit.store import Run, repo

        try:
            with self.store.session() as s:
                repo.finish_run(s, s.get(Run, self.run_id), status)
        except Exception as e:
            log.warning("could not record the run's end in the store: %s", e)
        finally:
            self.store.close()


def _owner() -> dict[str, object]:
    return {"host": socket.gethostname(), "pid": os.getpid()}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        pass
    return True


def mark_dead_trainings(session) -> list[int]:
    """Mark "interrupted" the training rows still "running" whose process on this host is gone
    (killed without a chance to record its end); their ids."""
    from sqlalchemy import select

    from labelaudit.store import Run, repo

    host, dead = socket.gethostname(), []
    for run in session.scalars(select(Run).where(Run.kind == "train", Run.status == "running")):
        owner = (run.config or {}).get("owner") or {}
        if owner.get("host") == host and isinstance(owner.get("pid"), int) and not _alive(owner["pid"]):
            dead.append(run.id)
    for run_id in dead:
        repo.finish_run(session, session.get(Run, run_id), "interrupted")
        log.info("training run %d: its process is gone; marked interrupted", run_id)
    return dead
