"""A throwaway PostgreSQL server (Debian's postgresql package) for Airflow's metadata database."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from localdev.harness.process import (
    HarnessError,
    ManagedProcess,
    Service,
    free_port,
    run_logged,
    wait_until,
)

PG_USER = "postgres"


def postgres_bindir() -> Path:
    """The newest `/usr/lib/postgresql/<major>/bin` (Debian keeps server binaries off PATH)."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"),
        key=lambda path: int(path.parent.parent.name) if path.parent.parent.name.isdigit() else 0,
    )
    if not candidates:
        raise HarnessError("PostgreSQL server binaries not found under /usr/lib/postgresql: apt-get install postgresql")
    return candidates[-1].parent


class Postgres(Service):
    """initdb into a temp dir, run `postgres` on 127.0.0.1:<free port>, create one database.

    As root, the cluster belongs to the `postgres` OS user (initdb refuses root). Durability is
    off (fsync, synchronous_commit, full_page_writes): the data dies with the test run.
    """

    def __init__(self, log_dir: Path, *, database: str = "airflow", port: int | None = None) -> None:
        self.log_dir = log_dir
        self.log_path = log_dir / "postgres.log"
        self.database = database
        self.port = port or free_port()
        self.bindir = postgres_bindir()
        self._os_user = PG_USER if os.geteuid() == 0 else None
        self._tmp: Path | None = None
        self._process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the test database (trust auth on loopback: no password)."""
        return self.url_of(self.database)

    def url_of(self, database: str) -> str:
        """SQLAlchemy URL of another database on this server."""
        return f"postgresql+psycopg2://{PG_USER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str, *, template: str | None = None) -> str:
        """`CREATE DATABASE name [TEMPLATE template]` (a template is copied file by file: instant); its URL."""
        _check_identifier(name)
        sql = f'CREATE DATABASE "{name}"'
        if template is not None:
            _check_identifier(template)
            sql += f' TEMPLATE "{template}"'
        self.psql(sql, what=f"create database {name}")
        return self.url_of(name)

    def drop_database(self, name: str) -> None:
        """`DROP DATABASE IF EXISTS name WITH (FORCE)` (ends its connections first)."""
        _check_identifier(name)
        self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', what=f"drop database {name}")

    def psql(self, sql: str, *, what: str) -> None:
        """Run one SQL statement as the superuser (outside a transaction, as CREATE DATABASE needs)."""
        run_logged(
            [
                str(self.bindir / "psql"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                PG_USER,
                "-d",
                "postgres",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ],
            self.log_path,
            what=what,
            timeout=120,
        )

    @property
    def dsn(self) -> str:
        """libpq connection string of the test database."""
        return f"host=127.0.0.1 port={self.port} user={PG_USER} dbname={self.database}"

    def start(self) -> None:
        """initdb, start the server, wait for it, create the database."""
        # A temp dir outside the run dir: the postgres user must own every path component it writes.
        self._tmp = Path(tempfile.mkdtemp(prefix="airflow-oidc-e2e-pg-"))
        data = self._tmp / "data"
        sockets = self._tmp / "sockets"
        data.mkdir()
        sockets.mkdir()
        if self._os_user:
            shutil.chown(self._tmp, self._os_user, self._os_user)
            shutil.chown(data, self._os_user, self._os_user)
            shutil.chown(sockets, self._os_user, self._os_user)
        run_logged(
            [
                str(self.bindir / "initdb"),
                "--pgdata",
                str(data),
                "--username",
                PG_USER,
                "--auth",
                "trust",
                "--encoding",
                "UTF8",
                "--locale",
                "C",
                "--no-sync",
            ],
            self.log_path,
            what="initdb",
            timeout=120,
            user=self._os_user,
            cwd=self._tmp,
        )
        self._process = ManagedProcess(
            "postgres",
            [
                str(self.bindir / "postgres"),
                "-D",
                str(data),
                "-p",
                str(self.port),
                "-k",
                str(sockets),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=200",
            ],
            self.log_path,
            user=self._os_user,
            cwd=self._tmp,
            # SIGINT is PostgreSQL's "fast shutdown": no waiting for clients to leave.
            stop_signal=signal.SIGINT,
        )
        self._process.start()
        pg_isready = [str(self.bindir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port)]
        wait_until(
            lambda: _returns_zero(pg_isready),
            timeout=60,
            what="postgres",
            log_path=self.log_path,
            alive=self._process.alive,
        )
        run_logged(
            [str(self.bindir / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", PG_USER, self.database],
            self.log_path,
            what="createdb",
            timeout=60,
        )

    def stop(self) -> None:
        """Stop the server and delete its data directory."""
        if self._process is not None:
            self._process.stop()
            self._process = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None


def _check_identifier(name: str) -> None:
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
        raise HarnessError(f"not a plain database name: {name!r}")


def _returns_zero(argv: list[str]) -> bool:
    return subprocess.run(argv, check=False, capture_output=True, timeout=10).returncode == 0
