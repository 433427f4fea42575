"""PostgreSQL ``LISTEN/NOTIFY``: wake-ups that cross process boundaries.

Writers call ``pg_notify`` inside the transaction that stores a change, so a notification is
delivered exactly when the change is visible to others (PostgreSQL sends it at commit, and
folds identical ones of one transaction into one). Each process runs one `PgListener`: a
thread on a dedicated connection that hands each notification to a callback.

A process does not need its own notifications, since it wakes its readers in memory already;
the listener skips notifications sent by the backends of its engine's pool
(`track_backend_pids`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import threading
import weakref
from collections.abc import Callable, Mapping
from typing import Any

import sqlalchemy as sa

log = logging.getLogger(__name__)

#: Payload: a task id; sent after events of that task were stored (log batch, completion,
#: cancel, retry).
TASK_EVENTS_CHANNEL = "scaffolder_task_events"
#: Payload: a task id; sent when a task becomes ``open`` (dispatched or retried).
TASKS_CHANNEL = "scaffolder_tasks"
#: Payload: a task id; sent when a cancel is recorded, so the worker running it stops at once.
TASK_CANCELS_CHANNEL = "scaffolder_task_cancels"

#: How long the listener waits for a notification before it checks its connection.
IDLE_CHECK_SECONDS = 30.0
#: Reconnect back-off after the listener lost its connection: doubling from/to.
RECONNECT_MIN_SECONDS = 0.5
RECONNECT_MAX_SECONDS = 30.0

_PID_KEY = "scaffolder_backend_pid"
_BACKEND_PIDS: weakref.WeakKeyDictionary[sa.Engine, set[int]] = weakref.WeakKeyDictionary()


def track_backend_pids(engine: sa.Engine) -> None:
    """Keep the server process ids of ``engine``'s pooled connections (see `PgListener`)."""
    pids: set[int] = set()
    _BACKEND_PIDS[engine] = pids

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, record: Any) -> None:
        pid = int(dbapi_connection.info.backend_pid)
        record.info[_PID_KEY] = pid
        pids.add(pid)

    @sa.event.listens_for(engine, "close")
    @sa.event.listens_for(engine, "detach")
    def _on_gone(_dbapi_connection: Any, record: Any) -> None:
        pid = record.info.pop(_PID_KEY, None)
        if pid is not None:
            pids.discard(pid)


def backend_pids(engine: sa.Engine) -> set[int]:
    """The live set of server process ids of ``engine``'s own connections."""
    return _BACKEND_PIDS.get(engine, set())


class PgListener:
    """One thread, one dedicated connection, ``LISTEN`` on a few channels.

    ``handlers`` maps a channel to a callback taking the payload. ``on_reset`` is called each
    time the listener connects or loses its connection: notifications may have been missed
    meanwhile, so whoever waits should look at the database again.
    """

    def __init__(
        self,
        engine: sa.Engine,
        handlers: Mapping[str, Callable[[str], None]],
        on_reset: Callable[[], None],
    ) -> None:
        self._engine = engine
        self._handlers = dict(handlers)
        self._on_reset = on_reset
        self._own_pids = backend_pids(engine)
        self._stopping = threading.Event()
        self._connected = threading.Event()
        self._wake_read, self._wake_write = os.pipe()
        self._thread: threading.Thread | None = None

    @property
    def connected(self) -> bool:
        """Whether notifications are being received now."""
        return self._connected.is_set()

    def start(self) -> None:
        """Start the listener thread (it connects, and reconnects, on its own)."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="scaffolder-pg-listener", daemon=True
            )
            self._thread.start()

    def wait_connected(self, timeout: float) -> bool:
        """Block until the listener is connected (tests, and start-up ordering)."""
        return self._connected.wait(timeout)

    def close(self) -> None:
        """Stop the thread and close its connection."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        os.write(self._wake_write, b"x")
        if self._thread is not None:
            self._thread.join(timeout=5)
            if self._thread.is_alive():  # stuck in a callback: leave it its pipe
                log.warning("the LISTEN thread did not stop in time")
                return
            self._thread = None
        os.close(self._wake_read)
        os.close(self._wake_write)

    # --- the thread ----------------------------------------------------------------------

    def _run(self) -> None:
        backoff = RECONNECT_MIN_SECONDS
        while not self._stopping.is_set():
            try:
                raw = self._engine.raw_connection()
            except Exception as exc:
                log.warning("LISTEN connection failed (%s); retrying in %.1fs", exc, backoff)
                self._sleep(backoff)
                backoff = min(backoff * 2, RECONNECT_MAX_SECONDS)
                continue
            connection = raw.dbapi_connection
            # Out of the pool for good: it sits in LISTEN for the life of the process.
            raw.detach()
            try:
                self._listen(connection)
                backoff = RECONNECT_MIN_SECONDS
            except Exception as exc:
                if not self._stopping.is_set():
                    log.warning("LISTEN connection lost (%s); reconnecting", exc)
            finally:
                was_connected = self._connected.is_set()
                self._connected.clear()
                # Detached from the pool, so closed here: the pool's close would first roll
                # back, fail on a lost connection, and leave it open for the garbage collector.
                if connection is not None:
                    with contextlib.suppress(Exception):
                        connection.close()
                if was_connected and not self._stopping.is_set():
                    self._on_reset()
            if not self._stopping.is_set():
                self._sleep(backoff)

    def _listen(self, conn: Any) -> None:
        from psycopg import sql

        conn.rollback()  # the pool's ping may have opened a transaction
        conn.autocommit = True
        for channel in self._handlers:
            conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
        self._connected.set()
        self._on_reset()
        while not self._stopping.is_set():
            readable, _, _ = select.select(
                [conn.fileno(), self._wake_read], [], [], IDLE_CHECK_SECONDS
            )
            if self._wake_read in readable:
                return
            if not readable:
                conn.execute("SELECT 1")  # a dead peer shows up here, not in select
                continue
            for notify in conn.notifies(timeout=0):
                if notify.pid in self._own_pids:
                    continue
                handler = self._handlers.get(notify.channel)
                if handler is None:
                    continue
                try:
                    handler(notify.payload)
                except Exception:
                    log.exception("handling a %s notification failed", notify.channel)

    def _sleep(self, seconds: float) -> None:
        select.select([self._wake_read], [], [], seconds)
