"""Sign-ins through what `pulumi up` created: the Keycloak the real provider configured, and Airflow processes
configured from the objects Helm (with the stand-in chart) wrote into the test Kubernetes API.

`ClusterAirflow` reads the api-server Deployment from the API: its env (values, and `secretKeyRef`s resolved
from the Secrets `pulumi up` wrote: the OIDC client id and secret, the Fernet, API and JWT keys, the external
database's connection), its ConfigMap volumes (webserver_config.py, airflow.cfg, the auth-manager module,
materialised in the run directory, mount paths in env values moved there) and its args; then runs PostgreSQL,
the api-servers, nginx for the stack's public host and port, and Chromium. Nothing comes from a capture.
"""

from __future__ import annotations

import configparser
import re
import secrets
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from localdev.deployment import SpecIntent, api_server_extra_args
from localdev.harness.airflow import AirflowApiServers
from localdev.harness.browser import Browser, LoginResult
from localdev.harness.keycloak import KeycloakAdmin
from localdev.harness.nginx import SPLIT_OAUTH_FLOW, Nginx
from localdev.harness.postgres import Postgres
from localdev.harness.process import ARTIFACTS_ROOT, HarnessError, Service, start_in_parallel
from tests.engine.kube import KubeApi

CALLBACK_PREFIX = "/auth/oauth-authorized/"


@dataclass(frozen=True)
class DeclaredApiServer:
    """What the api-server Deployment in the cluster says, made runnable on this machine."""

    webserver_config: str
    env: dict[str, str]
    extra_args: list[str]
    replicas: int


def _config_env(airflow_cfg: str) -> dict[str, str]:
    """airflow.cfg as AIRFLOW__SECTION__KEY variables. Values the real chart renders through `tpl` with its own
    helpers (`{{ ... }}`, which the stand-in chart leaves as they are) are skipped: they are the chart's defaults
    for pods (dags folder, executor, statsd host), not the program's."""
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(airflow_cfg)
    return {
        f"AIRFLOW__{section.upper()}__{key.upper()}": value
        for section in parser.sections()
        for key, value in parser.items(section)
        if "{{" not in value
    }


def declared_api_server(kube: KubeApi, namespace: str, release: str, volumes_dir: Path) -> DeclaredApiServer:
    """The api-server as the cluster holds it (see the module docstring)."""
    deployment = kube.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/{release}-api-server")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    volumes = {volume["name"]: volume for volume in pod.get("volumes") or []}
    local: dict[str, Path] = {}
    for mount in container.get("volumeMounts") or []:
        volume = volumes[mount["name"]]
        if "configMap" not in volume:
            raise HarnessError(f"volume {mount['name']!r} is not a ConfigMap: the tier cannot materialise it")
        data = kube.config_map_data(namespace, volume["configMap"]["name"])
        directory = volumes_dir / mount["name"]
        directory.mkdir(parents=True, exist_ok=True)
        for key, text in data.items():
            (directory / key).write_text(text)
        path = directory / mount["subPath"] if mount.get("subPath") else directory
        local[mount["mountPath"].rstrip("/")] = path

    def localised(value: str) -> str:
        for mount_path, path in local.items():
            value = re.sub(rf"(?<![^:]){re.escape(mount_path)}(?=$|[:/])", str(path), value)
        return value

    env: dict[str, str] = {}
    airflow_cfg = local.get("/opt/airflow/airflow.cfg")
    if airflow_cfg is not None:
        env.update(_config_env(airflow_cfg.read_text()))
    for item in container.get("env") or []:
        if "value" in item:
            env[item["name"]] = localised(str(item["value"]))
            continue
        source = item["valueFrom"]
        if "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            env[item["name"]] = kube.secret_data(namespace, ref["name"])[ref["key"]]
        elif "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            env[item["name"]] = kube.config_map_data(namespace, ref["name"])[ref["key"]]
        else:
            raise HarnessError(f"env {item['name']}: unsupported source {sorted(source)}")
    config = local.get("/opt/airflow/webserver_config.py")
    if config is None:
        raise HarnessError("the api-server mounts no webserver_config.py")
    return DeclaredApiServer(
        webserver_config=config.read_text(),
        env=env,
        extra_args=api_server_extra_args(container.get("args") or []),
        replicas=int(deployment["spec"].get("replicas") or 1),
    )


@dataclass(frozen=True)
class RealmUser:
    """A test user in the stack's realm: its groups (as the spec names them) and the roles the spec promises."""

    account: str
    password: str
    groups: tuple[str, ...]
    expected_roles: frozenset[str]


def make_realm_users(admin: KeycloakAdmin, realm: str, stack_file: Path) -> list[RealmUser]:
    """One user per `access` group, one per default-role group, and an outsider in no group (Keycloak lets every
    realm user authenticate to every client: Airflow must refuse them)."""
    intent = SpecIntent.read(stack_file)
    plan: list[tuple[str, tuple[str, ...]]] = []
    for group, role in intent.access:
        account = {"op": "operator"}.get(role.lower(), role.lower())
        taken = sum(1 for planned, _ in plan if planned == account or planned.startswith(account + "-"))
        # Two groups of one role (airflow-viewers, /data/airflow-auditors): a user each, viewer and viewer-2.
        plan.append((f"{account}-{taken + 1}" if taken else account, (group,)))
    plan += [(f"default-role-{index}", (group,)) for index, group in enumerate(sorted(intent.default_groups))]
    plan.append(("outsider", ()))
    users = []
    for account, groups in plan:
        password = f"{account}-{secrets.token_hex(4)}"
        admin.create_user(
            realm,
            account,
            password,
            email=f"{account}@example.com",
            first_name=account.split("-")[0].capitalize(),
            last_name="Tester",
            groups=list(groups),  # paths, or bare names: top-level groups (the harness resolves both)
        )
        users.append(RealmUser(account, password, groups, intent.roles_for(groups)))
    return users


class ClusterAirflow(Service):
    """Airflow for one stack, from the cluster (see the module docstring), behind nginx, with a browser."""

    def __init__(
        self,
        run_dir: Path,
        kube: KubeApi,
        *,
        namespace: str,
        release: str,
        public_url: str,
        redirect_uri: str,
        database_secret: str | None,
    ) -> None:
        self.dir = run_dir
        self.kube = kube
        self.namespace = namespace
        self.release = release
        self.public_url = public_url.rstrip("/")
        self.provider_name = urlsplit(redirect_uri).path.removeprefix(CALLBACK_PREFIX)
        self.database_secret = database_secret
        self.postgres = Postgres(run_dir / "postgres")
        self._stack = ExitStack()
        self._generation = 0
        self.airflow: AirflowApiServers | None = None

    @property
    def host(self) -> str:
        return urlsplit(self.public_url).hostname or ""

    def start(self) -> None:
        try:
            start_in_parallel(self._stack, [self.postgres])
            if self.database_secret:
                # The external database (airflow.database.secretName) exists before Airflow, as the company's does.
                self.kube.create_secret(self.namespace, self.database_secret, {"connection": self.postgres.url})
            self.browser = Browser(map_hosts=[self.host], artifacts_dir=ARTIFACTS_ROOT / self.dir.name)
            self._stack.enter_context(self.browser)
            self._start_airflow()
        except BaseException:
            self._stack.close()
            raise

    def _start_airflow(self) -> None:
        """(Re)start the api-servers and nginx from what the cluster holds now."""
        self._generation += 1
        declared = declared_api_server(
            self.kube, self.namespace, self.release, self.dir / f"volumes-{self._generation}"
        )
        self.declared = declared
        self._airflow_stack = ExitStack()
        self.airflow = AirflowApiServers(
            self.dir / f"airflow-{self._generation}",
            declared.webserver_config,
            declared.env,
            self.postgres.url,  # the bundled Postgres' stand-in; an external database's Secret names it too
            count=max(2, declared.replicas),
            extra_args=declared.extra_args,
        )
        port = urlsplit(self.public_url).port or 443
        nginx = Nginx(
            self.dir / f"nginx-{self._generation}",
            self.host,
            self.airflow.upstreams,
            listen_port=port,
            pin_paths=SPLIT_OAUTH_FLOW,
        )
        start_in_parallel(self._airflow_stack, [self.airflow, nginx])
        self._stack.push(self._airflow_stack.__exit__)
        self._admin_token: str | None = None

    def restart_from_cluster(self) -> None:
        """Stop the api-servers and nginx, then start them again from what the cluster holds now (a new Secret)."""
        self._airflow_stack.close()
        self._start_airflow()

    def stop(self) -> None:
        self._stack.close()

    def login(self, user: RealmUser) -> LoginResult:
        result = self.browser.login(
            self.public_url, self.provider_name, user.account, password=user.password, label=user.account, settle=False
        )
        if result.context is not None:
            result.context.close()
            result.context = None
        return result

    def roles(self, admin_token: str, username: str) -> set[str] | None:
        assert self.airflow is not None
        response = self.airflow.fab_user(admin_token, username)
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise HarnessError(f"GET /auth/fab/v1/users/{username}: {response.status_code} {response.text[:300]}")
        return {role["name"] for role in response.json()["roles"]}

    def log_tail(self) -> str:
        assert self.airflow is not None
        return "\n".join(path.read_text(errors="replace")[-3000:] for path in self.airflow.log_paths if path.exists())


def airflow_username(provider_name: str, admin: KeycloakAdmin, realm: str, account: str) -> str:
    """`<provider>_<Keycloak user id>`: the username the program's security manager gives (from `sub`)."""
    return f"{provider_name}_{admin.user_id(realm, account)}"


def sign_in_everyone(
    airflow: ClusterAirflow, admin: KeycloakAdmin, realm: str, users: list[RealmUser]
) -> dict[str, Any]:
    """Each user signs in on Keycloak's own page; returns account -> (roles Airflow gave, expected roles), read
    through Airflow's API as the Admin user. Refused users must have no user row."""
    results = {user.account: airflow.login(user) for user in users}
    admins = [user for user in users if "Admin" in user.expected_roles]
    if not admins:
        raise HarnessError("the stack maps no group to Admin: no user can read roles through Airflow's API")
    token = results[admins[0].account].token
    if not token:
        result = results[admins[0].account]
        raise HarnessError(
            f"the Admin user could not sign in: {result.final_url} {result.page_text[:300]}\n{airflow.log_tail()}"
        )
    seen: dict[str, Any] = {}
    for user in users:
        username = airflow_username(airflow.provider_name, admin, realm, user.account)
        roles = airflow.roles(token, username)
        seen[user.account] = (
            frozenset(roles or ()),
            user.expected_roles,
            bool(results[user.account].token),
            roles is not None,
        )
    return seen
