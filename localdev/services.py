"""What the deployments of one e2e test run share (the pool that keeps one deployment per stack: `pool.py`).

Starting things is what the e2e tier spends its time on (on 2 cores: Keycloak's JVM, Airflow's
imports, the schema migration). So a test run starts each of these once:

- `SharedServices`: one PostgreSQL (a database per deployment, copied from a template migrated
  once, so a deployment runs `airflow sync-perm` only), one Keycloak (a realm per stack, deleted
  when the stack's deployment stops), one Chromium (every hostname mapped to loopback, a fresh
  cookie jar per sign-in). Each starts on first use and stops at `close()`.
- `DeploymentPool` (localdev/pool.py): one `LocalDeployment` per stack file, shared by every test
  module that asks for that stack; at most one runs at a time (stacks share fixed ports such as 8443),
  so tests are ordered by stack (tests/e2e/conftest.py) and each stack is deployed once per run.

`make demo` (localdev/demo.py) gets private services: its Keycloak on the stack's own port, its
database migrated in place, everything stopped with it.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from contextlib import ExitStack
from typing import TypeVar

from localdev.harness.airflow import AirflowApiServers
from localdev.harness.browser import EVERY_HOST, Browser
from localdev.harness.keycloak import KeycloakServer
from localdev.harness.postgres import Postgres
from localdev.harness.process import ARTIFACTS_ROOT, RunDir, Service, port_is_free
from localdev.ports import KEYCLOAK_PORT

TEMPLATE_DATABASE = "airflow_template"

S = TypeVar("S", bound=Service)


class SharedServices:
    """PostgreSQL, Keycloak and Chromium for every deployment of a run; each started on first use.

    `shared=False` (the demo): no template database (the deployment's own is migrated in place), and
    Keycloak on the port the stack asks for. Thread-safe: a deployment starts its database and its
    IdP side by side.
    """

    def __init__(self, run: RunDir, *, shared: bool = True, keycloak_port: int | None = KEYCLOAK_PORT) -> None:
        self.run = run
        self.shared = shared
        self.keycloak_port = keycloak_port
        self.timings: dict[str, float] = {}
        """Seconds each shared service took to start (printed at the end of the run)."""
        self._stack = ExitStack()
        self._postgres_lock = threading.Lock()
        self._template_lock = threading.Lock()
        self._keycloak_lock = threading.Lock()
        self._postgres: Postgres | None = None
        self._template_ready = False
        self._keycloak: KeycloakServer | None = None
        self._keycloak_started = False
        self._prestart: threading.Thread | None = None
        self._browser: Browser | None = None
        self._databases = 0

    # --- PostgreSQL --------------------------------------------------------------------------------

    def postgres(self) -> Postgres:
        """The run's PostgreSQL server (started on first use)."""
        with self._postgres_lock:
            if self._postgres is None:
                self._postgres = self._start("postgres", Postgres(self.run.sub("postgres")))
            return self._postgres

    def airflow_database(self, label: str) -> tuple[str, str]:
        """A new database holding Airflow's schema for one deployment: (name, SQLAlchemy URL).

        Shared: a copy of a template that `airflow db migrate` (and `sync-perm` with FAB's defaults) ran on
        once per run; else migrated in place. Either way the deployment runs only `sync-perm` with its own
        webserver_config.py (`AirflowApiServers(migrated=True)`).
        """
        postgres = self.postgres()
        with self._template_lock:
            self._databases += 1
            name = f"airflow_{self._databases}_{re.sub(r'[^a-z0-9]+', '_', label.lower())}"[:63]
            if not self.shared:
                url = postgres.create_database(name)
                self._migrate(url, f"airflow db migrate ({name})")
                return name, url
            if not self._template_ready:
                self._migrate(postgres.create_database(TEMPLATE_DATABASE), "airflow db migrate (template)")
                self._template_ready = True
        return name, postgres.create_database(name, template=TEMPLATE_DATABASE)

    def _migrate(self, url: str, what: str) -> None:
        started = time.monotonic()
        AirflowApiServers(self.run.sub("airflow-migrate"), "", {}, url).migrate()
        self.timings[what] = time.monotonic() - started

    def drop_database(self, name: str) -> None:
        """Drop a deployment's database (its api-servers are stopped)."""
        if self._postgres is not None:
            self._postgres.drop_database(name)

    # --- Keycloak ----------------------------------------------------------------------------------

    def keycloak(self, port: int | None = None) -> KeycloakServer | None:
        """The run's Keycloak, when it can serve a stack whose issuer needs `port` (None: any port); None
        when it is on another port (the caller runs its own there). Not started yet: `start_keycloak()`
        (so a deployment starts it beside its database).

        Its port is chosen on first call: `port`, else KEYCLOAK_PORT when free, else a free port.
        """
        with self._keycloak_lock:
            if self._keycloak is None:
                preferred = self.keycloak_port if self.keycloak_port and port_is_free(self.keycloak_port) else None
                self._keycloak = KeycloakServer(self.run.sub("keycloak"), port=port or preferred)
                self._keycloak_started = False
            if port is not None and port != self._keycloak.port:
                return None
            return self._keycloak

    def prestart_keycloak(self) -> None:
        """Start the run's Keycloak in the background (its JVM takes half a minute): a run that will need
        it calls this early, and the first deployment that needs it finds it ready or nearly so. A
        failure here is not reported: the first real `start_keycloak()` tries again and raises."""
        if self._keycloak_started or self._prestart is not None:
            return

        def start() -> None:
            with contextlib.suppress(Exception):
                self.start_keycloak()

        self._prestart = threading.Thread(target=start, name="keycloak-prestart", daemon=True)
        self._prestart.start()

    @property
    def keycloak_started(self) -> bool:
        """Whether the run's Keycloak is running."""
        return self._keycloak_started

    def start_keycloak(self) -> KeycloakServer:
        """The run's Keycloak, started (once; thread-safe)."""
        server = self.keycloak()
        assert server is not None
        with self._keycloak_lock:
            if not self._keycloak_started:
                self._start("keycloak", server)
                self._keycloak_started = True
        return server

    # --- Chromium ------------------------------------------------------------------------------------

    def browser(self) -> Browser:
        """The run's Chromium (every hostname resolves to loopback). Call it from the main thread only:
        Playwright's sync API stays on the thread that started it."""
        if self._browser is None:
            browser = Browser(map_hosts=[EVERY_HOST], artifacts_dir=ARTIFACTS_ROOT / self.run.path.name)
            self._browser = self._start("chromium", browser)
        return self._browser

    # --- lifecycle -----------------------------------------------------------------------------------

    def release_ports(self, *ports: int) -> None:
        """Stop the shared Keycloak if it listens on one of `ports` (a test that needs the port itself)."""
        if self._prestart is not None:
            self._prestart.join()
            self._prestart = None
        with self._keycloak_lock:
            if self._keycloak is not None and self._keycloak.port in ports:
                self._keycloak.stop()
                self._keycloak = None
                self._keycloak_started = False

    def close(self) -> None:
        """Stop everything that was started (reverse order)."""
        if self._prestart is not None:
            self._prestart.join()
            self._prestart = None
        self._stack.close()
        self._postgres = self._keycloak = self._browser = None
        self._template_ready = self._keycloak_started = False

    def _start(self, what: str, service: S) -> S:
        started = time.monotonic()
        self._stack.enter_context(service)
        self.timings[what] = time.monotonic() - started
        return service


class AirflowDatabase(Service):
    """One deployment's metadata database on the (shared) PostgreSQL; dropped at stop."""

    def __init__(self, services: SharedServices, label: str) -> None:
        self.services = services
        self.label = label
        self.name: str | None = None
        self.url = ""
        """SQLAlchemy URL (set by start(); the database holds Airflow's schema by then)."""

    def start(self) -> None:
        self.name, self.url = self.services.airflow_database(self.label)

    def stop(self) -> None:
        name, self.name = self.name, None
        if name is not None:
            self.services.drop_database(name)
