"""A stack deployed on this machine exactly as the program declares it, for the e2e tests and `make demo`.

`LocalDeployment(stack_file)` runs the real program under the mock engine (`localdev/capture.py`, in
the Pulumi venv), then serves what the capture holds and nothing else:

- the OpenID provider with the one client the IdP side declares (id, secret as held at the IdP,
  redirect and post-logout URIs), the issuer's path, the groups claim's name and filter, and (Okta)
  the app's group assignments: users in none of them are refused at the provider;
- or, for a Keycloak stack, a real Keycloak (`localdev/keycloak_idp.py`) with the declared
  pulumi_keycloak resources applied through its Admin REST API and the users created with passwords;
- PostgreSQL and the Airflow api-servers with the captured `webserver_config.py` (only ISSUER's
  scheme and host moved to the local provider), `config:` as AIRFLOW__*, the api-server's env and
  the chart's secret env vars resolved from the captured Secrets, and the api-server's args;
- nginx terminating TLS for the stack's hostname, every sign-in split across two api-servers;
- Chromium resolving the hostname to the proxy.

The expected roles come from the stack file's spec (the intent), never from the capture.
"""

from __future__ import annotations

import ast
import datetime
import json
import os
import re
import secrets
import shlex
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
import yaml
from playwright.sync_api import BrowserContext

from components.idp.keycloak import keycloak_group_path
from components.idp.okta import mock_group_id
from localdev.harness.airflow import AirflowApiServers, AirflowComponents
from localdev.harness.browser import LoginResult
from localdev.harness.google import GoogleOidcProvider
from localdev.harness.keycloak import KeycloakServer
from localdev.harness.nginx import SPLIT_OAUTH_FLOW, UPSTREAM_BIND, Nginx
from localdev.harness.process import (
    REPO_ROOT,
    STATE_DEADLINE,
    HarnessError,
    RunDir,
    Service,
    free_port,
    port_is_free,
    start_in_parallel,
    wait_for_text,
)
from localdev.harness.provider import DEFAULT_CLAIMS, IdpGroups, MachineClient, OidcClient, OidcProvider
from localdev.keycloak_idp import KeycloakIdp, RealmUser
from localdev.services import AirflowDatabase, SharedServices

PULUMI_PYTHON = REPO_ROOT / ".venv" / "bin" / "python"
STACKS = REPO_ROOT / "stacks"
# Scopes whose claims OpenID Connect defines; any other captured scope is the groups scope.
STANDARD_SCOPES = frozenset({"openid", "email", "profile", "address", "phone", "offline_access"})
CALLBACK_PREFIX = "/auth/oauth-authorized/"
# The official chart's env vars for the Secrets named by these values, and the data key it reads.
CHART_SECRET_ENV = (
    ("fernetKeySecretName", "AIRFLOW__CORE__FERNET_KEY", "fernet-key"),
    ("apiSecretKeySecretName", "AIRFLOW__API__SECRET_KEY", "api-secret-key"),
    ("jwtSecretName", "AIRFLOW__API_AUTH__JWT_SECRET", "jwt-secret"),
)
# The harness passes these itself; a captured arg naming them would fight it.
HARNESS_ARGS = frozenset({"--host", "-H", "--port", "-p", "--workers", "-w"})
# Negative controls each get a user who never signed in, so "no user row" means something.
CONTROLS = (
    "redirect-uri",
    "proxy-off",
    "full-path-groups",
    "unpublished-key",
    "wrong-aud",
    "wrong-aud-azp",
    "tampered-state",
    "per-process-keys",
    "client-secret",
)
MOVER = "mover"
IMPOSTOR = "impostor"
"""Okta: a user in an APP_GROUP named like the Admin group (another id), and in a lower mapped group."""
# Okta groups the harness adds to the org (ids as the mocked org would give them).
OKTA_EVERYONE = mock_group_id("BUILT_IN:Everyone")
OKTA_CONTRACTORS = mock_group_id("OKTA_GROUP:contractors")
# Kinds whose Airflow username is not `<provider>_<sub>` (Entra: the user's object id, `oid`).
KIND_USERNAME_CLAIMS = {"azuread": "oid"}
OUTSIDER = "outsider"
# What each IdP shows when the redirect URI Airflow sends is not registered (the user stays there).
REDIRECT_URI_REFUSED = {"keycloak": "Invalid parameter: redirect_uri"}
OIDC_PROVIDER_REDIRECT_URI_REFUSED = "invalid_redirect_uri"
# Both layers of proxy handling off: FAB's ProxyFix, and uvicorn's trust in the ingress (FORWARDED_ALLOW_IPS
# back to its default, 127.0.0.1; nginx connects from 127.0.0.2). Either one alone still yields https.
PROXY_HANDLING_OFF = {"AIRFLOW__FAB__ENABLE_PROXY_FIX": "False", "FORWARDED_ALLOW_IPS": "127.0.0.1"}


@dataclass(frozen=True)
class E2eUser:
    """A user at the IdP: raw group memberships, and the Airflow roles the spec promises them."""

    account_id: str
    """The provider's login (any password) and the token's `sub`."""
    kind: str
    """mapped, unmapped, default-role, mapped+default, mover, control, or (Okta) impostor."""
    groups: tuple[str, ...]
    """Raw memberships at the IdP (the emitted claim is these, filtered as the IdP declares): group
    names; Keycloak paths; Okta group ids (a name is not unique there, an id is)."""
    username: str
    """The Airflow username the spec's naming gives (`<provider>_<sub>`)."""
    expected_roles: frozenset[str]
    """Exactly the roles the spec gives; empty: the sign-in must be refused."""
    refused_at_idp: bool
    """The IdP itself refuses the sign-in (Okta: in no assigned group)."""
    password: str = "any-password"
    """The password at the IdP (the stand-in provider takes any; Keycloak checks it)."""
    group_names: tuple[str, ...] = ()
    """The groups' names, for people (Okta: `groups` are ids); empty: `groups` are names."""

    @property
    def admitted(self) -> bool:
        """Whether the sign-in must succeed."""
        return bool(self.expected_roles)


@dataclass(frozen=True)
class SpecIntent:
    """What the stack file's spec promises: group -> role, and who gets the default role."""

    access: tuple[tuple[str, str], ...]
    default_role: str | None
    default_groups: frozenset[str]
    everyone: bool
    username_claim: str

    @classmethod
    def read(cls, stack_file: Path) -> SpecIntent:
        """Read `airflow-oidc:spec` from a stack file (plain YAML; the program validates it)."""
        spec = yaml.safe_load(stack_file.read_text())["config"]["airflow-oidc:spec"]
        sign_in = spec.get("signIn") or {}
        claimed = claim_value_of(spec["idp"]["kind"])
        return cls(
            access=tuple((claimed(entry["group"]), entry["role"]) for entry in spec["access"]),
            default_role=spec.get("defaultRole"),
            default_groups=frozenset(claimed(group) for group in sign_in.get("extraGroups") or ()),
            everyone=bool(sign_in.get("everyone")),
            username_claim=KIND_USERNAME_CLAIMS.get(spec["idp"]["kind"])
            or (spec["idp"].get("usernameClaim") if spec["idp"]["kind"] == "oidc" else None)
            or "sub",
        )

    def roles_for(self, claim_groups: Sequence[str]) -> frozenset[str]:
        """The roles a user whose groups claim holds `claim_groups` must have (empty: refused)."""
        roles = frozenset(role for group, role in self.access if group in claim_groups)
        if roles or self.default_role is None:
            return roles
        if self.everyone or self.default_groups & set(claim_groups):
            return frozenset({self.default_role})
        return frozenset()


def claim_value_of(kind: str) -> Callable[[str], str]:
    """How the IdP names a spec's group in the claim: Keycloak by path (a bare name is the top-level
    group, `keycloak_group_path`), the others as the spec spells it."""
    return keycloak_group_path if kind == "keycloak" else str


def run_capture(
    stack_file: Path, out: Path, *, python: Path = PULUMI_PYTHON, today: datetime.date | None = None
) -> dict[str, Any]:
    """`python -m localdev.capture <stack_file> --out <out>` in the Pulumi venv; the JSON (mode 0600).
    `today`: what the program declares when run on that day (e.g. in the next rotation period)."""
    if not python.exists():
        raise HarnessError(f"{python} not found: the capture runs the program in the Pulumi venv (make venvs)")
    # The program's own date override (components/airflow_oidc.py: AIRFLOW_OIDC_TODAY).
    on_day = {"AIRFLOW_OIDC_TODAY": today.isoformat()} if today is not None else {}
    result = subprocess.run(
        [str(python), "-m", "localdev.capture", str(stack_file), "--out", str(out)],
        env={**os.environ, **on_day},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if result.returncode != 0:
        # The program's own error (a traceback or a spec error); the capture file is not shown.
        raise HarnessError(f"capture of {stack_file} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    mode = out.stat().st_mode & 0o777
    if mode != 0o600:
        raise HarnessError(f"{out} holds secrets but has mode {mode:o}, not 600")
    return dict(json.loads(out.read_text()))


def helm_string(value: Any) -> str:
    """A value as the chart renders it into airflow.cfg or an env var (Go's toString)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    # The mock engine hands numbers over as floats (protobuf Struct); Helm renders 240 as "240".
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def airflow_env(values: Mapping[str, Any], secrets_data: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    """The api-server's environment the chart builds from these values and Secrets."""

    def secret(name: str, key: str) -> str:
        try:
            return secrets_data[name][key]
        except KeyError as exc:
            raise HarnessError(f"the values name Secret {name!r} key {key!r}; the program declares none") from exc

    env = {
        f"AIRFLOW__{section.upper()}__{key.upper()}": helm_string(value)
        for section, settings in (values.get("config") or {}).items()
        for key, value in settings.items()
    }
    for value_key, env_name, data_key in CHART_SECRET_ENV:
        if values.get(value_key):
            env[env_name] = secret(values[value_key], data_key)
    for item in values["apiServer"].get("env") or []:
        if "value" in item:
            env[item["name"]] = helm_string(item["value"])
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            env[item["name"]] = secret(ref["name"], ref["key"])
    return env


def api_server_extra_args(args: Sequence[str]) -> list[str]:
    """What follows `airflow api-server` in the chart's `apiServer.args` (e.g. `--proxy-headers`)."""
    words = shlex.split(args[2]) if len(args) == 3 and args[1] == "-c" else list(args)
    if "api-server" not in words:
        raise HarnessError(f"apiServer.args does not run `airflow api-server`: {args!r}")
    extra = words[words.index("api-server") + 1 :]
    clashing = HARNESS_ARGS & {word.split("=")[0] for word in extra}
    if clashing:
        raise HarnessError(f"apiServer.args sets {sorted(clashing)}, which the harness sets per process")
    return extra


def with_local_issuer(config_text: str, declared_issuer: str, local_issuer: str) -> str:
    """The webserver_config.py with ISSUER's value moved to the local provider (exactly one assignment)."""
    if "{{" in config_text:
        # Helm's tpl would evaluate it; the harness does not emulate tpl.
        raise HarnessError("apiServerConfig contains '{{': Helm's tpl would rewrite it")
    pattern = re.compile(r"^ISSUER\s*=\s*(.+)$", re.MULTILINE)
    found = pattern.findall(config_text)
    if len(found) != 1:
        raise HarnessError(f"apiServerConfig assigns ISSUER {len(found)} times, expected exactly once")
    if ast.literal_eval(found[0]) != declared_issuer:
        raise HarnessError(f"apiServerConfig's ISSUER is {found[0]}, the IdP side declares {declared_issuer!r}")
    if local_issuer == declared_issuer:
        return config_text
    text, count = pattern.subn(lambda _: f"ISSUER = {local_issuer!r}", config_text)
    assert count == 1
    return text


def one_character_off(text: str) -> str:
    """`text` with its last character changed (a registration typo)."""
    return text[:-1] + ("x" if text[-1] != "x" else "y")


def _claims(account_id: str, groups: Sequence[str]) -> dict[str, Any]:
    given = account_id.split("-")[0].capitalize()
    return {
        "email": f"{account_id}@example.com",
        "email_verified": True,
        "name": f"{given} Tester",
        "given_name": given,
        "family_name": "Tester",
        "preferred_username": f"{account_id}@example.com",
        "groups": list(groups),  # raw memberships: the provider emits the declared claim from them
    }


@dataclass
class AirflowState:
    """Overrides of the declared api-server environment (empty: exactly as declared)."""

    env: dict[str, str] = field(default_factory=dict)
    per_process_env: list[dict[str, str]] = field(default_factory=list)


class LocalDeployment(Service):
    """The stack `stack_file` on loopback, configured only from what the program declares."""

    def __init__(
        self,
        stack_file: Path,
        *,
        label: str | None = None,
        run_dir: RunDir | None = None,
        browser: bool = True,
        dags_folder: Path | None = None,
        services: SharedServices | None = None,
    ) -> None:
        self.stack_file = stack_file
        self.with_browser = browser
        self.dags_folder = dags_folder
        """With a DAGs folder, the scheduler, triggerer and dag-processor run too (`make demo`)."""
        self.intent = SpecIntent.read(stack_file)
        self.run = run_dir or RunDir.create(label or f"deploy-{stack_file.stem.split('.')[-1]}")
        self.owns_services = services is None
        self.services = services or SharedServices(self.run, shared=False, keycloak_port=None)
        """PostgreSQL, Keycloak and Chromium: the test run's (localdev/services.py), or this deployment's own."""
        self.capture: dict[str, Any] = {}
        self.users: dict[str, E2eUser] = {}
        self.timings: dict[str, float] = {}
        self._stack = ExitStack()
        self._airflow_state = AirflowState()
        self._admin_token: str | None = None
        self._own_keys: list[dict[str, str]] | None = None

    # --- derived from the capture ------------------------------------------------------------

    @property
    def idp(self) -> dict[str, Any]:
        """The captured IdP-side registration."""
        return dict(self.capture["idp"])

    @property
    def values(self) -> dict[str, Any]:
        """The captured Helm values."""
        return dict(self.capture["airflow"]["values"])

    @property
    def base_url(self) -> str:
        """The stack's public URL (outputs.url), served by the local nginx."""
        return str(self.capture["outputs"]["url"]).rstrip("/")

    @property
    def hostname(self) -> str:
        """Host of the public URL."""
        return urlsplit(self.base_url).hostname or ""

    @property
    def https_port(self) -> int:
        """Port of the public URL (443 unless the URL names one)."""
        return urlsplit(self.base_url).port or 443

    @property
    def tls_terminated_upstream(self) -> bool:
        """The program declared an ingress without TLS for an https URL (`airflow.tls.terminatedUpstream`):
        nginx then plays a load balancer ending TLS in front of a plain-HTTP ingress."""
        hosts = ((self.values.get("ingress") or {}).get("apiServer") or {}).get("hosts") or []
        return self.base_url.startswith("https://") and bool(hosts) and not any("tls" in host for host in hosts)

    @property
    def redirect_uri(self) -> str:
        """The one redirect URI registered at the IdP."""
        (uri,) = self.idp["redirect_uris"]
        return str(uri)

    @property
    def provider_name(self) -> str:
        """The OAuth provider name in Airflow (the last segment of the callback path)."""
        path = urlsplit(self.redirect_uri).path
        if not path.startswith(CALLBACK_PREFIX):
            raise HarnessError(f"redirect URI {self.redirect_uri} is not Airflow's OAuth callback")
        return path.removeprefix(CALLBACK_PREFIX)

    @property
    def is_keycloak(self) -> bool:
        """The IdP is a real Keycloak (no response shims; its own refusals)."""
        return self.idp["kind"] == "keycloak"

    @property
    def redirect_uri_refused(self) -> str:
        """The text the IdP's error page shows for an unregistered redirect URI."""
        return REDIRECT_URI_REFUSED.get(self.idp["kind"], OIDC_PROVIDER_REDIRECT_URI_REFUSED)

    @property
    def idp_groups(self) -> IdpGroups:
        """The groups claim as the IdP side declares it."""
        if self.idp["kind"] == "okta":
            # The declared getFilteredGroups claim, evaluated by id; the assignments are ids too.
            names = {group_id: group["name"] for group_id, group in self.okta_directory.items()}
            return IdpGroups.okta_claim(
                self.idp["groups_claim"], self.idp["groups_expression"], names, self.idp["assigned_groups"]
            )
        # Entra's assignments when its service principal requires assignment.
        assigned = self.idp.get("assigned_groups") if self.idp["kind"] == "azuread" else None
        return IdpGroups(
            claim=self.idp["groups_claim"],
            filter=self.idp["groups_filter"],
            assigned_groups=assigned,
            claim_values=self.idp.get("claim_values"),
        )

    @property
    def okta_directory(self) -> dict[str, dict[str, str]]:
        """Okta: the org's groups (id -> name, type): as captured, plus the harness's own (Everyone,
        a group assigned nowhere, and for each bound group an APP_GROUP of the same name)."""
        directory = dict(self.idp["group_directory"])
        directory.setdefault(OKTA_EVERYONE, {"name": "Everyone", "type": "BUILT_IN"})
        directory[OKTA_CONTRACTORS] = {"name": "contractors", "type": "OKTA_GROUP"}
        for group_id in self.idp_bound_ids:
            name = directory[group_id]["name"]
            directory[mock_group_id(f"APP_GROUP:{name}")] = {"name": name, "type": "APP_GROUP"}
        return directory

    @property
    def idp_bound_ids(self) -> list[str]:
        """Okta: the ids of the groups the stack binds (the assigned ones, Everyone aside)."""
        return [group_id for group_id in self.idp["assigned_groups"] if group_id in self.idp["group_directory"]]

    def membership(self, group: str) -> str:
        """The raw membership at the IdP for a group as the claim names it (Okta: the bound group's id)."""
        if self.idp["kind"] != "okta":
            return group
        (group_id,) = [g for g in self.idp_bound_ids if self.idp["group_directory"][g]["name"] == group]
        return group_id

    def group_name(self, membership: str) -> str:
        """A raw membership as people read it (Okta: the group's name and type)."""
        if self.idp["kind"] != "okta":
            return membership
        group = self.okta_directory[membership]
        return group["name"] + (f" ({group['type']})" if group["type"] != "OKTA_GROUP" else "")

    @property
    def default_role_groups(self) -> list[str]:
        """Groups assigned at the IdP beyond the access groups (signIn.extraGroups), as the claim names them."""
        if "default_role_groups" in self.idp:  # Keycloak: no assignment, Airflow's default-role paths
            return list(self.idp["default_role_groups"])
        access = {group for group, _ in self._captured_access()}
        if self.idp["kind"] == "okta":  # the app's assigned groups, by id
            directory = self.idp["group_directory"]
            return [directory[g]["name"] for g in self.idp_bound_ids if directory[g]["name"] not in access]
        return [group for group in self.idp.get("assigned_groups") or [] if group not in access]

    def _captured_access(self) -> list[tuple[str, str]]:
        claimed = claim_value_of(self.idp["kind"])
        return [(claimed(entry["group"]), entry["role"]) for entry in self.capture["outputs"]["access"]]

    def provider_claims(self) -> dict[str, list[str]]:
        """scope -> claims: every captured scope accepted; the groups claim on the groups scope."""
        scopes = list(self.idp["scopes"])
        extra = [scope for scope in scopes if scope not in STANDARD_SCOPES]
        if len(extra) > 1:
            raise HarnessError(f"more than one non-standard scope, which is the groups scope? {extra}")
        claims = {scope: list(DEFAULT_CLAIMS.get(scope, [])) for scope in scopes}
        # Without a groups scope the IdP sends the groups claim with every token (with `openid`).
        groups_scope = extra[0] if extra else "openid"
        claims[groups_scope] = [*claims.get(groups_scope, []), self.idp["groups_claim"]]
        # Claims the IdP puts in every ID token (Entra: `oid`, `tid`).
        claims["openid"] = [*claims.get("openid", []), *self.idp.get("token_claims", [])]
        return claims

    def user_claims(self, account: str, groups: Sequence[str]) -> dict[str, Any]:
        """A test user's claims at the IdP, with what the kind adds (Entra: a stable `oid`, the tenant's `tid`)."""
        claims = _claims(account, groups)
        if self.idp["kind"] == "azuread":
            claims["oid"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"airflow-oidc-e2e:{account}"))
            claims["tid"] = self.idp["tenant"]
        if self.idp["kind"] == "google":
            # A Workspace account: its email in the domain, `hd` in every ID token (Google's own claims).
            claims.update(email=f"{account}@{self.idp['domain']}", hd=self.idp["domain"], email_verified=True)
            claims["preferred_username"] = claims["email"]
        return claims

    def make_users(self) -> dict[str, E2eUser]:
        """One user per mapped group, an outsider, default-role users, a mover and one per control."""
        access = self._captured_access()
        first_group, last_group = access[0][0], access[-1][0]
        plan: list[tuple[str, str, list[str]]] = []
        seen: set[str] = set()
        okta = self.idp["kind"] == "okta"
        everyone = [OKTA_EVERYONE if okta else "Everyone"]
        member = self.membership
        for group, role in access:
            account = role.lower()
            if self.is_keycloak and len(account) < 3:
                account = {"op": "operator"}.get(account, account.ljust(3, "x"))  # Keycloak: 3-255 characters
            while account in seen:
                account += "-2"
            seen.add(account)
            # "Everyone" is Okta's built-in group; assigned to no app here, so the filter drops it.
            plan.append((account, "mapped", [member(group)] if self.is_keycloak else [member(group), *everyone]))
        # Keycloak: every realm user may authenticate to every client; this one is in no group at all.
        contractors = OKTA_CONTRACTORS if okta else "contractors"
        plan.append((OUTSIDER, "unmapped", [] if self.is_keycloak else [*everyone, contractors]))
        for index, group in enumerate(self.default_role_groups):
            plan.append((f"default-role{'' if index == 0 else index + 1}", "default-role", [member(group)]))
            if index == 0:
                plan.append(("mapped-and-default", "mapped+default", [member(last_group), member(group)]))
        plan.append((MOVER, "mover", [member(last_group)]))
        plan.extend((f"nc-{control}", "control", [member(first_group)]) for control in CONTROLS)
        if okta:
            # An APP_GROUP (another id) named like the Admin group: alone, unassigned at Okta; beside a
            # lower mapped group, that group's role only (the claim selects ids, never that name).
            admins = next(group for group, role in access if role == "Admin")
            impostor = mock_group_id(f"APP_GROUP:{admins}")
            plan.append((f"{IMPOSTOR}-alone", IMPOSTOR, [impostor]))
            plan.append((IMPOSTOR, IMPOSTOR, [impostor, member(last_group)]))

        idp_groups = self.idp_groups
        users = {}
        for account, kind, groups in plan:
            refused_at_idp = not idp_groups.admits(groups)
            if self.idp["kind"] == "google":
                visible = list(groups)  # Google's tokens carry no groups: the api-server asks Cloud Identity
            elif okta:
                visible = idp_groups.emitted(groups)  # the names of the groups the claim selects by id
            else:
                visible = idp_groups.visible_groups(groups)
            roles = frozenset() if refused_at_idp else self.intent.roles_for(visible)
            claims = self.user_claims(account, groups)
            subject = account if self.intent.username_claim == "sub" else claims[self.intent.username_claim]
            users[account] = E2eUser(
                account_id=account,
                kind=kind,
                groups=tuple(groups),
                username=f"{self.provider_name}_{subject}",
                expected_roles=roles,
                refused_at_idp=refused_at_idp,
                # Keycloak checks passwords: one per user, shown by `make demo` (test users, loopback only).
                password=f"{account}-{secrets.token_hex(3)}" if self.is_keycloak else "any-password",
                group_names=tuple(self.group_name(group) for group in groups) if okta else (),
            )
        return users

    def users_of(self, *kinds: str) -> list[E2eUser]:
        """The users of these kinds."""
        return [user for user in self.users.values() if user.kind in kinds]

    @property
    def admin(self) -> E2eUser:
        """A mapped user the spec makes Admin (reads users through Airflow's API)."""
        for user in self.users_of("mapped"):
            if "Admin" in user.expected_roles:
                return user
        raise HarnessError("the stack maps no group to Admin: no user can read roles through Airflow's API")

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Capture, then start everything (independent parts in parallel)."""
        started = time.monotonic()
        self.capture = run_capture(self.stack_file, self.run.path / "capture.json")
        self.timings["capture"] = time.monotonic() - started
        idp = self.idp
        self.users = self.make_users()

        declared = urlsplit(idp["issuer"])
        if declared.path.rstrip("/") != idp["issuer_path"]:
            raise HarnessError(f"issuer {idp['issuer']} does not end with the declared path {idp['issuer_path']!r}")
        # A loopback issuer (the local stack's) is served as is; any other keeps its path only.
        loopback_issuer = bool(declared.scheme == "http" and declared.hostname == "127.0.0.1" and declared.port)
        keycloak_server: KeycloakServer | None = None
        if loopback_issuer and declared.port:
            provider_port = declared.port
            if self.is_keycloak:
                keycloak_server = self.services.keycloak(provider_port)
            if keycloak_server is None or not self.services.keycloak_started:
                _require_free(provider_port, "the OpenID provider (the stack's issuer)")
        elif self.is_keycloak:
            keycloak_server = self.services.keycloak()  # any port will do: only the issuer's host moves
            assert keycloak_server is not None
            provider_port = keycloak_server.port
        else:
            provider_port = free_port()
        _require_free(self.https_port, f"nginx for {self.base_url}")
        if self.https_port < 1024 and os.geteuid() != 0:
            raise HarnessError(f"{self.base_url} needs port {self.https_port}, which only root can bind")
        local_issuer = f"http://127.0.0.1:{provider_port}{idp['issuer_path']}"

        self.client = OidcClient(
            client_id=idp["client_id"],
            client_secret=idp["client_secret_at_idp"],
            redirect_uris=list(idp["redirect_uris"]),
            post_logout_redirect_uris=list(idp["post_logout_redirect_uris"]),
        )
        self.database = AirflowDatabase(self.services, self.capture["stack"])
        self.provider: OidcProvider | KeycloakIdp
        if self.is_keycloak:
            self.provider = KeycloakIdp(
                self.run.sub("keycloak"),
                idp,
                self._realm_users(),
                # The run's Keycloak (started beside the database); one of its own when that is on another port.
                server=keycloak_server or KeycloakServer(self.run.sub("keycloak"), port=provider_port),
                start_server=self.services.start_keycloak if keycloak_server else None,
            )
        else:
            provider_class: type[OidcProvider] = OidcProvider
            kind_args: dict[str, Any] = {}
            if idp["kind"] == "google":
                # The Cloud Identity and metadata-server stand-ins run beside it (localdev/harness/google.py).
                provider_class = GoogleOidcProvider
                kind_args = {"service_account": idp["groups_reader"], "project": idp["project"]}
            self.provider = provider_class(
                self.run.sub("provider"),
                self.client,
                {account: self.user_claims(account, user.groups) for account, user in self.users.items()},
                issuer_path=idp["issuer_path"],
                claims=self.provider_claims(),
                port=provider_port,
                idp_groups=self.idp_groups,
                **kind_args,
            )
        # Service accounts (kind oidc): registered at the provider exactly as `serviceAccountRegistration`
        # says, plus one the spec does not name (a negative control); the secrets are the harness's own.
        registration = self.capture["outputs"].get("serviceAccountRegistration") or []
        self.machine_clients = service_account_clients(registration)
        if isinstance(self.provider, OidcProvider) and registration:
            self.provider.machine_clients = list(self.machine_clients.values())
            self.provider.resource_servers = service_account_resources(registration)
        # Okta (custom server): the service apps its client-credentials policy names, with the secrets Okta
        # holds, tokens shaped like Okta's (`cid`, `scp`) for the server's audience; plus another stack's
        # service app on the same shared server, with that stack's scope.
        okta_accounts = idp.get("service_accounts") or []
        if isinstance(self.provider, OidcProvider) and okta_accounts:
            audience = str(self.auth_settings()["serviceAccounts"]["audience"])
            self.machine_clients = {a["name"]: MachineClient(a["client_id"], a["client_secret"]) for a in okta_accounts}
            self.machine_clients[UNLISTED_SERVICE_ACCOUNT] = MachineClient("0oa-other-stack", secrets.token_urlsafe(24))
            scopes = " ".join([*idp["service_account_scopes"], OTHER_STACK_SCOPE])
            self.provider.machine_clients = list(self.machine_clients.values())
            self.provider.resource_servers = {uri: {"scope": scopes, "ttl": 600} for uri in (audience, OTHER_RESOURCE)}
            self.provider.token_profile = "okta"
            self.provider.default_machine_resource = audience
        try:
            start_in_parallel(self._stack, [self.database, self.provider])
            self.timings["database+provider"] = time.monotonic() - started
            if isinstance(self.provider, KeycloakIdp):
                # The Airflow username names Keycloak's user id (`sub`), known once the user exists.
                ids = self.provider.user_ids
                self.users = {
                    account: replace(user, username=f"{self.provider_name}_{ids[account]}")
                    for account, user in self.users.items()
                }
            if self.provider.issuer != local_issuer:
                raise HarnessError(f"the provider's issuer is {self.provider.issuer}, expected {local_issuer}")
            self._check_scopes_supported()

            values = self.values
            api_server = values["apiServer"]
            self.declared_env = airflow_env(values, self.capture["airflow"]["secrets"])
            if self.declared_env.get("FORWARDED_ALLOW_IPS", "*") != "*":
                # A declared range is the cluster's ingress controller pods; here that controller is nginx,
                # connecting from one loopback address: it stands in for the range (`*` stays as declared).
                self.declared_env["FORWARDED_ALLOW_IPS"] = UPSTREAM_BIND
            # Every container's volumes (the auth-manager module's ConfigMap) and env (PYTHONPATH).
            self.declared_env.update(
                all_containers_env(values, self.capture["airflow"].get("config_maps") or {}, self.run.sub("volumes"))
            )
            # As in webserver_config.py, only the issuer's scheme and host move to the local provider.
            with_local_issuer_in_auth_settings(self.run.sub("volumes"), idp["issuer"], local_issuer)
            if isinstance(self.provider, GoogleOidcProvider):
                # Not declared (on GKE these are Google's): the harness points the api-servers at the stand-ins.
                self.declared_env.update(self.provider.api_server_env)
            self.airflow = AirflowApiServers(
                self.run.sub("airflow"),
                with_local_issuer(api_server["apiServerConfig"], idp["issuer"], local_issuer),
                self.declared_env,
                self.database.url,
                # At least two: every sign-in starts on one api-server and finishes on the other.
                count=max(2, int(api_server.get("replicas") or 1)),
                extra_args=api_server_extra_args(api_server.get("args") or []),
                migrated=True,  # the database service migrated it (a template's copy, or in place)
            )
            self.nginx = Nginx(
                self.run.sub("nginx"),
                self.hostname,
                self.airflow.upstreams,
                listen_port=self.https_port,
                pin_paths=SPLIT_OAUTH_FLOW,
                tls_terminated_upstream=self.tls_terminated_upstream,
            )
            if self.with_browser:
                self.browser = self.services.browser()
            start_in_parallel(self._stack, [self.airflow, self.nginx])
            if self.dags_folder is not None:
                self.components = AirflowComponents(self.airflow, self.dags_folder)
                start_in_parallel(self._stack, [self.components])
        except BaseException:
            self._stack.close()
            raise
        self.timings["ready"] = time.monotonic() - started

    def stop(self) -> None:
        """Stop everything that was started (in reverse order); private services too."""
        try:
            self._stack.close()
        finally:
            if self.owns_services:
                self.services.close()

    def _realm_users(self) -> list[RealmUser]:
        users = []
        for account, user in self.users.items():
            claims = _claims(account, user.groups)
            users.append(
                RealmUser(
                    username=account,
                    password=user.password,
                    email=claims["email"],
                    first_name=claims["given_name"],
                    last_name=claims["family_name"],
                    groups=user.groups,
                )
            )
        return users

    def _check_scopes_supported(self) -> None:
        response = requests.get(self.provider.discovery_url, timeout=5)
        supported = set(response.json().get("scopes_supported", []))
        missing = set(self.idp["scopes"]) - supported
        if missing:
            raise HarnessError(f"the provider does not accept the declared scopes {sorted(missing)}")

    # --- what tests do ---------------------------------------------------------------------------

    def login(
        self,
        user: E2eUser | str,
        *,
        label: str | None = None,
        settle: bool = False,
        context: BrowserContext | None = None,
        keep_context: bool = False,
        expect_text: str | None = None,
    ) -> LoginResult:
        """A browser sign-in at the public URL (fresh cookie jar unless `context`).

        Without `context` or `keep_context`, the browser's reusable page signs in with every cookie
        cleared first (`Browser.login(reuse_context=True)`: the same fresh cookie jar, half the CPU) and
        is left on about:blank; otherwise the cookie jar is closed afterwards unless `keep_context`:
        Airflow's UI keeps polling the API from an open page, which would only add noise (and requests
        during a restart).
        `expect_text`: the final page must show it (waited for up to STATE_DEADLINE); otherwise the
        assertion fails with the page and the tails of the api-servers' and the provider's logs.
        """
        account = user if isinstance(user, str) else user.account_id
        known = self.users.get(account)
        marks, provider_mark = self.airflow_log_marks(), self.provider_log_mark()
        result = self.browser.login(
            self.base_url,
            self.provider_name,
            account,
            password=known.password if known else "any-password",
            label=f"{self.capture['stack']}-{label or account}",
            settle=settle,
            context=context,
            expect_text=expect_text,
            reuse_context=context is None and not keep_context,
        )
        if not keep_context and result.context is not None:
            result.context.close()
            result.context = None
        if expect_text is not None and expect_text not in result.page_text:
            raise AssertionError(
                f"the sign-in of {account} ended without {expect_text!r} on the page: ended at {result.final_url}: "
                f"{result.page_text[:500]!r}; steps {result.steps}\n"
                "--- api-servers logged meanwhile (last 4000 characters) ---\n"
                f"{self.airflow_log_since(marks)[-4000:]}\n"
                f"--- the provider logged meanwhile (last 2000 characters) ---\n"
                f"{self.provider_log_since(provider_mark)[-2000:]}"
            )
        return result

    def admin_token(self) -> str:
        """The `_token` of the Admin user (signed in once per api-server environment)."""
        if self._admin_token is None:
            result = self.login(self.admin, label="admin-token")
            if not result.token:
                raise HarnessError(f"the Admin user could not sign in: {result.final_url} {result.page_text[:300]}")
            self._admin_token = result.token
        return self._admin_token

    def roles(self, username: str, *, server: int = 0) -> set[str] | None:
        """The user's roles through Airflow's API (`GET /auth/fab/v1/users/<username>`); None: no such user."""
        response = self.airflow.fab_user(self.admin_token(), username, server=server)
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise HarnessError(f"GET /auth/fab/v1/users/{username}: {response.status_code} {response.text[:300]}")
        return {role["name"] for role in response.json()["roles"]}

    def has_user_row(self, username: str) -> bool:
        """Whether FAB's ab_user holds `username` (read from the database: valid whatever the keys)."""
        return self.airflow.user_exists(username)

    def use_airflow(
        self, *, env: Mapping[str, str] | None = None, per_process_env: Sequence[Mapping[str, str]] | None = None
    ) -> None:
        """Run the api-servers with these overrides of the declared environment (none: as declared).

        Restarts only the api-servers whose environment changes, and only when it changes; tests that
        need the declared state call this with none, so a negative control's restart is undone only
        when someone needs it undone. Mark a test that calls it with overrides
        `@pytest.mark.restarts_airflow("<state>")`: such tests run after the stack's others, grouped
        by state (tests/e2e/conftest.py), so the same overrides cost one restart per run.
        """
        wanted = AirflowState(dict(env or {}), [dict(extra) for extra in per_process_env or []])
        if wanted == self._airflow_state:
            return
        self._airflow_state = wanted
        restarted = self.airflow.restart_servers(
            env={**self.declared_env, **wanted.env},
            per_process_env=wanted.per_process_env or [{}] * self.airflow.count,
        )
        if 0 in restarted:
            self._admin_token = None  # read through api-server 0: its keys may have changed

    def proxy_handling_off(self) -> list[dict[str, str]]:
        """`per_process_env` for `use_airflow`: proxy handling off on api-server 0, where every sign-in
        starts (SPLIT_OAUTH_FLOW) and the redirect URI is built; the others as declared."""
        return [dict(PROXY_HANDLING_OFF)] + [{} for _ in range(self.airflow.count - 1)]

    @contextmanager
    def provider_registered_with(self, **changes: Any) -> Iterator[None]:
        """Restart only the provider with the client registered otherwise, e.g. `redirect_uris=[...]`
        (Keycloak: the client changed in place through the Admin API, then changed back)."""
        if isinstance(self.provider, KeycloakIdp):
            with self.provider.registered_with(**changes):
                yield
            return
        registered = OidcClient(**{**self.client.__dict__, **changes})
        self.provider.restart(registered)
        try:
            yield
        finally:
            self.provider.restart(self.client)

    def per_process_keys(self) -> list[dict[str, str]]:
        """`per_process_env` for `use_airflow`: api-servers that do not share their [api] secret_key and
        [api_auth] jwt_secret (what an unpinned chart does, each pod its own): api-server 0, where every
        sign-in starts, gets keys of its own, the others keep the declared ones, so one restart is
        enough (and the next control, `proxy_handling_off()`, again restarts api-server 0 only). The
        same keys for every call: tests asking for it share one restart."""
        if self._own_keys is None:
            self._own_keys = [
                {
                    "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
                    "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
                }
            ] + [{} for _ in range(self.airflow.count - 1)]
        return [dict(extra) for extra in self._own_keys]

    def airflow_log_since(self, marks: Sequence[int]) -> str:
        """Everything the api-servers logged after `marks` (from `airflow_log_marks()`)."""
        return "".join(_read_from(path, mark) for path, mark in zip(self.airflow.log_paths, marks, strict=True))

    def airflow_log_marks(self) -> list[int]:
        """Current sizes of the api-server logs."""
        return [path.stat().st_size if path.exists() else 0 for path in self.airflow.log_paths]

    def expect_airflow_log(self, marks: Sequence[int], text: str, *, timeout: float = STATE_DEADLINE) -> str:
        """What the api-servers logged after `marks`, once it contains `text` (waited for up to `timeout`);
        an AssertionError with the end of their logs otherwise."""
        return wait_for_text(
            lambda: self.airflow_log_since(marks),
            text,
            what=f"the api-servers' logs ({', '.join(str(path) for path in self.airflow.log_paths)})",
            timeout=timeout,
        )

    def expect_provider_log(self, mark: int, text: str, *, timeout: float = STATE_DEADLINE) -> str:
        """What the provider logged after `mark`, once it contains `text` (waited for up to `timeout`);
        an AssertionError with the end of its log otherwise."""
        return wait_for_text(
            lambda: self.provider_log_since(mark),
            text,
            what=f"the provider's log ({self.provider.log_path})",
            timeout=timeout,
        )

    def provider_log_since(self, mark: int) -> str:
        """What the provider logged after `mark` (a size of its log)."""
        return _read_from(self.provider.log_path, mark)

    def provider_log_mark(self) -> int:
        """Current size of the provider's log."""
        return self.provider.log_path.stat().st_size

    def service_account_token(self, account: str, *, resource: str | None = None, scope: str | None = None) -> str:
        """An access token for service account `account` (or `UNLISTED_SERVICE_ACCOUNT`) from the provider,
        by the client-credentials grant, as a CI job gets it: for `resource` (default: the registered one;
        Okta: the server's audience) and, for Okta, `scope` (default: the scopes the stack's rule grants)."""
        if not isinstance(self.provider, OidcProvider):
            raise HarnessError("service-account tokens come from the oidc provider only")
        client = self.machine_clients[account]
        if self.idp["kind"] == "okta":
            granted = " ".join(self.idp["service_account_scopes"])
            return self.provider.client_credentials_token(client, resource, granted if scope is None else scope)
        registered = self.capture["outputs"]["serviceAccountRegistration"][0]["resource"]
        return self.provider.client_credentials_token(client, resource or registered, scope)

    def auth_settings(self) -> dict[str, Any]:
        """The auth-manager module's settings as the program declared them (its ConfigMap's JSON)."""
        for data in (self.capture["airflow"].get("config_maps") or {}).values():
            if "airflow_oidc_auth.json" in data:
                return dict(json.loads(data["airflow_oidc_auth.json"]))
        raise HarnessError("the program declares no ConfigMap with airflow_oidc_auth.json")


UNLISTED_SERVICE_ACCOUNT = "unlisted"
"""A client-credentials client registered at the provider that the spec does not list."""
OTHER_RESOURCE = "https://other-api.example.com"
"""Another API at the same provider: its tokens' `aud` is not Airflow's."""
OTHER_STACK_SCOPE = "airflow_another_stack_api"
"""Another stack's API scope on a shared Okta custom server."""


def service_account_clients(registration: Sequence[Mapping[str, Any]]) -> dict[str, MachineClient]:
    """Account name -> the client registered at the provider (the unlisted one too, when any is declared)."""
    if not registration:
        return {}
    clients = {entry["name"]: MachineClient(entry["clientId"], secrets.token_urlsafe(24)) for entry in registration}
    clients[UNLISTED_SERVICE_ACCOUNT] = MachineClient("airflow-unlisted-automation", secrets.token_urlsafe(24))
    return clients


def service_account_resources(registration: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """The resource servers the provider accepts: the registered `resource` (Airflow) and another API."""
    resources = {entry["resource"]: {"scope": "api", "ttl": 600} for entry in registration}
    resources[OTHER_RESOURCE] = {"scope": "api", "ttl": 600}
    return resources


def all_containers_env(
    values: Mapping[str, Any], config_maps: Mapping[str, Mapping[str, str]], root: Path
) -> dict[str, str]:
    """The chart's top-level `env` (every Airflow container's), with the paths of the top-level
    `volumeMounts` of ConfigMap volumes moved to local copies of the ConfigMaps' files under `root`."""
    local: dict[str, Path] = {}
    volumes = {volume["name"]: volume for volume in values.get("volumes") or []}
    for mount in values.get("volumeMounts") or []:
        volume = volumes.get(mount["name"])
        if volume is None or "configMap" not in volume:
            raise HarnessError(f"volumeMounts names {mount['name']!r}, which is no ConfigMap volume of the values")
        name = volume["configMap"]["name"]
        if name not in config_maps:
            raise HarnessError(f"the values mount ConfigMap {name!r}; the program declares none")
        directory = root / mount["name"]
        directory.mkdir(parents=True, exist_ok=True)
        for key, text in config_maps[name].items():
            (directory / key).write_text(text)
        local[mount["mountPath"].rstrip("/")] = directory
    env: dict[str, str] = {}
    for item in values.get("env") or []:
        value = helm_string(item["value"])
        for mount_path, directory in local.items():
            value = re.sub(rf"(?<![^:]){re.escape(mount_path)}(?=$|[:/])", str(directory), value)
        env[item["name"]] = value
    return env


def with_local_issuer_in_auth_settings(root: Path, declared_issuer: str, local_issuer: str) -> None:
    """The materialised `airflow_oidc_auth.json` files with the service accounts' issuer (and its discovery
    URL) moved from the declared issuer to the local provider; any other issuer there is an error."""
    for path in root.glob("*/airflow_oidc_auth.json"):
        settings = json.loads(path.read_text())
        accounts = settings.get("serviceAccounts")
        if not accounts or local_issuer == declared_issuer:
            continue
        if accounts["issuer"] != declared_issuer or not accounts["discoveryUrl"].startswith(declared_issuer + "/"):
            raise HarnessError(f"{path.name} trusts {accounts['issuer']}, the IdP side declares {declared_issuer}")
        accounts["issuer"] = local_issuer
        accounts["discoveryUrl"] = local_issuer + accounts["discoveryUrl"][len(declared_issuer) :]
        path.write_text(json.dumps(settings, indent=2))


def _require_free(port: int, what: str) -> None:
    if not port_is_free(port):
        raise HarnessError(
            f"port {port} on 127.0.0.1 is taken, but {what} must listen there: "
            "stop whatever uses it (another `make demo`?) and run again"
        )


def _read_from(path: Path, offset: int) -> str:
    with path.open("rb") as log:
        log.seek(offset)
        return log.read().decode(errors="replace")


def stack_file(name: str) -> Path:
    """`stacks/Pulumi.<name>.yaml`."""
    return STACKS / f"Pulumi.{name}.yaml"
