"""The guardrails as plain functions, importable without pulumi_policy's analyzer server.

The pack (`policy/__main__.py`) adapts them to `pulumi preview --policy-pack policy`; `airflow-oidc plan`
and the tests apply them to a mock-engine run, so a pull request from a fork gets the same verdict.

Input: `Declared` records, one per resource the program declared: its type token, logical name,
inputs (camelCase, as the engine sees them, secrets unwrapped; a value unknown during preview is
`UNKNOWN` and is never judged) and whether it is protected. Every rule returns violation messages;
an empty list is a pass. A resource of a type a rule does not know passes it.

- Resource rules: `rule(resource, config) -> list[str]`.
- Stack rules (they need the other resources or the environment): `rule(resources, config[, environment])
  -> list[Violation]`, each naming the resource it is about.

`config` is the policy's pack configuration (`--policy-pack-config`); missing keys take the defaults below.
"""

from __future__ import annotations

import ast
import fnmatch
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

try:
    from components.protection import DEFAULT_PROTECTED_ENVIRONMENTS, fernet_key_protected, identity_protected
except ImportError:
    # `plan --base` loads these rules beside an older revision's `components` (the side's own code comes
    # first on sys.path), which may predate protection.py: the rules' own project's file, by path.
    import importlib.util
    import sys

    _spec = importlib.util.spec_from_file_location(
        "airflow_oidc_rules_protection", Path(__file__).resolve().parent.parent / "components" / "protection.py"
    )
    assert _spec is not None and _spec.loader is not None
    _protection = importlib.util.module_from_spec(_spec)
    sys.modules[_spec.name] = _protection
    _spec.loader.exec_module(_protection)
    DEFAULT_PROTECTED_ENVIRONMENTS = _protection.DEFAULT_PROTECTED_ENVIRONMENTS
    fernet_key_protected = _protection.fernet_key_protected
    identity_protected = _protection.identity_protected

# Type tokens.
OKTA_APP = "okta:app/oAuth:OAuth"
OKTA_POLICY_RULE = "okta:auth/serverPolicyRule:ServerPolicyRule"
ENTRA_APP = "azuread:index/application:Application"
ENTRA_SERVICE_PRINCIPAL = "azuread:index/servicePrincipal:ServicePrincipal"
ENTRA_ASSIGNMENT = "azuread:index/appRoleAssignment:AppRoleAssignment"
KEYCLOAK_CLIENT = "keycloak:openid/client:Client"
HELM_RELEASE = "kubernetes:helm.sh/v3:Release"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
K8S_SECRET = "kubernetes:core/v1:Secret"
RANDOM_BYTES = "random:index/randomBytes:RandomBytes"

IDP_APPS = (OKTA_APP, ENTRA_APP, ENTRA_SERVICE_PRINCIPAL, KEYCLOAK_CLIENT)
"""Replacing one of these logs everyone out and changes the client id: protected in protected environments."""

ACCESS_MODEL_FILE = "airflow_oidc_access.json"
"""The auth-manager ConfigMap's key declaring the stack's access model (components/access.py)."""
AUTH_SETTINGS_FILE = "airflow_oidc_auth.json"
"""The auth-manager ConfigMap's key with the service accounts Airflow accepts (name, role)."""

STACK_NAME_LABEL = "airflow-oidc/stack-name"
ENVIRONMENT_LABEL = "airflow-oidc/environment"

DEFAULT_MAX_ACCESS_TOKEN_MINUTES = 60
DEFAULT_MAX_SESSION_MINUTES = 1440

LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1"}
SECRET_WORDS = ("secret", "password", "passwd", "token", "key")
SECRET_ENV_NAME = re.compile(r"SECRET|PASSWORD|PASSWD|TOKEN|PRIVATE_?KEY|API_?KEY", re.IGNORECASE)
SECRET_CONFIG_OPTION = re.compile(r"secret|password|passwd|fernet_key", re.IGNORECASE)
PINNED_VERSION = re.compile(r"^v?\d+\.\d+\.\d+(?:[-+][0-9A-Za-z][0-9A-Za-z.+_-]*)?$")
PINNED_IMAGE_TAG = re.compile(r"^(?:slim-)?v?\d+\.\d+\.\d+(?:[-+][0-9A-Za-z][0-9A-Za-z.+_-]*)?$")
IMAGE_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
IDENTIFIER_WORDS = {"id", "user", "username", "login", "issuer", "url", "uri", "host", "name", "email"}
MIN_SECRET_LENGTH = 8
"""Secret values shorter than this are not hunted for in other resources (too many chance matches)."""

HELM_SECRET_VALUES = (
    ("fernetKey",),
    ("apiSecretKey",),
    ("jwtSecret",),
    ("webserverSecretKey",),
    ("data", "metadataConnection", "pass"),
    ("data", "resultBackendConnection", "pass"),
    ("postgresql", "auth", "password"),
    ("postgresql", "auth", "postgresPassword"),
)
"""Chart values that hold a secret in plain text (the chart offers a `...SecretName` for each)."""


class _Unknown:
    """A value the engine does not know yet (during preview); rules skip it, `pulumi up` checks it again."""

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN: Any = _Unknown()


@dataclass(frozen=True)
class Declared:
    """One declared resource, as a rule sees it."""

    type: str
    """Type token, e.g. `okta:app/oAuth:OAuth`."""
    name: str
    """Logical name (the last part of the URN)."""
    inputs: Mapping[str, Any]
    """Inputs in camelCase, secrets unwrapped; `UNKNOWN` where the engine does not know a value yet."""
    protect: bool = False
    """The `protect` resource option."""
    urn: str = ""
    """The URN when known (the pack reports violations against it)."""

    @classmethod
    def of(cls, record: Any) -> Declared:
        """From anything with `.type .name .inputs .protect` (a mock-engine registration, say)."""
        return cls(record.type, record.name, record.inputs, bool(record.protect), getattr(record, "urn", "") or "")


@dataclass(frozen=True)
class Violation:
    """A stack rule's finding: the resource it is about and the message."""

    resource: Declared
    message: str

    def __str__(self) -> str:
        return self.message


# ---------------------------------------------------------------------------------------------- helpers


def _get(value: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _known(value: Any) -> bool:
    return value is not None and value is not UNKNOWN


def _strings(value: Any) -> list[str]:
    """A list input as its known strings (a single string counts as a list of one)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, Sequence):
        return [item for item in value if isinstance(item, str)]
    return []


def _number(value: Any) -> float | None:
    """A number input: Pulumi hands numbers over as floats, some providers take strings of digits."""
    if isinstance(value, bool) or not _known(value):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def _minutes(value: float) -> str:
    return f"{value:g} min"


def _config_number(config: Mapping[str, Any] | None, key: str, default: float) -> float:
    found = _number((config or {}).get(key))
    return default if found is None else found


def _walk_strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path or ".", value
    elif isinstance(value, Mapping):
        for key, child in value.items():
            yield from _walk_strings(child, f"{path}.{key}" if path else str(key))
    elif isinstance(value, Sequence):
        for index, child in enumerate(value):
            yield from _walk_strings(child, f"{path}[{index}]")


def looks_like_secret_key(key: str) -> bool:
    """A ConfigMap data key that names a secret: `client-secret`, `dbPassword`, `api_token`, `tls.key`."""
    words = [word.lower() for word in re.findall(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])", key)]
    return any(word in SECRET_WORDS or word.endswith(("secret", "password", "passwd", "token")) for word in words)


# ---------------------------------------------------------------------------------------------- redirect URIs


def _redirect_uris(resource: Declared) -> list[tuple[str, str]]:
    """(input path, URI) for every redirect or post-logout URI the resource registers."""
    inputs = resource.inputs
    found: list[tuple[str, str]] = []

    def add(path: str, value: Any) -> None:
        found.extend((path, uri) for uri in _strings(value))

    if resource.type == OKTA_APP:
        add("redirectUris", inputs.get("redirectUris"))
        add("postLogoutRedirectUris", inputs.get("postLogoutRedirectUris"))
    elif resource.type == ENTRA_APP:
        add("web.redirectUris", _get(inputs, "web", "redirectUris"))
        add("web.logoutUrl", _get(inputs, "web", "logoutUrl"))
        add("singlePageApplication.redirectUris", _get(inputs, "singlePageApplication", "redirectUris"))
    elif resource.type == KEYCLOAK_CLIENT:
        add("validRedirectUris", inputs.get("validRedirectUris"))
        add("validPostLogoutRedirectUris", inputs.get("validPostLogoutRedirectUris"))
    return found


def uri_problem(uri: str) -> str | None:
    """Why a redirect URI is refused, or None: https only (http on loopback allowed), no wildcard."""
    if "*" in uri:
        return "contains a wildcard `*`: register the exact callback URI"
    try:
        parts = urlsplit(uri)
        host = (parts.hostname or "").lower()
    except ValueError:
        return "is not a valid URL"
    if parts.scheme == "https" and host:
        return None
    if parts.scheme == "http" and host in LOOPBACK_HOSTS:
        return None
    if parts.scheme == "http":
        return "uses http: only https is allowed (http only for localhost / 127.0.0.1)"
    return "is not an absolute https URL"


def redirect_uris_https(resource: Declared, config: Mapping[str, Any] | None = None) -> list[str]:
    """Redirect and post-logout URIs are https (loopback http excepted) and carry no wildcard."""
    messages = [
        f"{resource.name}: {path} `{uri}` {problem}"
        for path, uri in _redirect_uris(resource)
        if (problem := uri_problem(uri))
    ]
    if resource.type == OKTA_APP:
        wildcard = resource.inputs.get("wildcardRedirect")
        if isinstance(wildcard, str) and wildcard.upper() not in ("", "DISABLED"):
            messages.append(f"{resource.name}: wildcardRedirect is `{wildcard}`: it must be DISABLED")
    return messages


# ---------------------------------------------------------------------------------------------- implicit grant


def no_implicit_grant(resource: Declared, config: Mapping[str, Any] | None = None) -> list[str]:
    """No implicit grant: tokens only through the authorization code flow."""
    inputs = resource.inputs
    messages: list[str] = []
    if resource.type == OKTA_APP:
        if "implicit" in _strings(inputs.get("grantTypes")):
            messages.append(f"{resource.name}: grantTypes contains `implicit`: use authorization_code only")
        tokens = [rt for rt in _strings(inputs.get("responseTypes")) if rt in ("token", "id_token")]
        # A service app (client credentials only, no user, no browser) is where Okta wants `token`.
        machine = inputs.get("type") == "service" and set(_strings(inputs.get("grantTypes"))) == {"client_credentials"}
        if tokens and not machine:
            messages.append(f"{resource.name}: responseTypes {tokens} are implicit-flow responses: use `code` only")
    elif resource.type == ENTRA_APP:
        implicit = _get(inputs, "web", "implicitGrant") or {}
        for flag in ("accessTokenIssuanceEnabled", "idTokenIssuanceEnabled"):
            if _get(implicit, flag) is True:
                messages.append(f"{resource.name}: web.implicitGrant.{flag} is true: turn the implicit grant off")
    elif resource.type == KEYCLOAK_CLIENT and inputs.get("implicitFlowEnabled") is True:
        messages.append(f"{resource.name}: implicitFlowEnabled is true: turn the implicit flow off")
    return messages


# ---------------------------------------------------------------------------------------------- roles


@dataclass(frozen=True)
class RoleMapping:
    """What a rendered webserver_config.py grants: claim value (group, app role) -> Airflow role."""

    roles: dict[str, str]
    default_role: str | None


ROLE_MAPPING_NAMES = ("ROLE_BY_CLAIM_VALUE", "ROLE_BY_GROUP")


def _literal_assignments(text: str, names: Iterable[str]) -> dict[str, Any]:
    """Module-level `NAME = <literal>` assignments of a Python text (never executed)."""
    wanted = set(names)
    found: dict[str, Any] = {}
    try:
        statements: list[ast.stmt] = ast.parse(text).body
    except SyntaxError:
        # Not a whole module (a templated fragment, say): read the assignment lines alone.
        statements = []
        for line in text.splitlines():
            if line.split("=", 1)[0].strip() in wanted:
                try:
                    statements.extend(ast.parse(line.strip()).body)
                except SyntaxError:
                    continue
    for statement in statements:
        if isinstance(statement, ast.Assign) and len(statement.targets) == 1:
            target = statement.targets[0]
            if isinstance(target, ast.Name) and target.id in wanted:
                try:
                    found[target.id] = ast.literal_eval(statement.value)
                except ValueError:
                    found[target.id] = UNKNOWN  # assigned, but not a literal: cannot be judged statically
    return found


def role_mapping(webserver_config: str) -> RoleMapping | None:
    """The claim value -> role mapping of a rendered webserver_config.py, or None when it has none."""
    assigned = _literal_assignments(webserver_config, (*ROLE_MAPPING_NAMES, "DEFAULT_ROLE"))
    name = next((n for n in ROLE_MAPPING_NAMES if n in assigned), None)
    if name is None:
        return None
    mapping = assigned[name]
    if not isinstance(mapping, dict):
        raise ValueError(f"{name} is not a literal dict")
    default = assigned.get("DEFAULT_ROLE")
    return RoleMapping(
        roles={str(key): str(value) for key, value in mapping.items()},
        default_role=default if isinstance(default, str) else None,
    )


def _webserver_configs(values: Mapping[str, Any]) -> list[tuple[str, Any]]:
    return [
        (path, text)
        for path, text in (
            ("apiServer.apiServerConfig", _get(values, "apiServer", "apiServerConfig")),
            ("webserver.webserverConfig", _get(values, "webserver", "webserverConfig")),
        )
        if _known(text)
    ]


ADMIN_ALLOWLIST_KEYS = ("allowedAdminGroups", "allowedAdminServiceAccounts")
"""The keys of an environment's defaults file (`stacks/defaults/<env>.yaml`) naming who may be Admin."""


def project_defaults_dir(root: Path) -> Path:
    """The environment defaults of the project at `root`: `<stackConfigDir>/defaults` (Pulumi.yaml)."""
    config_dir = "."
    try:
        document = yaml.safe_load((root / "Pulumi.yaml").read_text()) or {}
        if isinstance(document, Mapping) and document.get("stackConfigDir"):
            config_dir = str(document["stackConfigDir"]).strip("/")
    except (OSError, yaml.YAMLError):
        pass
    return root / config_dir / "defaults"


def admin_allowlist(defaults_dir: Path | None, environment: str | None) -> dict[str, Any]:
    """The Admin allowlist of `environment`, read from its defaults file: the one list `validate`, the
    program and this pack use. `{}` (anyone) when the environment has no defaults file or the file names
    none; a file that cannot be read allows nobody and says why (`problem`)."""
    if defaults_dir is None or not environment or not re.fullmatch(r"[a-z][a-z0-9-]{0,19}", environment):
        return {}
    path = defaults_dir / f"{environment}.yaml"
    source = f"stacks/defaults/{path.name}" if defaults_dir.parent.name == "stacks" else str(path)
    if not path.is_file():
        return {}
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        return {"source": source, "problem": f"{source} cannot be read ({type(error).__name__})", **_NOBODY}
    config: dict[str, Any] = {"source": source}
    for key in ADMIN_ALLOWLIST_KEYS:
        value = document.get(key) if isinstance(document, Mapping) else None
        if value is None:
            continue
        if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
            return {"source": source, "problem": f"{source}: {key} is not a list of names", **_NOBODY}
        config[key] = list(value)
    return config


_NOBODY: dict[str, list[str]] = {key: [] for key in ADMIN_ALLOWLIST_KEYS}


def _allowed(name: str, patterns: Any) -> bool:
    """`patterns` None (the key is absent): anyone; else a shell-style pattern must match."""
    return patterns is None or any(fnmatch.fnmatchcase(name, pattern) for pattern in _strings(patterns))


def _listed(patterns: Any) -> str:
    return ", ".join(_strings(patterns)) or "none"


@dataclass(frozen=True)
class DeclaredAccess:
    """The access model as the program declared it (`airflow_oidc_access.json`), as plain data."""

    holder: Declared
    """The ConfigMap declaring it."""
    model: Mapping[str, Any]


def declared_access_model(resources: Sequence[Declared]) -> DeclaredAccess | None:
    """The declared access model, or None (a program that declares none, or a value unknown at preview)."""
    for resource in resources:
        if resource.type != CONFIG_MAP:
            continue
        text = _get(resource.inputs, "data", ACCESS_MODEL_FILE)
        if not isinstance(text, str):
            continue
        try:
            model = json.loads(text)
        except ValueError:
            model = None
        return DeclaredAccess(resource, model if isinstance(model, Mapping) else {})
    return None


def _slug(value: str) -> str:
    """As the program names per-group resources (`components.contract.slug`)."""
    return re.sub(r"[^a-z0-9]+", "_", value.lower()).strip("_")


@dataclass(frozen=True)
class RenderedAccess:
    """What the rendered webserver_config.py grants: claim value -> role, and the default role's audience."""

    holder: Declared
    path: str
    roles: dict[str, str]
    default_role: Any
    default_claim_values: Any
    everyone: Any


def rendered_access(resources: Sequence[Declared]) -> tuple[list[RenderedAccess], list[Violation]]:
    """Every role mapping the Helm releases render, and a violation for each that cannot be read."""
    found: list[RenderedAccess] = []
    problems: list[Violation] = []
    for resource in resources:
        values = resource.inputs.get("values") if resource.type == HELM_RELEASE else None
        if not isinstance(values, Mapping):
            continue
        for path, text in _webserver_configs(values):
            if not isinstance(text, str):
                continue
            try:
                mapping = role_mapping(text)
            except ValueError as error:
                problems.append(
                    Violation(resource, f"{resource.name}: values.{path}: the role mapping cannot be read ({error})")
                )
                continue
            if mapping is None:
                continue
            extra = _literal_assignments(text, ("DEFAULT_ROLE_CLAIM_VALUES", "DEFAULT_ROLE_EVERYONE"))
            found.append(
                RenderedAccess(
                    resource,
                    path,
                    mapping.roles,
                    mapping.default_role,
                    extra.get("DEFAULT_ROLE_CLAIM_VALUES", []),
                    extra.get("DEFAULT_ROLE_EVERYONE", False),
                )
            )
    return found, problems


def _model_groups(model: Mapping[str, Any], *, extra: bool = False) -> list[Mapping[str, Any]]:
    groups = _get(model, "audience", "extraGroups") if extra else model.get("groups")
    return [group for group in groups or [] if isinstance(group, Mapping)]


def access_model_mismatches(
    resources: Sequence[Declared], access: DeclaredAccess, rendered: Sequence[RenderedAccess]
) -> list[Violation]:
    """Where the declared access model and what the resources grant disagree: the rendered mapping (claim
    value -> role, default role and its audience), Entra's app-role assignments, the service accounts the
    auth manager accepts. A model that hides a grant is caught here, before its Admins are judged."""
    model, holder = access.model, access.holder
    violations: list[Violation] = []

    def say(resource: Declared, message: str) -> None:
        violations.append(Violation(resource, f"{resource.name}: {message}"))

    groups, extras = _model_groups(model), _model_groups(model, extra=True)
    if not model.get("groups") and not rendered:
        return []
    if model.get("version") != 1 or not isinstance(model.get("groups"), list):
        say(holder, f"data.{ACCESS_MODEL_FILE} is not an access model this pack reads")
        return violations
    for mapping in rendered:
        where = f"values.{mapping.path}"
        modeled = {str(group.get("claimValue")) for group in groups}
        for group in groups:
            value, role = str(group.get("claimValue")), group.get("role")
            if mapping.roles.get(value) != role:
                say(
                    mapping.holder,
                    f"{where} gives the claim value `{value}` {mapping.roles.get(value) or 'no role'}, but the "
                    f"access model says `{group.get('principal')}` gets {role or 'no role'} through it",
                )
        for value, role in mapping.roles.items():
            if value not in modeled:
                say(mapping.holder, f"{where} grants {role} to `{value}`, which the access model does not name")
        audience: Mapping[str, Any] = model.get("audience") or {}
        if _known(mapping.default_role) and mapping.default_role != audience.get("defaultRole"):
            say(
                mapping.holder,
                f"{where} makes {mapping.default_role or 'no role'} the default role, the access model says "
                f"{audience.get('defaultRole') or 'none'}",
            )
        if _known(mapping.everyone) and bool(mapping.everyone) != bool(audience.get("everyone")):
            say(mapping.holder, f"{where} lets everyone sign in = {bool(mapping.everyone)}, the access model does not")
        wanted = {str(group.get("claimValue")) for group in extras}
        if _known(mapping.default_claim_values) and set(_strings(mapping.default_claim_values)) != wanted:
            say(
                mapping.holder,
                f"{where} gives the default role to {sorted(_strings(mapping.default_claim_values))}, the access "
                f"model's extra groups are matched by {sorted(wanted)}",
            )
    violations.extend(_entra_assignment_mismatches(resources, groups + extras))
    violations.extend(_service_account_mismatches(resources, model))
    return violations


def _entra_assignment_mismatches(resources: Sequence[Declared], groups: list[Mapping[str, Any]]) -> list[Violation]:
    """Each app-role assignment of a people's app role names a group of the model, with that group's value."""
    role_values: dict[str, str] = {}
    for resource in resources:
        if resource.type == ENTRA_APP:
            for role in _get(resource.inputs, "appRoles") or []:
                members = _strings(_get(role, "allowedMemberTypes"))
                if isinstance(_get(role, "id"), str) and isinstance(_get(role, "value"), str) and "User" in members:
                    role_values[role["id"]] = role["value"]
    violations: list[Violation] = []
    for resource in resources:
        if resource.type != ENTRA_ASSIGNMENT:
            continue
        value = role_values.get(str(resource.inputs.get("appRoleId")))
        if value is None:
            continue  # not a people's app role of the Airflow app (a service account's grant, say)
        principal = resource.inputs.get("principalObjectId")
        # The group by its object id when the spec gives one, else by the assignment's name (the program
        # names it after the group: a created group's object id is unknown until it exists).
        matches = [
            group
            for group in groups
            if principal == group.get("principal")
            or resource.name.endswith("-assignment-" + _slug(str(group.get("group"))))
        ]
        if not matches:
            violations.append(
                Violation(
                    resource, f"{resource.name}: assigns the app role {value} to a group the access model does not name"
                )
            )
        elif all(group.get("claimValue") != value for group in matches):
            violations.append(
                Violation(
                    resource,
                    f"{resource.name}: assigns the app role {value} to `{matches[0].get('principal')}`, the access "
                    f"model says {matches[0].get('claimValue')}",
                )
            )
    return violations


def _service_account_mismatches(resources: Sequence[Declared], model: Mapping[str, Any]) -> list[Violation]:
    """The accounts the auth manager accepts (name, role) are the model's (when the settings are known)."""
    modeled = {
        (str(entry.get("name")), str(entry.get("role")))
        for entry in model.get("serviceAccounts") or []
        if isinstance(entry, Mapping)
    }
    violations: list[Violation] = []
    for resource in resources:
        text = _get(resource.inputs, "data", AUTH_SETTINGS_FILE) if resource.type == CONFIG_MAP else None
        if not isinstance(text, str):
            continue
        try:
            accounts = _get(json.loads(text), "serviceAccounts", "accounts") or {}
        except ValueError:
            continue
        accepted = {
            (str(entry.get("name")), str(entry.get("role")))
            for entry in accounts.values()
            if isinstance(entry, Mapping)
        }
        for name, role in sorted(accepted - modeled):
            violations.append(
                Violation(
                    resource,
                    f"{resource.name}: data.{AUTH_SETTINGS_FILE} accepts the service account `{name}` as {role}, "
                    "which the access model does not say",
                )
            )
    return violations


def admin_only_allowed_groups(
    resources: Sequence[Declared], config: Mapping[str, Any] | None = None
) -> list[Violation]:
    """Airflow's Admin role only for principals the environment allows: groups `allowedAdminGroups` matches
    (exact names or shell-style patterns, over the group as the spec names it), service accounts
    `allowedAdminServiceAccounts` matches, never the default role. Neither key: anyone; only the groups'
    key: no service account may be Admin.

    The principals come from the declared access model, checked first against what the resources grant
    (`access_model_mismatches`); a program declaring no model is judged by its rendered role mapping's
    claim values. `config` is the environment's allowlist (`admin_allowlist`), not a second copy.
    """
    config = config or {}
    source = config.get("source") or "the environment defaults"
    groups_allowed, accounts_allowed = config.get("allowedAdminGroups"), config.get("allowedAdminServiceAccounts")
    if accounts_allowed is None and groups_allowed is not None:
        accounts_allowed = []  # a file that limits Admin groups allows no service account Admin unless it names it
    rendered, violations = rendered_access(resources)
    if config.get("problem"):
        holder = rendered[0].holder if rendered else (resources[0] if resources else Declared("", "stack", {}))
        violations.append(Violation(holder, f"{holder.name}: the Admin allowlist: {config['problem']}"))
    access = declared_access_model(resources)
    if access is None:
        for mapping in rendered:
            for claim, role in mapping.roles.items():
                if role == "Admin" and not _allowed(claim, groups_allowed):
                    violations.append(
                        Violation(
                            mapping.holder,
                            f"{mapping.holder.name}: values.{mapping.path} grants Admin to `{claim}`, which "
                            f"{source} does not allow (allowedAdminGroups: {_listed(groups_allowed)})",
                        )
                    )
            if mapping.default_role == "Admin":
                violations.append(
                    Violation(
                        mapping.holder,
                        f"{mapping.holder.name}: values.{mapping.path} makes Admin the default role (users in no "
                        "access group): Admin only through an allowed group",
                    )
                )
        return violations
    violations.extend(access_model_mismatches(resources, access, rendered))
    model, holder = access.model, access.holder
    for group in _model_groups(model):
        name = str(group.get("group"))
        if group.get("role") == "Admin" and not _allowed(name, groups_allowed):
            violations.append(
                Violation(
                    holder,
                    f"{holder.name}: grants Admin to `{group.get('principal')}` ({group.get('key')}), which "
                    f"{source} does not allow (allowedAdminGroups: {_listed(groups_allowed)})",
                )
            )
    if _get(model, "audience", "defaultRole") == "Admin":
        violations.append(
            Violation(
                holder,
                f"{holder.name}: makes Admin the default role (users in no access group): Admin only through an "
                "allowed group",
            )
        )
    for account in model.get("serviceAccounts") or []:
        name = str(_get(account, "name"))
        if _get(account, "role") == "Admin" and not _allowed(name, accounts_allowed):
            violations.append(
                Violation(
                    holder,
                    f"{holder.name}: grants Admin to the service account `{name}`, which "
                    f"{source} does not allow (allowedAdminServiceAccounts: {_listed(accounts_allowed)})",
                )
            )
    return violations


# ---------------------------------------------------------------------------------------------- lifetimes


def lifetimes_within_bounds(resource: Declared, config: Mapping[str, Any] | None = None) -> list[str]:
    """Access tokens at most `maxAccessTokenMinutes` (60); sessions at most `maxSessionMinutes` (1440);
    the idle timeout no longer than the session.

    Airflow's own JWT (`[api_auth] jwt_expiration_time`) is the UI session's credential, so it is
    bounded like the session, not like an IdP access token.
    """
    max_access = _config_number(config, "maxAccessTokenMinutes", DEFAULT_MAX_ACCESS_TOKEN_MINUTES)
    max_session = _config_number(config, "maxSessionMinutes", DEFAULT_MAX_SESSION_MINUTES)
    inputs = resource.inputs
    messages: list[str] = []

    def bound(path: str, minutes: float | None, limit: float, what: str) -> None:
        if minutes is not None and minutes > limit:
            messages.append(f"{resource.name}: {path} is {_minutes(minutes)}, above the {what} bound {_minutes(limit)}")

    if resource.type == OKTA_POLICY_RULE:
        bound(
            "accessTokenLifetimeMinutes", _number(inputs.get("accessTokenLifetimeMinutes")), max_access, "access-token"
        )
    elif resource.type == KEYCLOAK_CLIENT:
        seconds = {key: _number(inputs.get(key)) for key in ("accessTokenLifespan", "clientSessionIdleTimeout")}
        seconds["clientSessionMaxLifespan"] = _number(inputs.get("clientSessionMaxLifespan"))
        for key, value in seconds.items():
            if _known(inputs.get(key)) and value is None:
                messages.append(f"{resource.name}: {key} `{inputs.get(key)}` is not a number of seconds")
        as_minutes = {key: None if value is None else value / 60 for key, value in seconds.items()}
        bound("accessTokenLifespan", as_minutes["accessTokenLifespan"], max_access, "access-token")
        bound("clientSessionMaxLifespan", as_minutes["clientSessionMaxLifespan"], max_session, "session")
        bound("clientSessionIdleTimeout", as_minutes["clientSessionIdleTimeout"], max_session, "session")
        idle, most = as_minutes["clientSessionIdleTimeout"], as_minutes["clientSessionMaxLifespan"]
        if idle is not None and most is not None and most > 0 and idle > most:
            messages.append(f"{resource.name}: clientSessionIdleTimeout is longer than clientSessionMaxLifespan")
    elif resource.type == HELM_RELEASE:
        airflow_config = _get(inputs, "values", "config")
        if not isinstance(airflow_config, Mapping):
            return messages
        idle = _number(_get(airflow_config, "fab", "session_lifetime_minutes"))
        session = _number(_get(airflow_config, "fab", "session_max_lifetime_minutes"))
        jwt_seconds = _number(_get(airflow_config, "api_auth", "jwt_expiration_time"))
        jwt = None if jwt_seconds is None else jwt_seconds / 60
        bound("values.config.fab.session_max_lifetime_minutes", session, max_session, "session")
        bound("values.config.fab.session_lifetime_minutes", idle, max_session, "session")
        bound("values.config.api_auth.jwt_expiration_time", jwt, max_session, "session")
        if idle is not None and session is not None and idle > session:
            messages.append(
                f"{resource.name}: values.config.fab.session_lifetime_minutes (idle, {_minutes(idle)}) is longer "
                f"than session_max_lifetime_minutes ({_minutes(session)})"
            )
        if jwt is not None and session is not None and jwt > session:
            messages.append(
                f"{resource.name}: values.config.api_auth.jwt_expiration_time ({_minutes(jwt)}) outlives the "
                f"session ({_minutes(session)}): a signed-out user's token would keep working"
            )
    return messages


# ---------------------------------------------------------------------------------------------- pinning


def chart_and_image_pinned(resource: Declared, config: Mapping[str, Any] | None = None) -> list[str]:
    """Every chart version is an exact version; the Airflow chart's image is an exact tag or a sha256 digest."""
    if resource.type != HELM_RELEASE:
        return []
    inputs = resource.inputs
    messages: list[str] = []
    version = inputs.get("version")
    if version is not UNKNOWN and not (isinstance(version, str) and PINNED_VERSION.match(version)):
        messages.append(
            f"{resource.name}: chart version `{version}` is not pinned: give an exact version such as 1.19.0"
        )
    chart = inputs.get("chart")
    if not (isinstance(chart, str) and chart.rsplit("/", 1)[-1] == "airflow"):
        return messages  # another chart (an operator, say): only its version is judged
    image = _get(inputs, "values", "images", "airflow") or {}
    tag, digest = _get(image, "tag"), _get(image, "digest")
    if tag is UNKNOWN or digest is UNKNOWN:
        return messages
    if digest:
        if not (isinstance(digest, str) and IMAGE_DIGEST.match(digest)):
            messages.append(f"{resource.name}: values.images.airflow.digest `{digest}` is not a sha256 digest")
    elif not (isinstance(tag, str) and PINNED_IMAGE_TAG.match(tag)):
        messages.append(
            f"{resource.name}: values.images.airflow.tag `{tag}` is not pinned: give an exact version "
            "(3.3.2) or a digest"
        )
    return messages


# ---------------------------------------------------------------------------------------------- secrets


def names_an_identifier(key: str) -> bool:
    """A Secret key whose value is public (`client-id`, `username`): kept beside a secret, not one itself."""
    words = [word.lower() for word in re.findall(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])", key)]
    return bool(words) and words[-1] in IDENTIFIER_WORDS


def declared_secret_values(resources: Iterable[Declared]) -> dict[str, str]:
    """Secret value -> the Secret that holds it, for every k8s Secret's stringData (and decoded data).

    Values under identifier keys (`client-id`, `username`, ...) are left out: they are public.
    """
    import base64
    import binascii

    found: dict[str, str] = {}
    for resource in resources:
        if resource.type != K8S_SECRET:
            continue
        # During a preview a map whose values are not known yet is UNKNOWN as a whole (a rotation's new secret).
        string_data, data = _get(resource.inputs, "stringData"), _get(resource.inputs, "data")
        for key, value in (string_data if isinstance(string_data, Mapping) else {}).items():
            if isinstance(value, str) and len(value) >= MIN_SECRET_LENGTH and not names_an_identifier(str(key)):
                found[value] = f"{resource.name} stringData.{key}"
        for key, value in (data if isinstance(data, Mapping) else {}).items():
            if not isinstance(value, str) or names_an_identifier(str(key)):
                continue
            try:
                decoded = base64.b64decode(value, validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                continue
            if len(decoded) >= MIN_SECRET_LENGTH:
                found[decoded] = f"{resource.name} data.{key}"
    return found


def no_secret_in_configmap(resources: Sequence[Declared], config: Mapping[str, Any] | None = None) -> list[Violation]:
    """No ConfigMap data key that names a secret, and no ConfigMap value carrying a declared Secret's value."""
    secrets = declared_secret_values(resources)
    violations: list[Violation] = []
    for resource in resources:
        if resource.type != CONFIG_MAP:
            continue
        for section in ("data", "binaryData"):
            data = resource.inputs.get(section)
            if not isinstance(data, Mapping):
                continue
            for key, value in data.items():
                if looks_like_secret_key(str(key)):
                    violations.append(
                        Violation(
                            resource,
                            f"{resource.name}: {section}.{key} names a secret: put it in a Secret, not a ConfigMap",
                        )
                    )
                elif isinstance(value, str):
                    holders = [holder for secret, holder in secrets.items() if secret in value]
                    if holders:
                        violations.append(
                            Violation(
                                resource,
                                f"{resource.name}: {section}.{key} carries the value of {holders[0]}: "
                                "a ConfigMap is readable by anyone who can read the namespace",
                            )
                        )
    return violations


def _env_lists(values: Any, path: str = "") -> Iterator[tuple[str, Sequence[Any]]]:
    """Every `env` list in the chart values: top-level `env` and each component's (`apiServer.env`, ...)."""
    if isinstance(values, Mapping):
        for key, child in values.items():
            child_path = f"{path}.{key}" if path else str(key)
            if key == "env" and isinstance(child, Sequence) and not isinstance(child, str):
                yield child_path, child
            else:
                yield from _env_lists(child, child_path)


def plain_helm_secrets(resource: Declared) -> list[str]:
    """Secrets given as plain Helm values (Helm keeps values in its release Secret and in `helm get values`)."""
    if resource.type != HELM_RELEASE:
        return []
    values = resource.inputs.get("values")
    if not isinstance(values, Mapping):
        return []
    messages: list[str] = []
    for keys in HELM_SECRET_VALUES:
        value = _get(values, *keys)
        if _known(value) and value != "":
            messages.append(
                f"{resource.name}: values.{'.'.join(keys)} holds a secret in the Helm values: "
                "reference a Secret instead (the chart's ...SecretName)"
            )
    for path, env in _env_lists(values):
        for index, item in enumerate(env):
            name, value = _get(item, "name"), _get(item, "value")
            if isinstance(name, str) and SECRET_ENV_NAME.search(name) and _known(value) and value != "":
                messages.append(
                    f"{resource.name}: values.{path}[{index}] `{name}` has a plain `value`: use valueFrom.secretKeyRef"
                )
    airflow_config = values.get("config")
    if isinstance(airflow_config, Mapping):
        for section, options in airflow_config.items():
            if not isinstance(options, Mapping):
                continue
            for option, value in options.items():
                if SECRET_CONFIG_OPTION.search(str(option)) and _known(value) and value != "":
                    messages.append(
                        f"{resource.name}: values.config.{section}.{option} holds a secret in airflow.cfg: "
                        "set it from a Secret"
                    )
    return messages


def no_secret_in_helm_values(resources: Sequence[Declared], config: Mapping[str, Any] | None = None) -> list[Violation]:
    """No secret in plain Helm values: the chart's secret keys, secret-named env values, airflow.cfg secrets,
    and no declared Secret's value anywhere in the values (`apiServerConfig` becomes a ConfigMap)."""
    secrets = declared_secret_values(resources)
    violations: list[Violation] = []
    for resource in resources:
        if resource.type != HELM_RELEASE:
            continue
        violations.extend(Violation(resource, message) for message in plain_helm_secrets(resource))
        for path, text in _walk_strings(resource.inputs.get("values")):
            holders = [holder for secret, holder in secrets.items() if secret in text]
            if holders:
                violations.append(
                    Violation(resource, f"{resource.name}: values.{path} carries the value of {holders[0]}")
                )
    return violations


# ---------------------------------------------------------------------------------------------- protection


def environment_of(resources: Iterable[Declared], stack: str | None = None) -> str | None:
    """The stack's environment, from what the program declared.

    The declared access model's `environment`; else the Helm release's `labels["airflow-oidc/environment"]`
    when set; else the last `-` part of `labels["airflow-oidc/stack-name"]` (stack names are `<env>` or
    `<team>-<env>`); else of `stack`.
    """
    access = declared_access_model(list(resources))
    if access is not None and isinstance(access.model.get("environment"), str) and access.model["environment"]:
        return str(access.model["environment"])
    for resource in resources:
        if resource.type != HELM_RELEASE:
            continue
        labels = _get(resource.inputs, "values", "labels")
        if not isinstance(labels, Mapping):
            continue
        if isinstance(labels.get(ENVIRONMENT_LABEL), str):
            return str(labels[ENVIRONMENT_LABEL])
        if isinstance(labels.get(STACK_NAME_LABEL), str):
            return str(labels[STACK_NAME_LABEL]).rsplit("-", 1)[-1]
    return stack.rsplit("-", 1)[-1] if stack else None


def _is_fernet_key(resource: Declared, fernet_secret_names: set[str]) -> bool:
    if resource.type == RANDOM_BYTES:
        return resource.name.endswith("fernet-key")
    if resource.type == K8S_SECRET:
        name = _get(resource.inputs, "metadata", "name")
        return resource.name.endswith("fernet-key") or (isinstance(name, str) and name in fernet_secret_names)
    return False


def _external_database(resources: Sequence[Declared]) -> bool:
    """Whether the Airflow release keeps its metadata in an external database (`data.metadataSecretName`)."""
    return any(
        resource.type == HELM_RELEASE and isinstance(_get(resource.inputs, "values", "data", "metadataSecretName"), str)
        for resource in resources
    )


def protected_in_prod(
    resources: Sequence[Declared], config: Mapping[str, Any] | None = None, environment: str | None = None
) -> list[Violation]:
    """The program's protection rule (`components/protection.py`, the same functions), checked on what it declared.

    The Fernet key (its RandomBytes and its Secret) is protected in `protectedEnvironments` (default: prod) and
    wherever the metadata database is external: replacing it makes every stored connection unreadable. With the
    chart's bundled Postgres, the data dies with the release anyway. IdP applications are protected in
    `protectedEnvironments`: replacing one logs everyone out and changes the client id.

    `environment` is the stack's environment (see `environment_of`); None protects only an external database's key.
    """
    protected_environments = set(_strings((config or {}).get("protectedEnvironments"))) or set(
        DEFAULT_PROTECTED_ENVIRONMENTS
    )
    fernet_secret_names = {
        name
        for resource in resources
        if resource.type == HELM_RELEASE
        and isinstance(name := _get(resource.inputs, "values", "fernetKeySecretName"), str)
    }
    external = _external_database(resources)
    keep_fernet = fernet_key_protected(
        environment, external_database=external, protected_environments=protected_environments
    )
    violations: list[Violation] = []
    for resource in resources:
        if resource.protect:
            continue
        if keep_fernet and _is_fernet_key(resource, fernet_secret_names):
            violations.append(
                Violation(resource, f"{resource.name}: the Fernet key must be protected (replacing it loses data)")
            )
        elif resource.type in IDP_APPS and identity_protected(environment, protected_environments):
            violations.append(
                Violation(
                    resource,
                    f"{resource.name}: an IdP application in `{environment}` must be protected "
                    "(replacing it logs everyone out)",
                )
            )
    return violations


# ---------------------------------------------------------------------------------------------- the set

RESOURCE_RULES = {
    "redirect-uris-https": redirect_uris_https,
    "no-implicit-grant": no_implicit_grant,
    "lifetimes-within-bounds": lifetimes_within_bounds,
    "chart-and-image-pinned": chart_and_image_pinned,
}
"""Policy name -> rule over one resource."""

STACK_RULES = {
    "no-secret-in-configmap": no_secret_in_configmap,
    "no-secret-in-helm-values": no_secret_in_helm_values,
}
"""Policy name -> rule over all resources (no environment needed)."""

ENVIRONMENT_RULES = ("admin-only-allowed-groups", "protected-in-prod")
"""Policies that need the stack's environment (its defaults file, its protection)."""


def check_all(
    resources: Sequence[Declared],
    config: Mapping[str, Mapping[str, Any]] | None = None,
    stack: str | None = None,
    *,
    environment: str | None = None,
    defaults_dir: Path | None = None,
) -> dict[str, list[str]]:
    """Every rule over one stack's resources: policy name -> messages (what `airflow-oidc plan` reports).

    `config` is the pack configuration: policy name -> that policy's config, as in `--policy-pack-config`.
    `environment` (else read from the resources, else the stack name) picks the Admin allowlist in
    `defaults_dir` (`stacks/defaults/`) and the protection rules.
    """
    config = config or {}
    environment = environment or environment_of(resources, stack)
    results: dict[str, list[str]] = {}
    for name, rule in RESOURCE_RULES.items():
        results[name] = [message for resource in resources for message in rule(resource, config.get(name))]
    for name, stack_rule in STACK_RULES.items():
        results[name] = [str(violation) for violation in stack_rule(resources, config.get(name))]
    results["admin-only-allowed-groups"] = [
        str(violation) for violation in admin_only_allowed_groups(resources, admin_allowlist(defaults_dir, environment))
    ]
    results["protected-in-prod"] = [
        str(violation) for violation in protected_in_prod(resources, config.get("protected-in-prod"), environment)
    ]
    return results
