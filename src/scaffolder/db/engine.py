"""Engine creation and migrations."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

#: Execution option that makes a SQLite transaction take the write lock when it begins.
IMMEDIATE = "scaffolder_immediate"


_WRITE_LOCKS: weakref.WeakKeyDictionary[sa.Engine, threading.RLock] = weakref.WeakKeyDictionary()
_NO_LOCK = nullcontext()


def write_lock(engine: sa.Engine) -> AbstractContextManager[Any]:
    """The lock this process's SQLite writers take before they write.

    SQLite admits one writer at a time, and a writer that finds the database locked sleeps in
    SQLite's busy handler (1, 2, 5, 10, ... ms) even when the lock is freed a microsecond
    later: eight tasks writing their events at once spent most of their time asleep there.
    Queuing on a Python lock wakes the next writer at once. Other processes still meet the
    busy timeout. PostgreSQL needs no such lock.
    """
    return _WRITE_LOCKS.get(engine, _NO_LOCK)


@contextmanager
def write_connection(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A connection in a transaction that will write (IMMEDIATE on SQLite), committed on exit."""
    with write_lock(engine), engine.connect() as conn:
        conn = conn.execution_options(**{IMMEDIATE: True})
        with conn.begin():
            yield conn


def create_engine(url: str) -> sa.Engine:
    """An engine for ``url``; SQLite gets WAL, a busy timeout and foreign keys.

    The parent directory of a SQLite file is created, so the default
    ``sqlite:///var/scaffolder.db`` works on a fresh checkout.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return sa.create_engine(url, pool_pre_ping=True, future=True)

    database = parsed.database or ""
    memory = database in ("", ":memory:")
    if not memory:
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    kwargs: dict[str, Any] = {"connect_args": {"check_same_thread": False, "timeout": 30}}
    if memory:
        kwargs["poolclass"] = sa.StaticPool
    engine = sa.create_engine(url, future=True, **kwargs)
    _WRITE_LOCKS[engine] = threading.RLock()

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not pysqlite, decide when a transaction begins (see SQLAlchemy's
        # "Serializable isolation / Savepoints / Transactional DDL" notes for pysqlite).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        if not memory:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        # A writer asks for IMMEDIATE (see `write_connection`): it takes the write lock up
        # front, so a read-then-write transaction never fails on a stale WAL snapshot.
        immediate = conn.get_execution_options().get(IMMEDIATE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def upgrade(engine: sa.Engine, revision: str = "head") -> None:
    """Run the Alembic migrations up to ``revision``."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
