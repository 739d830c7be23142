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
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

# Type tokens.
OKTA_APP = "okta:app/oAuth:OAuth"
OKTA_POLICY_RULE = "okta:auth/serverPolicyRule:ServerPolicyRule"
ENTRA_APP = "azuread:index/application:Application"
ENTRA_SERVICE_PRINCIPAL = "azuread:index/servicePrincipal:ServicePrincipal"
KEYCLOAK_CLIENT = "keycloak:openid/client:Client"
HELM_RELEASE = "kubernetes:helm.sh/v3:Release"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
K8S_SECRET = "kubernetes:core/v1:Secret"
RANDOM_BYTES = "random:index/randomBytes:RandomBytes"

IDP_APPS = (OKTA_APP, ENTRA_APP, ENTRA_SERVICE_PRINCIPAL, KEYCLOAK_CLIENT)
"""Replacing one of these logs everyone out and changes the client id: protected in protected environments."""

STACK_NAME_LABEL = "airflow-oidc/stack-name"
ENVIRONMENT_LABEL = "airflow-oidc/environment"

DEFAULT_MAX_ACCESS_TOKEN_MINUTES = 60
DEFAULT_MAX_SESSION_MINUTES = 1440
DEFAULT_PROTECTED_ENVIRONMENTS = ("prod",)

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


def admin_only_allowed_groups(resource: Declared, config: Mapping[str, Any] | None = None) -> list[str]:
    """Airflow's Admin role only for claim values (groups, app roles) that `allowedAdminGroups` lists.

    Entries are exact names or shell-style patterns (`*-airflow-admins`), as in `stacks/defaults/<env>.yaml`.
    """
    if resource.type != HELM_RELEASE:
        return []
    allowed = _strings((config or {}).get("allowedAdminGroups"))
    values = resource.inputs.get("values")
    if not isinstance(values, Mapping):
        return []
    messages: list[str] = []
    for path, text in _webserver_configs(values):
        if not isinstance(text, str):
            continue
        try:
            mapping = role_mapping(text)
        except ValueError as error:
            messages.append(f"{resource.name}: values.{path}: the role mapping cannot be read ({error})")
            continue
        if mapping is None:
            continue
        for claim, role in mapping.roles.items():
            if role == "Admin" and not any(fnmatch.fnmatchcase(claim, pattern) for pattern in allowed):
                messages.append(
                    f"{resource.name}: values.{path} grants Admin to `{claim}`, which allowedAdminGroups "
                    f"({allowed or 'empty'}) does not list"
                )
        if mapping.default_role == "Admin":
            messages.append(
                f"{resource.name}: values.{path} makes Admin the default role (users in no access group): "
                "Admin only through an allowed group"
            )
    return messages


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
        for key, value in (_get(resource.inputs, "stringData") or {}).items():
            if isinstance(value, str) and len(value) >= MIN_SECRET_LENGTH and not names_an_identifier(str(key)):
                found[value] = f"{resource.name} stringData.{key}"
        for key, value in (_get(resource.inputs, "data") or {}).items():
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

    The Helm release's `labels["airflow-oidc/environment"]` when set; else the last `-` part of
    `labels["airflow-oidc/stack-name"]` (stack names are `<env>` or `<team>-<env>`); else of `stack`.
    """
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


def protected_in_prod(
    resources: Sequence[Declared], config: Mapping[str, Any] | None = None, environment: str | None = None
) -> list[Violation]:
    """The Fernet key (its RandomBytes and its Secret) is protected everywhere: replacing it makes every stored
    connection unreadable. IdP applications are protected in `protectedEnvironments` (default: prod):
    replacing one logs everyone out and changes the client id.

    `environment` is the stack's environment (see `environment_of`); None protects nothing but the Fernet key.
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
    violations: list[Violation] = []
    for resource in resources:
        if resource.protect:
            continue
        if _is_fernet_key(resource, fernet_secret_names):
            violations.append(
                Violation(resource, f"{resource.name}: the Fernet key must be protected (replacing it loses data)")
            )
        elif resource.type in IDP_APPS and environment in protected_environments:
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
    "admin-only-allowed-groups": admin_only_allowed_groups,
    "lifetimes-within-bounds": lifetimes_within_bounds,
    "chart-and-image-pinned": chart_and_image_pinned,
}
"""Policy name -> rule over one resource."""

STACK_RULES = {
    "no-secret-in-configmap": no_secret_in_configmap,
    "no-secret-in-helm-values": no_secret_in_helm_values,
}
"""Policy name -> rule over all resources (no environment needed)."""


def check_all(
    resources: Sequence[Declared], config: Mapping[str, Mapping[str, Any]] | None = None, stack: str | None = None
) -> dict[str, list[str]]:
    """Every rule over one stack's resources: policy name -> messages (what `airflow-oidc plan` reports).

    `config` is the pack configuration: policy name -> that policy's config, as in `--policy-pack-config`.
    """
    config = config or {}
    results: dict[str, list[str]] = {}
    for name, rule in RESOURCE_RULES.items():
        results[name] = [message for resource in resources for message in rule(resource, config.get(name))]
    for name, stack_rule in STACK_RULES.items():
        results[name] = [str(violation) for violation in stack_rule(resources, config.get(name))]
    results["protected-in-prod"] = [
        str(violation)
        for violation in protected_in_prod(resources, config.get("protected-in-prod"), environment_of(resources, stack))
    ]
    return results
