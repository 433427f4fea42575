"""Engine creation and migrations."""

from __future__ import annotations

import select
import threading
import weakref
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from scaffolder.errors import InputError

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

#: Advisory lock key that serializes migrations between processes on PostgreSQL
#: (``int.from_bytes(b"scaffold", "big") >> 1``, any constant of our own would do).
MIGRATION_LOCK_KEY = int.from_bytes(b"scaffold", "big") >> 1
#: Connections a PostgreSQL engine keeps, and how many more it may open under load.
PG_POOL_SIZE = 10
PG_POOL_OVERFLOW = 30
#: libpq keepalive parameters for PostgreSQL connections.
PG_KEEPALIVES = {
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
}

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
    ``sqlite:///var/scaffolder.db`` works on a fresh checkout. PostgreSQL goes through
    psycopg 3 (``postgresql://`` and ``postgres://`` included), whose ``LISTEN`` support the
    task broker uses.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() in ("postgresql", "postgres"):
        return _create_postgres_engine(parsed)
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


def _create_postgres_engine(url: sa.URL) -> sa.Engine:
    # `postgresql://` alone would mean psycopg2, which we do not ship; psycopg (3) is the driver.
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    if url.drivername != "postgresql+psycopg":
        raise InputError(
            "backend.database.connection: PostgreSQL is used through psycopg 3 "
            f"(postgresql+psycopg://...), not {url.drivername}"
        )
    # TCP keepalives, unless the URL sets its own: a peer that vanished without a word (a
    # failover, a dropped NAT entry) is noticed in about a minute, by the pool and by the
    # LISTEN connection, which otherwise waits on its socket for good.
    keepalives = {k: v for k, v in PG_KEEPALIVES.items() if k not in url.query}
    engine = sa.create_engine(
        url,
        future=True,
        connect_args=keepalives,
        # Liveness is checked at checkout without a round trip (`_check_idle_socket`).
        pool_pre_ping=False,
        # Each worker slot, the event writer, the heartbeat and the HTTP threads take a
        # connection for one statement or one short transaction at a time.
        pool_size=PG_POOL_SIZE,
        max_overflow=PG_POOL_OVERFLOW,
    )
    from scaffolder.db.postgres import track_backend_pids

    track_backend_pids(engine)
    sa.event.listen(engine, "checkout", _check_idle_socket)
    return engine


def _check_idle_socket(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """Refuse a pooled PostgreSQL connection the server has closed; the pool makes another.

    An idle connection has nothing to read: anything readable on its socket is the server
    saying goodbye (a restart, an administrator's terminate, an idle timeout) or the EOF that
    follows. Checking costs a ``select`` instead of the round trip of a ping, and every round
    trip is one more wait for the GIL in a process whose task threads keep it busy.
    """
    if dbapi_connection.closed or dbapi_connection.broken:
        raise sa.exc.DisconnectionError("the connection is closed")
    try:
        readable, _, _ = select.select([dbapi_connection.fileno()], [], [], 0)
    except (OSError, ValueError) as exc:
        raise sa.exc.DisconnectionError(str(exc)) from exc
    if readable:
        raise sa.exc.DisconnectionError("the server closed the connection")


def upgrade(engine: sa.Engine, revision: str = "head") -> None:
    """Run the Alembic migrations up to ``revision``.

    On PostgreSQL the migration transaction first takes an advisory lock, so processes that
    start together migrate one after the other: the first upgrades, the others find the
    schema at head and do nothing. (DDL is transactional there, so the lock is held until
    the new schema is committed.)
    """
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(
                sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
            )
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
