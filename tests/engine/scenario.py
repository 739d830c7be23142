"""One committed stack through the real engine: what the tier changes in its copy, and what it checks.

The tier deploys the committed stack files unchanged but for what points at this machine's servers, set with
`pulumi config set` on the workspace's copy (so everything else, the spec included, is the stack's own):
- the Keycloak URL (`idp.url`, or `keycloak:url` where the stack uses it) -> the test Keycloak;
- `hostname` keeps its host and gets a free port (nginx serves it; Chromium maps the host to loopback);
- `airflow.chartPath: charts/airflow` (the stand-in chart, tests/engine/chart/README.md) and `airflow.wait: false`
  (the test API has no nodes: pods never start).
"""

from __future__ import annotations

import datetime
import json
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from components.contract import ClientContract, client_contract
from components.idp.keycloak import keycloak_client_id
from components.spec import Spec, split_hostname
from components.stack_config import provider_from_stack_file, resolved_from_stack_file
from localdev.harness.keycloak import KeycloakAdmin
from localdev.harness.process import HarnessError, free_port
from tests.engine.kube import KubeApi
from tests.engine.workspace import PulumiWorkspace, Result

POLICY_PACK = Path(__file__).resolve().parents[2] / "policy"


@dataclass
class EngineStack:
    """A stack of the workspace, pointed at the test servers."""

    name: str
    ws: PulumiWorkspace
    keycloak_url: str
    results: dict[str, Result] = field(default_factory=dict)

    @property
    def file(self) -> Path:
        return self.ws.stack_file(self.name)

    def raw_spec(self) -> dict[str, Any]:
        return dict(yaml.safe_load(self.file.read_text())["config"]["airflow-oidc:spec"])

    @property
    def spec(self) -> Spec:
        return resolved_from_stack_file(self.file).spec

    @property
    def contract(self) -> ClientContract:
        spec = self.spec
        return client_contract(spec, stack=self.name, provider=provider_from_stack_file(self.file, spec))

    @property
    def keycloak_client_id(self) -> str:
        return keycloak_client_id(self.name)

    @property
    def public_url(self) -> str:
        return self.spec.public_url

    def init(self, *, copy_of: str | None = None) -> None:
        """`pulumi stack init`, then point the copy at this machine (see the module docstring)."""
        self.ws.init_stack(self.name, copy_of=copy_of)
        raw = self.raw_spec()
        _, host, _ = split_hostname(raw["hostname"])
        self.ws.set_path(self.name, "airflow-oidc:spec.hostname", f"{host}:{free_port()}")
        if raw["idp"]["kind"] == "keycloak":
            if "url" in raw["idp"]:
                self.ws.set_path(self.name, "airflow-oidc:spec.idp.url", self.keycloak_url)
            else:
                self.ws.set(self.name, "keycloak:url", self.keycloak_url)
        self.ws.set_path(self.name, "airflow-oidc:spec.airflow.chartPath", "charts/airflow")
        self.ws.set_path(self.name, "airflow-oidc:spec.airflow.wait", "false")

    def pulumi(self, *args: str, check: bool = True, env: dict[str, str] | None = None) -> Result:
        result = self.ws.run(*args, stack=self.name, check=check, env=env)
        self.results[" ".join(args)] = result
        return result

    def up(self, *extra: str, env: dict[str, str] | None = None) -> Result:
        return self.pulumi("up", "--yes", "--skip-preview", *extra, env=env)

    def policy_preview(self, *, check: bool = False) -> Result:
        """The real CrossGuard run: the project's pack with its config."""
        return self.pulumi(
            "preview",
            "--policy-pack",
            str(POLICY_PACK),
            "--policy-pack-config",
            str(POLICY_PACK / "config.json"),
            check=check,
        )

    def next_rotation_day(self) -> str:
        """A day in the next client-secret rotation period."""
        later = datetime.date.today() + datetime.timedelta(days=self.spec.clientSecret.rotationDays)
        return later.isoformat()

    def teardown(self) -> None:
        """Whatever a failed test left: unprotect, destroy, remove the stack (errors ignored: best effort)."""
        with suppress(HarnessError):
            self.ws.run("state", "unprotect", "--all", "--yes", stack=self.name, check=False)
            self.ws.run("destroy", "--yes", stack=self.name, check=False)
            self.ws.run("stack", "rm", "--yes", "--force", self.name, check=False)

    def state_urns(self, type_: str) -> list[str]:
        return [r["urn"] for r in self.ws.resources(self.name) if r["type"] == type_]

    @property
    def host(self) -> str:
        return urlsplit(self.public_url).hostname or ""


def keycloak_client(admin: KeycloakAdmin, realm: str, client_id: str) -> dict[str, Any]:
    return admin.get_client(realm, client_id)


def group_paths(admin: KeycloakAdmin, realm: str) -> set[str]:
    """Every group's full path in the realm, subgroups included (what the groups claim carries)."""
    paths: set[str] = set()
    pending = admin.request("GET", f"/{realm}/groups", params={"briefRepresentation": "true"}).json()
    while pending:
        group = pending.pop()
        paths.add(str(group["path"]))
        pending += admin.request("GET", f"/{realm}/groups/{group['id']}/children").json()
    return paths


def client_ids(admin: KeycloakAdmin, realm: str) -> set[str]:
    return {str(client["clientId"]) for client in admin.request("GET", f"/{realm}/clients").json()}


def namespace_objects(kube: KubeApi, namespace: str) -> dict[str, list[str]]:
    """The namespace's Secrets, ConfigMaps, Deployments, ServiceAccounts and Ingresses (empty lists: none)."""
    if not kube.exists(f"/api/v1/namespaces/{namespace}"):
        return {}
    paths = {
        "secrets": f"/api/v1/namespaces/{namespace}/secrets",
        "configmaps": f"/api/v1/namespaces/{namespace}/configmaps",
        "serviceaccounts": f"/api/v1/namespaces/{namespace}/serviceaccounts",
        "deployments": f"/apis/apps/v1/namespaces/{namespace}/deployments",
        "ingresses": f"/apis/networking.k8s.io/v1/namespaces/{namespace}/ingresses",
    }
    return {kind: kube.names(path) for kind, path in paths.items()}


def preview_json_ops(result: Result) -> dict[str, str]:
    """URN -> op of the steps of a `pulumi preview --json` that change something."""
    steps = json.loads(result.stdout).get("steps") or []
    return {step["urn"]: step["op"] for step in steps if step["op"] not in ("same", "read")}
