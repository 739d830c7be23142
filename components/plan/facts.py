"""What one stack declares, read from a side's worker result: the facts `plan` compares and shows.

A side is the working tree or the `--base` revision; its worker (`worker.py`) ran every stack file
through that revision's own `__main__.py` under the mock engine and printed what was declared
(resources, inputs with secrets redacted, outputs, the resolved spec). Here that document becomes
one `Facts` per stack: the sign-in settings read from the rendered `webserver_config.py` and the
outputs, the redirect URIs and lifetimes the IdP resources declare, where secrets are held.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from components.access import AccessModel, access_model_of

HELM_RELEASE = "kubernetes:helm.sh/v3:Release"

WEBSERVER_CONSTANTS = (
    "PROVIDER",
    "ISSUER",
    "SCOPES",
    "ROLE_CLAIM",
    "ROLE_BY_CLAIM_VALUE",
    "DEFAULT_ROLE",
    "DEFAULT_ROLE_CLAIM_VALUES",
    "DEFAULT_ROLE_EVERYONE",
    "REQUIRED_CLAIMS",
)
AIRFLOW_LIFETIMES = {
    "Airflow idle timeout (min)": ("fab", "session_lifetime_minutes", 1.0),
    "Airflow session (min)": ("fab", "session_max_lifetime_minutes", 1.0),
    "Airflow API token (min)": ("api_auth", "jwt_expiration_time", 1 / 60),
}
LIFETIME_KEY = re.compile(r"lifetime|lifespan|timeout|ttl|expir", re.IGNORECASE)
URI_KEY = re.compile(r"redirect|logout", re.IGNORECASE)
RESOLVED_KEYS = (
    "tokens.accessTokenMinutes",
    "tokens.sessionMinutes",
    "tokens.idleMinutes",
    "clientSecret.store",
    "clientSecret.rotationDays",
    "airflow.chartVersion",
    "airflow.image.repository",
    "airflow.image.tag",
    "airflow.image.digest",
    "airflow.apiServerReplicas",
)


@dataclass
class Facts:
    """What one stack declares, read from its mock run (resources, inputs, outputs)."""

    stack: str
    file: str
    kind: str | None = None
    client_id: str | None = None
    issuer: str | None = None
    scopes: list[str] = field(default_factory=list)
    role_claim: str | None = None
    redirect_uris: list[str] = field(default_factory=list)
    roles: dict[str, str] = field(default_factory=dict)
    default_role: str | None = None
    default_role_everyone: bool = False
    default_role_claim_values: list[str] = field(default_factory=list)
    required_claims: dict[str, Any] = field(default_factory=dict)
    service_accounts: dict[str, str] = field(default_factory=dict)
    """Service account -> its Airflow role (the stack output `serviceAccounts`)."""
    access_model: AccessModel | None = None
    """The effective-access model the run exported (`accessModel`); None for a revision without it."""
    lifetimes: dict[str, float] = field(default_factory=dict)
    secret_holders: list[str] = field(default_factory=list)
    hostname: str | None = None
    namespace: str | None = None
    release: str | None = None
    chart: str | None = None
    image: str | None = None
    replicas: float | None = None
    protected: list[str] = field(default_factory=list)
    resources: list[dict[str, Any]] = field(default_factory=list)
    """Each resource: type, name, parent, protect, inputs (secrets redacted)."""
    resolved: dict[str, Any] = field(default_factory=dict)
    """Spec keys the environment defaults may set -> {value, from} (stack file, defaults file, built-in)."""
    policy: dict[str, list[str]] = field(default_factory=dict)

    def resource(self, type_: str, name: str) -> dict[str, Any] | None:
        return next((r for r in self.resources if r["type"] == type_ and r["name"] == name), None)


def nested(value: Any, *path: str) -> Any:
    """`value[path[0]][path[1]]...`, or None where a step is not a mapping."""
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def webserver_constants(text: str) -> dict[str, Any]:
    """Module-level literal constants of the rendered webserver_config.py (read, never executed)."""
    found: dict[str, Any] = {}
    try:
        statements = ast.parse(text).body
    except SyntaxError:
        return found
    for statement in statements:
        if isinstance(statement, ast.Assign) and len(statement.targets) == 1:
            target = statement.targets[0]
            if isinstance(target, ast.Name) and target.id in WEBSERVER_CONSTANTS:
                try:
                    found[target.id] = ast.literal_eval(statement.value)
                except ValueError:
                    continue
    return found


def _walk(value: Any, path: str = "") -> Iterator[tuple[str, str, Any]]:
    """(path, last key, leaf value) for every leaf of nested inputs; list items keep their parent's key."""
    if isinstance(value, Mapping):
        for key, child in value.items():
            yield from _walk(child, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _walk(child, f"{path}[{index}]")
    else:
        last = re.sub(r"\[\d+\]$", "", path).rsplit(".", 1)[-1]
        yield path, last, value


def _duration(value: Any) -> float | None:
    """A number, or a number in a string, or a Go-style duration (`1h30m`, `90s`) in seconds."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        if re.fullmatch(r"\d+(\.\d+)?", value):
            return float(value)
        parts = re.findall(r"(\d+(?:\.\d+)?)(h|m|s)", value)
        if parts and "".join(n + u for n, u in parts) == value:
            return sum(float(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)
    return None


def facts_of(stack: Mapping[str, Any], idp_packages: Sequence[str]) -> Facts:
    """The facts of one stack's worker result."""
    # Registration order under mocks is not deterministic: sorted, so two runs print alike.
    resources = sorted(stack.get("resources", []), key=lambda r: (r["parent"] != "", r["name"], r["type"]))
    facts = Facts(stack=stack["stack"], file=stack["file"], resources=resources)
    outputs = stack.get("outputs") or {}
    facts.client_id = outputs.get("clientId") if isinstance(outputs.get("clientId"), str) else None
    facts.issuer = outputs.get("issuer") if isinstance(outputs.get("issuer"), str) else None
    facts.hostname = outputs.get("url") if isinstance(outputs.get("url"), str) else None
    facts.service_accounts = {
        str(entry["name"]): str(entry["role"])
        for entry in outputs.get("serviceAccounts") or []
        if isinstance(entry, Mapping) and "name" in entry and "role" in entry
    }
    facts.access_model = access_model_of(outputs)
    uris: set[str] = set()
    for key in ("redirectUris", "postLogoutRedirectUris"):
        uris.update(uri for uri in outputs.get(key) or [] if isinstance(uri, str))
    prefixes = tuple(f"{package}:" for package in idp_packages)
    for resource in facts.resources:
        if resource["protect"]:
            facts.protected.append(resource["name"])
        if resource["secretPaths"]:
            facts.secret_holders.append(f"{resource['type']} {_holder_name(resource)}")
        if resource["type"].startswith(prefixes):
            for path, last, value in _walk(resource["inputs"]):
                if URI_KEY.search(last) and isinstance(value, str) and re.match(r"https?://", value):
                    uris.add(value)
                elif LIFETIME_KEY.search(last) and (number := _duration(value)) is not None:
                    facts.lifetimes[f"{resource['name']}: {path}"] = number
        if resource["type"] == HELM_RELEASE:
            _release_facts(facts, resource["inputs"])
    facts.redirect_uris = sorted(uris)
    facts.secret_holders.sort()
    facts.policy = dict(stack.get("policy") or {})
    facts.resolved = _resolved(stack)
    return facts


def _holder_name(resource: Mapping[str, Any]) -> str:
    name = nested(resource["inputs"], "metadata", "name")
    namespace = nested(resource["inputs"], "metadata", "namespace")
    if isinstance(name, str):
        return f"{namespace}/{name}" if isinstance(namespace, str) else name
    return str(resource["name"])


def _release_facts(facts: Facts, inputs: Mapping[str, Any]) -> None:
    values = inputs.get("values") or {}
    facts.namespace = inputs.get("namespace")
    facts.release = inputs.get("name")
    repo = nested(inputs, "repositoryOpts", "repo")
    facts.chart = f"{inputs.get('chart')} {inputs.get('version')}" + (f" ({repo})" if repo else "")
    image = nested(values, "images", "airflow") or {}
    if isinstance(image, Mapping):
        facts.image = f"{image.get('repository')}:{image.get('tag')}" + (
            f"@{image['digest']}" if image.get("digest") else ""
        )
    replicas = nested(values, "apiServer", "replicas")
    facts.replicas = replicas if isinstance(replicas, int | float) else None
    for label, (section, key, factor) in AIRFLOW_LIFETIMES.items():
        number = _duration(nested(values, "config", section, key))
        if number is not None:
            facts.lifetimes[label] = number * factor
    text = nested(values, "apiServer", "apiServerConfig")
    if isinstance(text, str):
        constants = webserver_constants(text)
        facts.kind = constants.get("PROVIDER")
        facts.issuer = constants.get("ISSUER", facts.issuer)
        facts.scopes = list(constants.get("SCOPES") or [])
        facts.role_claim = constants.get("ROLE_CLAIM")
        facts.roles = {str(k): str(v) for k, v in (constants.get("ROLE_BY_CLAIM_VALUE") or {}).items()}
        facts.default_role = constants.get("DEFAULT_ROLE")
        facts.default_role_everyone = bool(constants.get("DEFAULT_ROLE_EVERYONE"))
        facts.default_role_claim_values = [str(v) for v in constants.get("DEFAULT_ROLE_CLAIM_VALUES") or []]
        facts.required_claims = dict(constants.get("REQUIRED_CLAIMS") or {})


def _resolved(stack: Mapping[str, Any]) -> dict[str, Any]:
    spec = stack.get("spec")
    if not isinstance(spec, Mapping):
        return {}
    inherited = stack.get("inherited") or {}
    source = stack.get("defaultsFile")
    resolved: dict[str, Any] = {}
    for key in RESOLVED_KEYS:
        value = nested(spec, *key.split("."))
        origin = source if key in inherited else "stack file"
        resolved[key] = {"value": value, "from": origin}
    return resolved


@dataclass
class Side:
    """One side's worker result."""

    label: str
    facts: dict[str, Facts]
    errors: list[str]
    replace_on_change: dict[str, list[str]]
    idp_packages: list[str]
    seconds: float
    access_grant_types: list[str] = field(default_factory=list)
    """Resource types that only grant what the access model describes (the kinds' ACCESS_GRANT_TYPES)."""


def side_of(label: str, document: Mapping[str, Any], seconds: float) -> Side:
    """One side's worker document (`worker.py`'s JSON) as facts per stack file, its errors and its kinds' tables."""
    packages = document.get("idpPackages") or []
    facts: dict[str, Facts] = {}
    errors: list[str] = []
    for stack in document["stacks"]:
        if "error" in stack:
            errors.append(f"{label}: {stack['error']}")
        else:
            facts[stack["file"]] = facts_of(stack, packages)
    replace = dict(document.get("replaceOnChange") or {})
    grants = [str(type_) for type_ in document.get("accessGrantTypes") or []]
    return Side(label, facts, errors, replace, list(packages), seconds, grants)
