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

import atexit
import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

USER = "snowmelt"
PASSWORD = "snowmelt-test"
DATABASE = "snowmelt"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0

_LIVE: set[PostgresServer] = set()


@atexit.register
def _kill_live() -> None:
    for server in list(_LIVE):
        with contextlib.suppress(Exception):
            server.kill()


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


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PostgresServer:
    """One throw-away PostgreSQL cluster (see the module docstring)."""

    kind = "postgres"
    supports_stop = True

    def __init__(self, bindir: Path | None = None):
        self.bindir = bindir or find_bindir()
        self.host = "127.0.0.1"
        self.port = _free_port()
        self.user, self.password, self.database = USER, PASSWORD, DATABASE
        self.root = Path(tempfile.mkdtemp(prefix="snowmelt-pg-"))
        self.data_dir = self.root / "data"
        self.socket_dir = self.root / "socket"
        self.log_path = self.root / "postgres.log"
        self.proc: subprocess.Popen | None = None
        self._as_user: list[str] = []
        self._initialised = False
        self.start_seconds = 0.0

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

    def start(self) -> PostgresServer:
        """Start (initdb the first time); returns once ``SELECT 1`` answers on the TCP port."""
        t0 = time.monotonic()
        if not self._initialised:
            self._prepare()
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [*self._as_user, str(self.bindir / "postgres"), "-D", str(self.data_dir),
             "-c", f"listen_addresses={self.host}", "-p", str(self.port),
             "-c", f"unix_socket_directories={self.socket_dir}", "-c", "fsync=off",
             "-c", "synchronous_commit=off", "-c", "full_page_writes=off", "-c", "max_connections=50",
             "-c", "shared_buffers=32MB", "-c", "logging_collector=off"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        _LIVE.add(self)
        deadline = time.monotonic() + START_TIMEOUT
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                _LIVE.discard(self)
                raise PostgresStartError(f"postgres exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                self._create_database()
                self.start_seconds = time.monotonic() - t0
                return self
            except Exception as exc:  # not up yet
                last = exc
                time.sleep(0.05)
        self.kill()
        raise PostgresStartError(f"postgres not ready in {START_TIMEOUT:.0f}s ({last}):\n{self.log_tail()}")

    def _create_database(self) -> None:
        import psycopg

        with psycopg.connect(host=self.host, port=self.port, user=self.user, password=self.password,
                             dbname="postgres", connect_timeout=2, autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [self.database]).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{self.database}"')

    def stop(self) -> None:
        """Fast shutdown (SIGINT), wait with a deadline, then SIGKILL. The data stays."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.kill()
        self.proc = None
        _LIVE.discard(self)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=STOP_TIMEOUT)
        self.proc = None
        _LIVE.discard(self)

    def close(self) -> None:
        """Stop and delete the cluster."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

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

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def describe(self) -> str:
        return f"PostgreSQL {self.bindir.parent.name} from {self.bindir} on {self.host}:{self.port}"


class ExternalPostgres(PostgresServer):
    """A running server named by ``POSTGRES_URL``: nothing is started or stopped."""

    kind = "external"
    supports_stop = False

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
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                self.execute("SELECT 1")
                return self
            except Exception as exc:
                if time.monotonic() > deadline:
                    raise PostgresStartError(f"{self.describe()} does not answer: {exc}") from None
                time.sleep(0.1)

    def stop(self) -> None:
        raise RuntimeError("an external PostgreSQL cannot be stopped by the tests")

    kill = stop

    def close(self) -> None:
        pass

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
