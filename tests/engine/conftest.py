"""The engine tier: the real Pulumi CLI and providers (`make engine`) against a real Keycloak and a real
Kubernetes API. Run with the Airflow venv: `make test-engine` (README: "What runs for real").

Skipped, with one line saying so, when the engine is not built. Everything listens on free loopback ports, so
this tier runs beside the e2e tier and other engineers' runs without a lock.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import yaml

from localdev.harness.keycloak import KeycloakAdmin, KeycloakServer
from localdev.harness.process import REPO_ROOT, RunDir
from tests.engine.kube import KubeApi
from tests.engine.standin_chart import assemble_standin_chart
from tests.engine.workspace import PulumiWorkspace
from tools.engine import Engine, built_engine

SKIP_LINE = "engine tier skipped: the Pulumi engine is not built (`make engine` builds it: 45-70 min cold, once)"
PROVIDER_CLIENT = "pulumi-engine-tier"
"""The master realm's service-account client the Keycloak provider signs in with (a company's would exist)."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if built_engine() is None:
        skip = pytest.mark.skip(reason=SKIP_LINE)
        for item in items:
            if "tests/engine/" in str(item.fspath):
                item.add_marker(skip)


@pytest.fixture(scope="session")
def engine() -> Engine:
    found = built_engine()
    if found is None:
        pytest.skip(SKIP_LINE)
    return found


@pytest.fixture(scope="session")
def run_dir() -> RunDir:
    return RunDir.create("engine")


@pytest.fixture(scope="session")
def prerequisites() -> None:
    """Chromium, nginx, PostgreSQL and Keycloak as the e2e tier installs them (only when missing)."""
    from localdev.harness.install import PrerequisiteError, ensure_prerequisites

    try:
        ensure_prerequisites(lambda line: print(f"[engine install] {line}"))
    except PrerequisiteError as exc:
        pytest.skip(f"!!! ENGINE TIER PREREQUISITE CANNOT BE INSTALLED — engine tests NOT RUN: {exc}")


def stack_contexts() -> list[str]:
    """The `kubernetes:context` every committed stack names: all of them point at the test API."""
    contexts = set()
    for path in (REPO_ROOT / "stacks").glob("Pulumi.*.yaml"):
        config = (yaml.safe_load(path.read_text()) or {}).get("config") or {}
        if isinstance(config.get("kubernetes:context"), str):
            contexts.add(config["kubernetes:context"])
    return sorted(contexts)


@pytest.fixture(scope="session")
def kube(engine: Engine, run_dir: RunDir) -> Iterator[KubeApi]:
    with KubeApi(run_dir.sub("kube"), engine, contexts=stack_contexts()) as api:
        yield api


@dataclass(frozen=True)
class Keycloak:
    """The test Keycloak, its admin client, and the service-account client the Pulumi provider uses."""

    server: KeycloakServer
    admin: KeycloakAdmin
    provider_client_id: str
    provider_client_secret: str

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture(scope="session")
def keycloak(prerequisites: None, run_dir: RunDir) -> Iterator[Keycloak]:
    with KeycloakServer(run_dir.sub("keycloak")) as server:
        admin = server.admin()
        secret = secrets.token_urlsafe(24)
        internal = admin.create_client(
            "master",
            {
                "clientId": PROVIDER_CLIENT,
                "enabled": True,
                "publicClient": False,
                "serviceAccountsEnabled": True,
                "standardFlowEnabled": False,
                "directAccessGrantsEnabled": False,
                "clientAuthenticatorType": "client-secret",
                "secret": secret,
            },
        )
        # As the README asks of a company's Keycloak: a service account with the realm-management rights.
        account = admin.request("GET", f"/master/clients/{internal}/service-account-user").json()
        role = admin.request("GET", "/master/roles/admin").json()
        admin.request("POST", f"/master/users/{account['id']}/role-mappings/realm", json_body=[role])
        yield Keycloak(server, admin, PROVIDER_CLIENT, secret)


@pytest.fixture(scope="session")
def workspace(engine: Engine, run_dir: RunDir, kube: KubeApi, keycloak: Keycloak) -> PulumiWorkspace:
    ws = PulumiWorkspace(
        run_dir.sub("pulumi"),
        engine,
        {
            "KUBECONFIG": str(kube.kubeconfig),
            "KEYCLOAK_CLIENT_ID": keycloak.provider_client_id,
            "KEYCLOAK_CLIENT_SECRET": keycloak.provider_client_secret,
        },
    )
    ws.prepare()
    assemble_standin_chart(ws.project / "charts")
    return ws
