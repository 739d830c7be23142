"""Airflow 3 api-servers (FAB auth manager) run from the project's Airflow venv against a test database."""

from __future__ import annotations

import base64
import os
import re
import secrets
import signal
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg2
import requests
from sqlalchemy.engine import make_url

from localdev.harness.process import (
    REPO_ROOT,
    HarnessError,
    ManagedProcess,
    Service,
    free_port,
    run_logged,
    stop_all,
    wait_until,
)

AIRFLOW_VENV = REPO_ROOT / ".venv-airflow"
AIRFLOW_BIN = AIRFLOW_VENV / "bin" / "airflow"
FAB_AUTH_MANAGER = "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"
HEALTH_PATH = "/api/v2/monitor/health"

# Variables from the outer environment that would leak into the servers' configuration.
_SCRUBBED_PREFIXES = ("AIRFLOW", "FORWARDED_ALLOW_IPS")


def render_constants(text: str, **constants: Any) -> str:
    """Replace top-level `NAME = ...` lines (single-line assignments) with `NAME = repr(value)`.

    Raises KeyError when a constant is not assigned at the top level of `text`.
    """
    for name, value in constants.items():
        pattern = re.compile(rf"^{re.escape(name)}(\s*:\s*[^=]+?)?\s*=.*$", re.MULTILINE)
        match = pattern.search(text)
        if match is None:
            raise KeyError(f"no top-level assignment of {name} in the config text")
        text = f"{text[: match.start()]}{name}{match.group(1) or ''} = {value!r}{text[match.end() :]}"
    return text


def shared_secrets() -> dict[str, str]:
    """Fresh `[api] secret_key`, `[api_auth] jwt_secret` and Fernet key, as Airflow env vars."""
    return {
        "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
        # 32 url-safe base64-encoded bytes: Airflow refuses anything else.
        "AIRFLOW__CORE__FERNET_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
    }


class AirflowApiServers(Service):
    """`airflow db migrate` once, then N × `airflow api-server --host 127.0.0.1 --port <free port>`.

    `env` holds what the stack would set (AIRFLOW__SECTION__KEY config, secret keys, AIRFLOW_OIDC_*);
    `per_process_env[i]` is merged over it for server i (e.g. different secret keys per replica).
    The webserver_config.py text goes to `<log_dir>/airflow_home/webserver_config.py`, named by
    `AIRFLOW__FAB__CONFIG_FILE`.
    """

    def __init__(
        self,
        log_dir: Path,
        webserver_config_text: str,
        env: Mapping[str, str],
        sql_alchemy_conn: str,
        *,
        count: int = 1,
        per_process_env: Sequence[Mapping[str, str]] | None = None,
        workers: int = 1,
        extra_args: Sequence[str] = (),
        startup_timeout: float = 300,
        airflow_bin: Path = AIRFLOW_BIN,
        migrated: bool = False,
    ) -> None:
        if count < 1:
            raise ValueError("count must be at least 1")
        if per_process_env is not None and len(per_process_env) != count:
            raise ValueError(f"per_process_env has {len(per_process_env)} entries for {count} servers")
        self.log_dir = log_dir
        self.home = log_dir / "airflow_home"
        self.config_file = self.home / "webserver_config.py"
        self.webserver_config_text = webserver_config_text
        self.env = dict(env)
        self.sql_alchemy_conn = sql_alchemy_conn
        self.count = count
        self.per_process_env = [dict(extra) for extra in per_process_env] if per_process_env else [{}] * count
        self.workers = workers
        self.extra_args = list(extra_args)
        self.startup_timeout = startup_timeout
        self.airflow_bin = airflow_bin
        self.migrated = migrated
        """The database already holds Airflow's schema (a clone of a migrated template): `db migrate` is skipped."""
        # Chosen now, so a proxy can be configured before the servers are up.
        self.ports = [free_port() for _ in range(count)]
        self.migrate_log = log_dir / "db-migrate.log"
        self.log_paths = [log_dir / f"api-server-{index}.log" for index in range(count)]
        self._processes: list[ManagedProcess | None] = []

    @property
    def upstreams(self) -> list[str]:
        """`127.0.0.1:<port>` of each server, for the proxy."""
        return [f"127.0.0.1:{port}" for port in self.ports]

    def base_url(self, index: int = 0) -> str:
        """Direct (unproxied) URL of server `index`."""
        return f"http://127.0.0.1:{self.ports[index]}"

    def process_env(self, index: int) -> dict[str, str]:
        """The full environment of server `index` (and, for index 0, of `db migrate`)."""
        env = {key: value for key, value in os.environ.items() if not key.startswith(_SCRUBBED_PREFIXES)}
        env.update(
            AIRFLOW_HOME=str(self.home),
            AIRFLOW__CORE__AUTH_MANAGER=FAB_AUTH_MANAGER,
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=self.sql_alchemy_conn,
            AIRFLOW__FAB__CONFIG_FILE=str(self.config_file),
        )
        env.update(self.env)
        env.update(self.per_process_env[index])
        return env

    def start(self) -> None:
        """Write webserver_config.py, migrate the database, start the servers and wait for health."""
        self.migrate()
        self.start_servers()

    def migrate(self) -> None:
        """`airflow db migrate` (creates Airflow's and FAB's tables on a fresh database; skipped when
        `migrated`), then `airflow sync-perm` with this stack's webserver_config.py."""
        if not self.airflow_bin.exists():
            raise HarnessError(f"{self.airflow_bin} not found: create .venv-airflow from requirements/airflow.lock")
        self.home.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(self.webserver_config_text)
        if not self.migrated:
            run_logged(
                [str(self.airflow_bin), "db", "migrate"],
                self.migrate_log,
                what="airflow db migrate",
                timeout=600,
                env=self.process_env(0),
                cwd=self.home,
            )
        # Once, before the servers: each api-server syncs FAB's permissions at startup, and two doing it
        # at once on a fresh database collide on a unique key (ab_permission_view_role) and one exits.
        run_logged(
            [str(self.airflow_bin), "sync-perm"],
            self.migrate_log,
            what="airflow sync-perm",
            timeout=600,
            env=self.process_env(0),
            cwd=self.home,
        )

    def start_servers(self, indexes: Sequence[int] | None = None) -> None:
        """Start the api-servers (`indexes`: only these) at once and wait until each answers its health endpoint."""
        indexes = list(range(self.count)) if indexes is None else list(indexes)
        if not self._processes:
            self._processes = [None] * self.count
        for index in indexes:
            argv = [
                str(self.airflow_bin),
                "api-server",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.ports[index]),
                "--workers",
                str(self.workers),
                *self.extra_args,
            ]
            process = ManagedProcess(
                f"api-server-{index}",
                argv,
                self.log_paths[index],
                env=self.process_env(index),
                cwd=self.home,
                # Killed outright: it holds nothing a graceful exit would save (the database has every
                # commit), and uvicorn's graceful shutdown takes seconds per restart on a loaded machine.
                stop_signal=signal.SIGKILL,
            )
            process.start()
            self._processes[index] = process
        with ThreadPoolExecutor(max_workers=max(1, len(indexes))) as pool:
            list(pool.map(self._wait_healthy, indexes))

    def restart_servers(
        self,
        *,
        env: Mapping[str, str] | None = None,
        per_process_env: Sequence[Mapping[str, str]] | None = None,
    ) -> list[int]:
        """Give the servers a new environment: those whose environment changes stop and start again on
        the same ports (no migration); the others keep running. Returns the indexes restarted.

        `env` replaces the shared environment and `per_process_env` the per-server one (None: keep).
        """
        if per_process_env is not None and len(per_process_env) != self.count:
            raise ValueError(f"per_process_env has {len(per_process_env)} entries for {self.count} servers")
        before = [self.process_env(index) for index in range(self.count)]
        if env is not None:
            self.env = dict(env)
        if per_process_env is not None:
            self.per_process_env = [dict(extra) for extra in per_process_env]
        changed = [index for index in range(self.count) if self.process_env(index) != before[index]]
        stop_all([process for index in changed if (process := self._processes[index]) is not None])
        for index in changed:
            self._processes[index] = None
        if changed:
            self.start_servers(changed)
        return changed

    def stop(self) -> None:
        """Stop every server (each process group: uvicorn and its workers)."""
        processes, self._processes = self._processes, []
        stop_all([process for process in processes if process is not None])

    def _wait_healthy(self, index: int) -> None:
        url = self.base_url(index) + HEALTH_PATH
        wait_until(
            lambda: requests.get(url, timeout=2).status_code == 200,
            timeout=self.startup_timeout,
            what=f"api-server-{index} ({url})",
            log_path=self.log_paths[index],
            alive=lambda: (process := self._processes[index]) is not None and process.alive(),
            interval=0.25,
        )

    # --- the metadata database, read directly -------------------------------------------------

    def _connect(self) -> Any:
        url = make_url(self.sql_alchemy_conn)
        return psycopg2.connect(
            host=url.host, port=url.port, user=url.username, password=url.password, dbname=url.database
        )

    def user_exists(self, username: str) -> bool:
        """Whether FAB has a row for `username` in ab_user."""
        with self._connect() as conn, conn.cursor() as cur:
            cur.execute("SELECT 1 FROM ab_user WHERE username = %s", (username,))
            return cur.fetchone() is not None

    def user_roles(self, username: str) -> set[str]:
        """The FAB role names of `username` (empty when the user or their roles are absent)."""
        with self._connect() as conn, conn.cursor() as cur:
            cur.execute(
                """
                SELECT r.name FROM ab_user u
                JOIN ab_user_role ur ON ur.user_id = u.id
                JOIN ab_role r ON r.id = ur.role_id
                WHERE u.username = %s
                """,
                (username,),
            )
            return {row[0] for row in cur.fetchall()}

    def usernames(self) -> list[str]:
        """Every FAB username, sorted."""
        with self._connect() as conn, conn.cursor() as cur:
            cur.execute("SELECT username FROM ab_user ORDER BY username")
            return [row[0] for row in cur.fetchall()]

    # --- Airflow's API -------------------------------------------------------------------------

    def fab_user(self, token: str, username: str, *, server: int = 0) -> requests.Response:
        """`GET /auth/fab/v1/users/<username>` on server `server`, as the holder of JWT `token`.

        `token` is the `_token` cookie a browser login got (see `LoginResult.token`); it is sent
        as a bearer token, which Airflow accepts like the cookie.
        """
        return requests.get(
            f"{self.base_url(server)}/auth/fab/v1/users/{username}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
        )


# Airflow's components besides the api-server, as `airflow <command>`; the health endpoint's key for each.
COMPONENTS = (("scheduler", "scheduler"), ("triggerer", "triggerer"), ("dag-processor", "dag_processor"))


class AirflowComponents(Service):
    """`airflow scheduler`, `triggerer` and `dag-processor` beside the api-servers (same home and database),
    so Airflow's home page shows a healthy instance and a DAG from `dags_folder` can run.

    Tasks run with the LocalExecutor and report to the first api-server's execution API (not through
    the TLS ingress). Ready when the api-server's health endpoint reports every component healthy.
    """

    def __init__(self, servers: AirflowApiServers, dags_folder: Path, *, startup_timeout: float = 180) -> None:
        self.servers = servers
        self.dags_folder = dags_folder
        self.startup_timeout = startup_timeout
        self.log_paths = [servers.log_dir / f"{command}.log" for command, _ in COMPONENTS]
        self._processes: list[ManagedProcess] = []

    def env(self) -> dict[str, str]:
        """The api-server's environment plus the DAGs folder and the execution API's address."""
        return {
            **self.servers.process_env(0),
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.servers.base_url(0)}/execution/",
            "AIRFLOW__SCHEDULER__STANDALONE_DAG_PROCESSOR": "True",
        }

    def start(self) -> None:
        """Start the three components and wait until the health endpoint calls each healthy."""
        env = self.env()
        for (command, _), log_path in zip(COMPONENTS, self.log_paths, strict=True):
            process = ManagedProcess(
                command,
                [str(self.servers.airflow_bin), command],
                log_path,
                env=env,
                cwd=self.servers.home,
                stop_signal=signal.SIGKILL,  # as the api-servers: the throwaway database keeps every commit
            )
            process.start()
            self._processes.append(process)
        wait_until(
            self._healthy,
            timeout=self.startup_timeout,
            what="scheduler, triggerer and dag-processor (api/v2/monitor/health)",
            log_path=self.log_paths[0],
            alive=lambda: all(process.alive() for process in self._processes),
            interval=1,
        )

    def _healthy(self) -> bool:
        health = requests.get(self.servers.base_url(0) + HEALTH_PATH, timeout=2).json()
        return all((health.get(key) or {}).get("status") == "healthy" for _, key in COMPONENTS)

    def stop(self) -> None:
        processes, self._processes = self._processes, []
        stop_all(processes)
