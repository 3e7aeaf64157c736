"""A real PostgreSQL server for tests, from the Debian binaries, on 127.0.0.1.

``PostgresServer`` runs ``initdb`` into a temporary directory (trust
authentication for local and 127.0.0.1 connections; a password is set for the
superuser anyway so that configs that carry one work), then ``postgres`` on a
free TCP port of 127.0.0.1 with its unix socket in that directory too, so it
never touches the system's ``/var/run/postgresql`` or another cluster.  The
data directory survives :meth:`~PostgresServer.stop`, so :meth:`start` after
it brings the same database back on the same port (the "database down" tests).

Binaries: ``SNOWMELT_PG_BINDIR`` if set, else the newest
``/usr/lib/postgresql/*/bin`` (Debian's ``postgresql`` package), else
``initdb``/``postgres`` on ``PATH``.  Postgres refuses to run as root: as root
the server runs as the ``postgres`` system user (created by the Debian package)
through ``setpriv``, and the directory is given to that user.

``POSTGRES_URL`` (``postgresql://user:password@host:port/dbname``) makes
:func:`postgres_from_env` return an :class:`ExternalPostgres` for that server
instead: nothing is started, and ``stop``/``start`` raise
(``supports_stop = False``).

Every wait polls with a deadline (the server answering ``SELECT 1``); a failed
start raises :class:`PostgresStartError` with the tail of the server log.

Usage::

    with postgres_from_env() as pg:
        pg.execute("CREATE TABLE t (id int)")
        pg.host, pg.port, pg.user, pg.password, pg.database
        pg.stop(); pg.start()   # same port, same data

Command line: ``python -m tests.services.postgres`` runs one in the foreground.
"""
from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from tests.services.server import ExternalServer, ServerProcess, free_port

USER = "snowmelt"
PASSWORD = "snowmelt-test"
DATABASE = "snowmelt"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0


class PostgresStartError(RuntimeError):
    """The server did not become ready; the message ends with its log tail."""


def find_bindir() -> Path:
    """The directory with ``initdb`` and ``postgres`` (see the module docstring)."""
    env = os.environ.get("SNOWMELT_PG_BINDIR")
    if env:
        return Path(env)
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"),
                      key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    if versions and (versions[-1] / "postgres").exists():
        return versions[-1]
    found = shutil.which("postgres")
    if found:
        return Path(found).resolve().parent
    raise FileNotFoundError("no PostgreSQL binaries: apt-get install -y postgresql (or set SNOWMELT_PG_BINDIR)")


class PostgresServer(ServerProcess):
    """One throw-away PostgreSQL cluster (see the module docstring)."""

    kind = "postgres"
    process_name = "postgres"
    display_name = "postgres"
    start_error = PostgresStartError
    start_timeout = START_TIMEOUT
    stop_timeout = STOP_TIMEOUT
    stop_signal = signal.SIGINT  # fast shutdown

    def __init__(self, bindir: Path | None = None):
        self.bindir = bindir or find_bindir()
        super().__init__("snowmelt-pg-", "postgres.log")
        self.port = free_port()
        self.user, self.password, self.database = USER, PASSWORD, DATABASE
        self.socket_dir = self.root / "socket"
        self._as_user: list[str] = []
        self._initialised = False

    # ------------------------------------------------------------------ set-up

    def _prepare(self) -> None:
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        self.log_path.touch()
        if os.geteuid() == 0:
            try:
                entry = pwd.getpwnam("postgres")
            except KeyError:
                raise PostgresStartError("running as root and there is no 'postgres' user to run the server as")
            for path in (self.root, self.socket_dir, self.log_path):
                os.chown(path, entry.pw_uid, entry.pw_gid)
            self._as_user = ["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--init-groups", "--"]
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.password + "\n")
        if self._as_user:
            entry = pwd.getpwnam("postgres")
            os.chown(pwfile, entry.pw_uid, entry.pw_gid)
        result = subprocess.run(
            [*self._as_user, str(self.bindir / "initdb"), "-D", str(self.data_dir), "-U", self.user,
             f"--pwfile={pwfile}", "--auth-local=trust", "--auth-host=trust", "-E", "UTF8",
             "--locale=C", "--no-sync"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=START_TIMEOUT)
        pwfile.unlink()
        if result.returncode != 0:
            raise PostgresStartError(f"initdb failed ({result.returncode}):\n{result.stdout[-3000:]}")
        self._initialised = True

    # ------------------------------------------------------------------ lifecycle

    def prepare(self) -> None:
        if not self._initialised:
            self._prepare()

    def command(self) -> list[str]:
        return [*self._as_user, str(self.bindir / "postgres"), "-D", str(self.data_dir),
                "-c", f"listen_addresses={self.host}", "-p", str(self.port),
                "-c", f"unix_socket_directories={self.socket_dir}", "-c", "fsync=off",
                "-c", "synchronous_commit=off", "-c", "full_page_writes=off", "-c", "max_connections=50",
                "-c", "shared_buffers=32MB", "-c", "logging_collector=off"]

    def ready_probe(self):
        """Ready once ``SELECT 1`` answers on the TCP port (the database is created then)."""
        return self._create_database

    def _create_database(self) -> None:
        import psycopg

        with psycopg.connect(host=self.host, port=self.port, user=self.user, password=self.password,
                             dbname="postgres", connect_timeout=2, autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [self.database]).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{self.database}"')

    # ------------------------------------------------------------------ use

    def connect(self, **kwargs: Any) -> Any:
        import psycopg

        return psycopg.connect(host=self.host, port=self.port, user=self.user, password=self.password,
                               dbname=self.database, autocommit=True, **kwargs)

    def execute(self, sql: str, params: Any = None) -> list[tuple]:
        """Run one statement on a fresh connection; its rows (``[]`` for none)."""
        with self.connect() as conn:
            cur = conn.execute(sql, params)
            return cur.fetchall() if cur.description else []

    def describe(self) -> str:
        return f"PostgreSQL {self.bindir.parent.name} from {self.bindir} on {self.host}:{self.port}"


class ExternalPostgres(ExternalServer, PostgresServer):
    """A running server named by ``POSTGRES_URL``: nothing is started or stopped."""

    cannot_stop = "an external PostgreSQL cannot be stopped by the tests"

    def __init__(self, url: str):
        parsed = urlparse(url)
        self.host = parsed.hostname or "127.0.0.1"
        self.port = parsed.port or 5432
        self.user = unquote(parsed.username or "postgres")
        self.password = unquote(parsed.password or "")
        self.database = (parsed.path or "/postgres").lstrip("/") or "postgres"
        self.proc = None
        self.start_seconds = 0.0

    def start(self) -> ExternalPostgres:
        return self.wait_answering(lambda: self.execute("SELECT 1"))

    def describe(self) -> str:
        return f"external PostgreSQL at {self.host}:{self.port}"


def postgres_from_env() -> PostgresServer:
    """:class:`ExternalPostgres` when ``POSTGRES_URL`` is set, else a fresh :class:`PostgresServer`."""
    url = os.environ.get("POSTGRES_URL")
    return ExternalPostgres(url) if url else PostgresServer()


if __name__ == "__main__":
    with postgres_from_env() as pg:
        print(f"{pg.describe()} ready in {pg.start_seconds:.1f}s: "
              f"postgresql://{pg.user}:{pg.password}@{pg.host}:{pg.port}/{pg.database} (Ctrl-C stops it)")
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()
