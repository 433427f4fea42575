"""A throwaway PostgreSQL cluster for the tests, and one fresh database per test.

The cluster is started from the Debian ``postgresql`` binaries (``initdb``/``pg_ctl``) in a
temp dir, on a free loopback port, with trust auth and durability off (a test database is
thrown away). ``SCAFFOLDER_TEST_POSTGRES_URL`` names an existing server instead; it must let
its user create databases.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

from scaffolder.db.engine import create_engine, upgrade

ENV_URL = "SCAFFOLDER_TEST_POSTGRES_URL"
_PREFIX = "scaffolder-pg-"
_OWNER_FILE = "owner"
_TEMPLATE = "scaffolder_template"
_SERVER_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "400",
    "shared_buffers": "64MB",
}


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL binaries (or no way to run them) on this machine."""


def find_bindir() -> Path:
    """The directory holding ``initdb`` and ``pg_ctl`` (newest Debian version first)."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True
    )
    for directory in candidates:
        if (Path(directory) / "initdb").exists() and (Path(directory) / "pg_ctl").exists():
            return Path(directory)
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb and pg_ctl:
        return Path(os.path.realpath(initdb)).parent
    raise PostgresUnavailable(
        "PostgreSQL binaries (initdb, pg_ctl) not found: install Debian's `postgresql` package "
        f"(.ci/run does), or set {ENV_URL} to a server where the tests may create databases"
    )


def _process_identity(pid: int) -> str:
    """``pid:start-time``, which a recycled pid does not repeat; ``""`` if it is not running."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    # Field 22 is the start time; fields after the parenthesised command name are plain.
    return f"{pid}:{stat.rsplit(')', 1)[1].split()[19]}"


def free_port() -> int:
    """A TCP port free on loopback now (the tests' servers and clusters listen there)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PostgresServer:
    """A server the tests may create databases on, given by an admin SQLAlchemy URL."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self._names = itertools.count()
        self._prefix = f"scaffolder_test_{uuid.uuid4().hex[:8]}"
        self._template: str | None = None
        self._version: int | None = None

    def _conninfo(self, database: str | None = None) -> str:
        url = make_url(self.admin_url)
        if database is not None:
            url = url.set(database=database)
        return url.set(drivername="postgresql").render_as_string(hide_password=False)

    def _admin(self, statement: sql.Composable) -> None:
        with psycopg.connect(self._conninfo(), autocommit=True) as conn:
            conn.execute(statement)

    def _server_version(self) -> int:
        if self._version is None:
            with psycopg.connect(self._conninfo()) as conn:
                self._version = conn.info.server_version
        return self._version

    def url(self, database: str) -> str:
        """The SQLAlchemy URL of ``database`` on this server (psycopg driver)."""
        url = make_url(self.admin_url).set(drivername="postgresql+psycopg", database=database)
        return url.render_as_string(hide_password=False)

    def _ensure_template(self) -> str:
        # Migrated once: each test's database is a copy, so a test does not pay the migrations.
        if self._template is None:
            name = f"{self._prefix}_{_TEMPLATE}"
            self._admin(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            engine = create_engine(self.url(name))
            try:
                upgrade(engine)
            finally:
                engine.dispose()
            self._template = name
        return self._template

    @contextmanager
    def database(self, *, migrated: bool = True) -> Iterator[str]:
        """A fresh database for one test (migrated, or empty); its URL. Dropped afterwards."""
        template = self._ensure_template() if migrated else "template0"
        name = f"{self._prefix}_{next(self._names)}"
        create = "CREATE DATABASE {} TEMPLATE {}"
        if self._server_version() >= 150000:
            # Copying the files beats writing them through the WAL (15's default) for a
            # database this small: about half the time.
            create += " STRATEGY FILE_COPY"
        self._admin(sql.SQL(create).format(sql.Identifier(name), sql.Identifier(template)))
        try:
            yield self.url(name)
        finally:
            self._admin(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    def close(self) -> None:
        """Drop the template database (the test databases are dropped one by one)."""
        if self._template is not None:
            self._admin(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(self._template)
                )
            )


class LocalCluster:
    """``initdb`` + ``pg_ctl start`` in a temp dir; as the ``postgres`` user when run as root."""

    def __init__(self) -> None:
        self.bindir = find_bindir()
        self._user = "postgres" if os.geteuid() == 0 else None
        if self._user is not None:
            try:
                self._owner = pwd.getpwnam(self._user)
            except KeyError as exc:
                raise PostgresUnavailable(
                    "running as root, and initdb refuses root: no `postgres` OS user to run "
                    "it as (Debian's postgresql package creates one)"
                ) from exc
        self._reap_orphans()
        # Not under pytest's tmp dir: that one is private to root, and the server runs as
        # `postgres`.
        self.root = Path(tempfile.mkdtemp(prefix=_PREFIX))
        (self.root / _OWNER_FILE).write_text(_process_identity(os.getpid()))
        self.data = self.root / "data"
        self.sockets = self.root / "sockets"
        self.port = 0

    def _reap_orphans(self) -> None:
        # A test run that was killed never stopped its cluster: stop those whose owner is gone.
        for root in Path(tempfile.gettempdir()).glob(f"{_PREFIX}*"):
            try:
                owner = (root / _OWNER_FILE).read_text()
                pid = int(owner.split(":", 1)[0])
            except (OSError, ValueError):
                continue
            if _process_identity(pid) == owner:
                continue
            if (root / "data" / "postmaster.pid").exists():
                with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                    self._run("pg_ctl", "stop", "-m", "immediate", "-D", str(root / "data"))
            shutil.rmtree(root, ignore_errors=True)

    def _run(self, *args: str) -> None:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self._user is not None:
            command = ["runuser", "-u", self._user, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)
        if result.returncode != 0:
            raise RuntimeError(
                f"{args[0]} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
            )

    def start(self) -> str:
        """Create and start the cluster; return its admin SQLAlchemy URL."""
        self.sockets.mkdir()
        if self._user is not None:
            for path in (self.root, self.sockets):
                os.chown(path, self._owner.pw_uid, self._owner.pw_gid)
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        )
        options = " ".join(f"-c {key}={value}" for key, value in _SERVER_SETTINGS.items())
        for _attempt in range(3):  # the free port may be taken between probe and start
            self.port = free_port()
            try:
                self._run(
                    "pg_ctl",
                    "start",
                    "-w",
                    "-t",
                    "60",
                    "-D",
                    str(self.data),
                    "-l",
                    str(self.root / "server.log"),
                    "-o",
                    f"-p {self.port} -k {self.sockets} {options}",
                )
                break
            except RuntimeError:
                if _attempt == 2:
                    raise
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def restart(self) -> None:
        """Restart the server (``pg_ctl restart -m fast``): every connection is cut, the
        port stays."""
        self._run(
            "pg_ctl",
            "restart",
            "-w",
            "-t",
            "60",
            "-m",
            "fast",
            "-D",
            str(self.data),
            # Without it the server would write to our pipe, which would then never close.
            "-l",
            str(self.root / "server.log"),
        )

    def stop(self) -> None:
        """Stop the server and remove its files."""
        try:
            if (self.data / "postmaster.pid").exists():
                self._run("pg_ctl", "stop", "-m", "immediate", "-D", str(self.data))
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
