"""`airflow-oidc plan`: what `pulumi up` would declare per stack, and with `--base` what a change does.

    airflow-oidc plan [STACK_FILE ...] [--base GIT_REV] [--format text|markdown|json]

No credentials, no network. Each side (the working tree, and the base revision checked out with
`git worktree add`) runs every stack file through ITS OWN `__main__.py` under the mock engine, all
stacks of a side in one process (`components/plan_worker.py`, SDKs loaded once; the two sides run in
parallel). What is shown and compared is what the program declared (resources, inputs, protection,
outputs), never the program's source: a change in code alone shows up like a change in a stack file.

Every difference is classified; the risky classes set exit status 1:
privilege escalation, new redirect host or URI, lifetime increase, protection removed, IdP app or
client replaced (logical name or type changes, or an input the kind's `REPLACE_ON_CHANGE` lists),
secret rotation or store change, stack added or removed, and the policy pack's rules
(`policy/rules/`) failing on the run. Exit status 2: an error (a bad spec on either side: the
program's own message, naming the file and key).
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from components.access import AccessModel, access_model_of
from components.model import ROLE_RANK
from components.project import ProjectNotFoundError, find_project

WORKER = Path(__file__).resolve().with_name("plan_worker.py")
ENGINE = Path(__file__).resolve().with_name("mock_engine.py")
HELM_RELEASE = "kubernetes:helm.sh/v3:Release"
RANDOM_PACKAGE = "random:"

# Change classes, risky first (the order of the report).
PRIVILEGE = "privilege escalation"
REDIRECT = "new redirect host or URI"
LIFETIME = "lifetime increase"
PROTECTION = "protection removed"
REPLACED = "IdP app or client replaced"
SECRET = "secret rotation or store change"
STACK_ADDED = "stack added"
STACK_REMOVED = "stack removed"
POLICY = "policy violation"
CHANGED = "changed"
RISKY = (PRIVILEGE, REDIRECT, LIFETIME, PROTECTION, REPLACED, SECRET, STACK_ADDED, STACK_REMOVED, POLICY)

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


class PlanError(Exception):
    """Something that stops the plan (exit status 2); the message says what and where."""


# --- one side's run, as facts -------------------------------------------------------------------


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


def _get(value: Any, *path: str) -> Any:
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
    name = _get(resource["inputs"], "metadata", "name")
    namespace = _get(resource["inputs"], "metadata", "namespace")
    if isinstance(name, str):
        return f"{namespace}/{name}" if isinstance(namespace, str) else name
    return str(resource["name"])


def _release_facts(facts: Facts, inputs: Mapping[str, Any]) -> None:
    values = inputs.get("values") or {}
    facts.namespace = inputs.get("namespace")
    facts.release = inputs.get("name")
    repo = _get(inputs, "repositoryOpts", "repo")
    facts.chart = f"{inputs.get('chart')} {inputs.get('version')}" + (f" ({repo})" if repo else "")
    image = _get(values, "images", "airflow") or {}
    if isinstance(image, Mapping):
        facts.image = f"{image.get('repository')}:{image.get('tag')}" + (
            f"@{image['digest']}" if image.get("digest") else ""
        )
    replicas = _get(values, "apiServer", "replicas")
    facts.replicas = replicas if isinstance(replicas, int | float) else None
    for label, (section, key, factor) in AIRFLOW_LIFETIMES.items():
        number = _duration(_get(values, "config", section, key))
        if number is not None:
            facts.lifetimes[label] = number * factor
    text = _get(values, "apiServer", "apiServerConfig")
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
        value = _get(spec, *key.split("."))
        origin = source if key in inherited else "stack file"
        resolved[key] = {"value": value, "from": origin}
    return resolved


# --- the diff -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """One classified difference of one stack."""

    stack: str
    kind: str
    """One of the change classes (`RISKY` ones set exit status 1, `changed` does not)."""
    message: str

    @property
    def risky(self) -> bool:
        return self.kind in RISKY


def _rank(role: str | None) -> int:
    return ROLE_RANK.get(role or "", 0)


def _host(uri: str) -> str:
    return urlsplit(uri).netloc.lower()


def diff_stack(
    base: Facts,
    head: Facts,
    replace_on_change: Mapping[str, Sequence[str]],
    idp_packages: Sequence[str] = (),
    grant_types: Collection[str] = (),
) -> list[Change]:
    """Every difference between the base's and the head's declaration of one stack, classified."""
    changes: list[Change] = []

    def add(kind: str, message: str) -> None:
        changes.append(Change(head.stack, kind, message))

    if base.access_model is not None and head.access_model is not None:
        # Who gets which role, by the identity the IdP binds: the same edit reads the same on every kind.
        changes.extend(access_changes(head.stack, base.access_model, head.access_model))
    else:
        # A revision without the model: both sides compared by what the rendered config maps.
        changes.extend(legacy_access_changes(base, head))
    for claim, expected in base.required_claims.items():
        if head.required_claims.get(claim) != expected:
            add(PRIVILEGE, f"audience widened: the ID token's `{claim}` is no longer required to be {expected!r}")
    if base.issuer != head.issuer:
        add(PRIVILEGE, f"trusts another issuer: {base.issuer} → {head.issuer}")
    if base.role_claim != head.role_claim:
        add(PRIVILEGE, f"roles come from another claim: `{base.role_claim}` → `{head.role_claim}`")
    if base.scopes != head.scopes:
        add(CHANGED, f"scopes {base.scopes} → {head.scopes}")

    # Redirect URIs.
    base_hosts = {_host(uri) for uri in base.redirect_uris}
    for uri in head.redirect_uris:
        if uri not in base.redirect_uris:
            new_host = _host(uri) not in base_hosts
            add(REDIRECT, f"new redirect {'host' if new_host else 'URI'}: {uri}")
    for uri in base.redirect_uris:
        if uri not in head.redirect_uris:
            add(CHANGED, f"redirect URI removed: {uri}")

    # Lifetimes.
    for name, minutes in head.lifetimes.items():
        was = base.lifetimes.get(name)
        if was is not None and minutes > was:
            add(LIFETIME, f"{name}: {_number(was)} → {_number(minutes)}")
        elif was is not None and minutes != was:
            add(CHANGED, f"{name}: {_number(was)} → {_number(minutes)}")
        elif was is None:
            add(CHANGED, f"{name}: set to {_number(minutes)}")

    # A grant the access model describes (Entra's app-role assignment) re-created for a new role is not
    # the app or client replaced: the model's own change above names what it grants.
    modeled = grant_types if base.access_model is not None and head.access_model is not None else ()
    changes.extend(_resource_changes(base, head, replace_on_change, idp_packages, modeled))

    # Where secrets are held, and the resolved secret settings.
    for holder in head.secret_holders:
        if holder not in base.secret_holders:
            add(SECRET, f"a secret is now held by {holder}")
    for holder in base.secret_holders:
        if holder not in head.secret_holders:
            add(SECRET, f"{holder} no longer holds a secret")
    for key in ("clientSecret.store", "clientSecret.rotationDays"):
        setting_was, setting = _get(base.resolved, key, "value"), _get(head.resolved, key, "value")
        if base.resolved and head.resolved and setting_was != setting:
            add(SECRET, f"{key}: {setting_was} → {setting}")

    # The Airflow side's plain settings.
    setting_rows: list[tuple[str, Any, Any]] = [
        ("hostname", base.hostname, head.hostname),
        ("namespace", base.namespace, head.namespace),
        ("Helm release", base.release, head.release),
        ("chart", base.chart, head.chart),
        ("image", base.image, head.image),
        ("api-server replicas", base.replicas, head.replicas),
        ("client id", base.client_id, head.client_id),
    ]
    for label, before, after in setting_rows:
        if before != after:
            add(REPLACED if label == "client id" else CHANGED, f"{label}: {_show(before)} → {_show(after)}")
    return changes


def _role_changes(
    stack: str, base_roles: Mapping[str, str], head_roles: Mapping[str, str], who: str, new: str, gone: str
) -> list[Change]:
    """A holder that is new or gets a higher role is a privilege change; lower or gone, a change."""
    changes: list[Change] = []
    for holder, role in head_roles.items():
        before = base_roles.get(holder)
        name = who.format(holder)
        if before is None:
            changes.append(Change(stack, PRIVILEGE, f"{name} gains {role} ({new})"))
        elif _rank(role) > _rank(before):
            changes.append(Change(stack, PRIVILEGE, f"{name}: {before} → {role}"))
        elif role != before:
            changes.append(Change(stack, CHANGED, f"{name}: {before} → {role} (lower)"))
    for holder, role in base_roles.items():
        if holder not in head_roles:
            changes.append(Change(stack, CHANGED, f"{who.format(holder)} {gone.format(role)}"))
    return changes


def _default_role_changes(stack: str, before: str | None, after: str | None) -> list[Change]:
    if _rank(after) > _rank(before):
        return [Change(stack, PRIVILEGE, f"default role {before or 'none'} → {after}")]
    if after != before:
        return [Change(stack, CHANGED, f"default role {before or 'none'} → {after or 'none'}")]
    return []


def access_changes(stack: str, base: AccessModel, head: AccessModel) -> list[Change]:
    """The access models' differences: a principal gaining a role or a higher one, the audience widened,
    a service account added, raised or trusting another subject are privilege changes (risky)."""
    changes: list[Change] = []

    def add(kind: str, message: str) -> None:
        changes.append(Change(stack, kind, message))

    base_groups = {grant.principal: grant for grant in base.groups}
    head_groups = {grant.principal: grant for grant in head.groups}
    changes += _role_changes(
        stack,
        {principal: str(grant.role) for principal, grant in base_groups.items()},
        {principal: str(grant.role) for principal, grant in head_groups.items()},
        "`{}`",
        "not mapped before",
        "no longer gets {}",
    )
    for principal, grant in head_groups.items():
        before = base_groups.get(principal)
        if before is not None and before.role == grant.role and before.claim_value != grant.claim_value:
            add(
                CHANGED,
                f"`{principal}` is matched by another claim value: `{before.claim_value}` → `{grant.claim_value}`",
            )
    changes += _default_role_changes(stack, base.default_role, head.default_role)
    if head.everyone and not base.everyone:
        add(PRIVILEGE, f"audience widened: everyone at the IdP may now sign in (default role {head.default_role})")
    elif base.everyone and not head.everyone:
        add(CHANGED, "audience narrowed: no longer everyone at the IdP")
    base_extra = {grant.principal for grant in base.extra_groups}
    head_extra = {grant.principal for grant in head.extra_groups}
    for grant in head.extra_groups:
        if grant.principal not in base_extra:
            add(PRIVILEGE, f"audience widened: `{grant.principal}` may now sign in (default role {head.default_role})")
    for principal in sorted(base_extra - head_extra):
        add(CHANGED, f"audience narrowed: `{principal}` may no longer sign in")
    base_accounts = {account.name: account for account in base.service_accounts}
    head_accounts = {account.name: account for account in head.service_accounts}
    for name, account in head_accounts.items():
        prior = base_accounts.get(name)
        if prior is None:
            add(PRIVILEGE, f"service account `{name}` gains {account.role} (new, trusting {account.subject})")
            continue
        if _rank(account.role) > _rank(prior.role):
            add(PRIVILEGE, f"service account `{name}`: {prior.role} → {account.role}")
        elif account.role != prior.role:
            add(CHANGED, f"service account `{name}`: {prior.role} → {account.role} (lower)")
        if prior.subject != account.subject:
            add(PRIVILEGE, f"service account `{name}` trusts another subject: {prior.subject} → {account.subject}")
    for name, account in base_accounts.items():
        if name not in head_accounts:
            add(CHANGED, f"service account `{name}` removed (was {account.role})")
    return changes


def legacy_access_changes(base: Facts, head: Facts) -> list[Change]:
    """Access changes read from the rendered config's role mapping (claim values) and the
    `serviceAccounts` output, for a side whose revision exports no access model."""
    stack = head.stack
    changes = _role_changes(stack, base.roles, head.roles, "`{}`", "not mapped before", "no longer gets {}")
    changes += _role_changes(
        stack, base.service_accounts, head.service_accounts, "service account `{}`", "new", "removed (was {})"
    )
    changes += _default_role_changes(stack, base.default_role, head.default_role)
    if head.default_role_everyone and not base.default_role_everyone:
        changes.append(Change(stack, PRIVILEGE, "audience widened: everyone at the IdP may now sign in"))
    for value in head.default_role_claim_values:
        if value not in base.default_role_claim_values:
            changes.append(Change(stack, PRIVILEGE, f"audience widened: `{value}` may now sign in (default role)"))
    return changes


def _resource_changes(
    base: Facts,
    head: Facts,
    replace_on_change: Mapping[str, Sequence[str]],
    idp_packages: Sequence[str],
    grant_types: Collection[str] = (),
) -> list[Change]:
    changes: list[Change] = []
    packages = set(idp_packages)

    def is_idp(type_: str) -> bool:
        return type_.split(":", 1)[0] in packages

    base_ids = {(r["type"], r["name"]) for r in base.resources}
    head_ids = {(r["type"], r["name"]) for r in head.resources}
    for type_, name in sorted(base_ids - head_ids):
        old = base.resource(type_, name) or {}
        successor = [n for t, n in head_ids - base_ids if t == type_]
        now = f" (now `{successor[0]}`)" if len(successor) == 1 else ""
        if is_idp(type_):
            changes.append(Change(head.stack, REPLACED, f"`{name}` ({type_}) is deleted and created anew{now}"))
        if old.get("protect"):
            changes.append(Change(head.stack, PROTECTION, f"protected `{name}` ({type_}) would be deleted{now}"))
        elif type_.startswith(RANDOM_PACKAGE):
            changes.append(Change(head.stack, SECRET, f"generated secret `{name}` is deleted{now}"))
        elif not is_idp(type_):
            changes.append(Change(head.stack, CHANGED, f"`{name}` ({type_}) removed{now}"))
    for type_, name in sorted(head_ids - base_ids):
        if type_.startswith(RANDOM_PACKAGE):
            changes.append(Change(head.stack, SECRET, f"new generated secret `{name}`"))
        else:
            changes.append(Change(head.stack, CHANGED, f"`{name}` ({type_}) added"))
    for type_, name in sorted(base_ids & head_ids):
        old, new = base.resource(type_, name) or {}, head.resource(type_, name) or {}
        if old.get("protect") and not new.get("protect"):
            changes.append(Change(head.stack, PROTECTION, f"`{name}` ({type_}) is no longer protected"))
        elif new.get("protect") and not old.get("protect"):
            changes.append(Change(head.stack, CHANGED, f"`{name}` ({type_}) is now protected"))
        if old.get("inputs") == new.get("inputs"):
            continue
        forced = [
            key for key in replace_on_change.get(type_, ()) if _get(old["inputs"], key) != _get(new["inputs"], key)
        ]
        if forced and type_ in grant_types:
            changes.append(
                Change(
                    head.stack,
                    CHANGED,
                    f"`{name}` ({type_}) is re-created: {', '.join(forced)} cannot change in place "
                    "(a grant of the access model: its change is listed as such)",
                )
            )
        elif forced:
            changes.append(
                Change(
                    head.stack, REPLACED, f"`{name}` ({type_}) is replaced: {', '.join(forced)} cannot change in place"
                )
            )
        elif type_.startswith(RANDOM_PACKAGE):
            keys = _changed_keys(old["inputs"], new["inputs"])
            changes.append(Change(head.stack, SECRET, f"`{name}` is regenerated (rotation): {', '.join(keys)} changed"))
        else:
            keys = _changed_keys(old["inputs"], new["inputs"])
            changes.append(Change(head.stack, CHANGED, f"`{name}` updated in place: {', '.join(keys)}"))
    return changes


def _changed_keys(old: Any, new: Any, path: str = "", limit: int = 6) -> list[str]:
    """The top-most input paths that differ (at most `limit`, then `…`)."""
    keys: list[str] = []
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        for key in sorted(set(old) | set(new), key=str):
            if old.get(key) != new.get(key):
                child = f"{path}.{key}" if path else str(key)
                if isinstance(old.get(key), Mapping) and isinstance(new.get(key), Mapping) and child.count(".") < 2:
                    keys.extend(_changed_keys(old[key], new[key], child, limit))
                else:
                    keys.append(child)
    elif old != new:
        keys.append(path or "(value)")
    return keys[:limit] + (["…"] if len(keys) > limit else [])


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _show(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, float):
        return _number(value)
    return str(value)


# --- running the sides --------------------------------------------------------------------------


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


def stack_files(root: Path, given: Sequence[Path], must_exist: bool = True) -> list[str]:
    """Stack files as paths relative to `root` (they must be in its stack config directory, `stacks/`).

    With `must_exist` false a file may be missing (deleted by the change, present at the base)."""
    stacks = (root / "stacks").resolve()
    if not given:
        return [f"stacks/{path.name}" for path in sorted(stacks.glob("Pulumi.*.yaml"))]
    files = []
    for path in given:
        resolved = path.resolve()
        if resolved.parent != stacks or not resolved.name.startswith("Pulumi.") or resolved.suffix != ".yaml":
            raise PlanError(f"{path}: plan runs stack files of {stacks} (Pulumi.<stack>.yaml, stackConfigDir)")
        if must_exist and not resolved.is_file():
            raise PlanError(f"{path}: no such stack file")
        files.append(f"stacks/{resolved.name}")
    return files


def policy_dir(root: Path) -> Path:
    """The policy pack whose rules judge both sides: the planned project's own (`policy/rules/`)."""
    return root / "policy"


def rules_file(policy: Path) -> Path | None:
    """The pack's rules as the worker loads them (by path): the package `policy/rules/` (its `__init__.py`),
    or a project's older single module `policy/rules.py`; None when the pack has no rules."""
    return next((file for file in (policy / "rules" / "__init__.py", policy / "rules.py") if file.is_file()), None)


def start_worker(root: Path, files: Sequence[str], policy: Path | None = None) -> subprocess.Popen[str]:
    """The side's worker process: its own checkout on sys.path, this revision's engine and `policy` rules."""
    command = [sys.executable, str(WORKER), "--root", str(root), "--engine", str(ENGINE)]
    policy = policy or policy_dir(root)
    rules = rules_file(policy)
    if rules is not None:
        command += ["--rules", str(rules)]
        if (policy / "config.json").is_file():
            command += ["--policy-config", str(policy / "config.json")]
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("PYTHONPATH", None)
    return subprocess.Popen(
        [*command, *files], cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


def finish_worker(label: str, process: subprocess.Popen[str], started: float) -> Side:
    stdout, stderr = process.communicate()
    if process.returncode != 0:
        last = stderr.strip().splitlines()[-1:] or ["no output"]
        hint = ""
        if "ModuleNotFoundError" in last[0] or "ImportError" in last[0]:
            hint = " (a revision the mock engine can run has components/idp/ and components/mock_values.py)"
        raise PlanError(f"{label}: the program could not be run under mocks: {last[0]}{hint}")
    document = json.loads(stdout)
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
    return Side(label, facts, errors, replace, list(packages), time.perf_counter() - started, grants)


def base_worktree(root: Path, rev: str, into: Path) -> Path:
    """A detached `git worktree` of `rev` (its own code and stack files)."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)
        if done.returncode != 0:
            raise PlanError(f"--base {rev}: git {' '.join(args[:2])}: {done.stderr.strip() or 'failed'}")
        return done.stdout.strip()

    found = subprocess.run(
        ["git", "-C", str(root), "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"],
        capture_output=True,
        text=True,
    )
    if found.returncode != 0:
        raise PlanError(f"--base {rev}: not a commit of the repository at {root}")
    commit = found.stdout.strip()
    path = into / "base"
    git("worktree", "add", "--detach", "--quiet", str(path), commit)
    return path


def remove_worktree(root: Path, path: Path) -> None:
    subprocess.run(["git", "-C", str(root), "worktree", "remove", "--force", str(path)], capture_output=True)
    shutil.rmtree(path, ignore_errors=True)
    subprocess.run(["git", "-C", str(root), "worktree", "prune"], capture_output=True)


# --- the report ---------------------------------------------------------------------------------


@dataclass
class Plan:
    base: str | None
    head: dict[str, Facts]
    base_facts: dict[str, Facts]
    changes: list[Change]
    errors: list[str]
    seconds: float

    @property
    def status(self) -> int:
        if self.errors:
            return 2
        return 1 if any(change.risky for change in self.changes) else 0


def build_plan(head: Side, base: Side | None, head_files: Sequence[str], base_files: Sequence[str]) -> Plan:
    changes: list[Change] = []
    replace = {**(base.replace_on_change if base else {}), **head.replace_on_change}
    packages = sorted(set(head.idp_packages) | set(base.idp_packages if base else []))
    grants = set(head.access_grant_types) | set(base.access_grant_types if base else [])
    for file, facts in head.facts.items():
        prior = base.facts.get(file) if base else None
        for name, messages in facts.policy.items():
            before = prior.policy.get(name, []) if prior else []
            for message in messages:
                note = " (also at base)" if message in before else ""
                changes.append(Change(facts.stack, POLICY, f"{name}: {message}{note}"))
        if base is None:
            continue
        if file not in base_files:
            changes.append(Change(facts.stack, STACK_ADDED, f"new stack {file} ({facts.kind}, {_roles_text(facts)})"))
        elif prior is not None:
            changes.extend(diff_stack(prior, facts, replace, packages, grants))
    if base is not None:
        for file in base_files:
            if file not in head_files:
                stack = Path(file).name.removeprefix("Pulumi.").removesuffix(".yaml")
                changes.append(Change(stack, STACK_REMOVED, f"{file} is removed: `pulumi up` no longer manages it"))
    order = {kind: index for index, kind in enumerate((*RISKY, CHANGED))}
    changes.sort(key=lambda change: (order[change.kind], change.stack))
    errors = head.errors + (base.errors if base else [])
    seconds = max(head.seconds, base.seconds if base else 0.0)
    return Plan(
        base.label.removeprefix("base ") if base else None,
        head.facts,
        base.facts if base else {},
        changes,
        errors,
        seconds,
    )


def _roles_text(facts: Facts) -> str:
    if facts.access_model is not None:
        roles = {grant.principal: str(grant.role) for grant in facts.access_model.groups}
    else:
        roles = facts.roles
    return ", ".join(f"{value} → {role}" for value, role in roles.items()) or "no roles"


def access_rows(facts: Facts) -> list[tuple[str, str]]:
    """Who may sign in and as what: from the access model, else from the rendered role mapping."""
    rows: list[tuple[str, str]] = []
    model = facts.access_model
    if model is None:
        rows += [(f"role of `{value}`", role) for value, role in facts.roles.items()]
        audience = "access groups"
        if facts.default_role_everyone:
            audience += " + everyone at the IdP"
        elif facts.default_role_claim_values:
            audience += " + " + ", ".join(f"`{value}`" for value in facts.default_role_claim_values)
        rows += [("default role", _show(facts.default_role)), ("who may sign in", audience)]
        rows += [(f"service account `{account}`", role) for account, role in facts.service_accounts.items()]
        return rows
    for grant in model.groups:
        matched = "" if grant.claim_value == grant.principal else f" (claim value `{grant.claim_value}`)"
        rows.append((f"role of `{grant.principal}`", f"{grant.role}{matched}"))
    audience = "access groups"
    if model.everyone:
        audience += " + everyone at the IdP"
    if model.extra_groups:
        audience += " + " + ", ".join(f"`{grant.principal}`" for grant in model.extra_groups)
    rows += [("default role", _show(model.default_role)), ("who may sign in", audience)]
    for account in model.service_accounts:
        rows.append((f"service account `{account.name}`", f"{account.role}, trusting {account.subject}"))
    return rows


RowValue = str | list[str]
"""A row's value: one text, or a list of items (compared item by item)."""


def fact_rows(facts: Facts) -> list[tuple[str, RowValue]]:
    """(label, value) rows describing one stack's declaration; lists stay lists (diffed as items)."""
    rows: list[tuple[str, RowValue]] = [
        ("IdP kind", _show(facts.kind)),
        ("client id", _show(facts.client_id)),
        ("issuer", _show(facts.issuer)),
        ("redirect and post-logout URIs", list(facts.redirect_uris)),
    ]
    rows += access_rows(facts)
    for label, minutes in facts.lifetimes.items():
        rows.append((label, _number(minutes)))
    for key, entry in facts.resolved.items():
        if entry["value"] is not None:
            origin = "" if entry["from"] == "stack file" else f" (from {entry['from']})"
            rows.append((f"spec `{key}`", f"{_show(entry['value'])}{origin}"))
    rows += [
        ("secrets held by", list(facts.secret_holders)),
        ("image", _show(facts.image)),
        ("chart", _show(facts.chart)),
        ("hostname", _show(facts.hostname)),
        ("namespace / release", f"{_show(facts.namespace)} / {_show(facts.release)}"),
        ("api-server replicas", _show(facts.replicas)),
        ("protected", [f"`{name}`" for name in facts.protected]),
    ]
    return rows


@dataclass(frozen=True)
class RowChange:
    """One row that differs between the base and this change (None: the row is absent on that side)."""

    label: str
    before: RowValue | None
    after: RowValue | None

    @property
    def removed(self) -> list[str]:
        """For a list row: the items only the base has."""
        after = self.after if isinstance(self.after, list) else []
        return [item for item in self.before or [] if item not in after] if isinstance(self.before, list) else []

    @property
    def added(self) -> list[str]:
        """For a list row: the items only this change has."""
        before = self.before if isinstance(self.before, list) else []
        return [item for item in self.after or [] if item not in before] if isinstance(self.after, list) else []

    @property
    def is_list(self) -> bool:
        return isinstance(self.before, list) or isinstance(self.after, list)


def row_changes(before: Facts, after: Facts) -> list[RowChange]:
    """The rows whose value differs, in the order this change lists them (rows gone last)."""
    old, new = dict(fact_rows(before)), dict(fact_rows(after))
    changed = [RowChange(label, old.get(label), value) for label, value in new.items() if old.get(label) != value]
    return changed + [RowChange(label, value, None) for label, value in old.items() if label not in new]


def _summary(plan: Plan) -> str:
    risky = [change for change in plan.changes if change.risky]
    stacks = len(plan.head) + len({c.stack for c in plan.changes if c.kind == STACK_REMOVED})
    against = f" against `{plan.base}`" if plan.base else ""
    if plan.errors:
        return f"airflow-oidc plan: {len(plan.errors)} error(s){against}"
    if risky:
        touched = len({change.stack for change in risky})
        return f"airflow-oidc plan: {len(risky)} risky change(s) in {touched} of {stacks} stack(s){against}"
    others = len(plan.changes)
    return f"airflow-oidc plan: no risky change in {stacks} stack(s){against}" + (
        f" ({others} other change(s))" if others else ""
    )


MARKDOWN_LIMIT = 60_000
"""GitHub refuses comments over 65536 characters: beyond this the per-stack details are left out."""
KNOWN_AFTER = "(known after apply)"


@dataclass(frozen=True)
class StackView:
    """One stack as the report shows it: changed (the rows that differ), new, removed, unchanged, or
    (without `--base`) declared."""

    stack: str
    file: str
    state: str
    """`changed`, `added`, `removed`, `unchanged` or `declared`."""
    facts: Facts | None
    rows: list[RowChange]
    changes: list[Change]


def stack_views(plan: Plan) -> list[StackView]:
    """Every stack, those that change first (risky before the others), then the unchanged ones."""
    views: list[StackView] = []
    for file, facts in plan.head.items():
        changes = [change for change in plan.changes if change.stack == facts.stack]
        before = plan.base_facts.get(file)
        if plan.base is None:
            views.append(StackView(facts.stack, file, "declared", facts, [], changes))
        elif before is None:
            views.append(StackView(facts.stack, file, "added", facts, [], changes))
        else:
            rows = row_changes(before, facts)
            state = "changed" if rows or changes else "unchanged"
            views.append(StackView(facts.stack, file, state, facts, rows, changes))
    for file, facts in plan.base_facts.items():
        if file not in plan.head:
            changes = [change for change in plan.changes if change.stack == facts.stack]
            views.append(StackView(facts.stack, file, "removed", None, [], changes))
    order = {"changed": 0, "added": 0, "removed": 0, "declared": 1, "unchanged": 2}
    return sorted(views, key=lambda view: (order[view.state], not any(c.risky for c in view.changes), view.stack))


def _known_after(text: str) -> str:
    """The access model's `known after apply` reads as the engine's `(known after apply)`."""
    return re.sub(r"(?<!\()known after apply(?!\))", KNOWN_AFTER, text)


def _plain(value: RowValue | None) -> str:
    """A value as plain text (no markdown)."""
    if value is None:
        return "none"
    if isinstance(value, list):
        return ", ".join(_plain(item) for item in value) or "none"
    return _known_after(value).replace("`", "")


def _md(value: RowValue | None) -> str:
    """A value in a markdown table cell."""
    if value is None:
        return "—"
    if isinstance(value, list):
        return "<br>".join(_md(item) for item in value) or "none"
    return _cell(_known_after(value))


def render_markdown(plan: Plan, details: bool = True) -> str:
    """For a pull-request comment: one summary line, the risky changes, then each stack that changes with
    only what changes (lists as added and removed items), then one line per unchanged stack."""
    lines = [f"**{_summary(plan)}**", ""]
    for error in plan.errors:
        lines.append(f"- ❌ {error}")
    risky = [change for change in plan.changes if change.risky]
    if risky:
        lines += ["### Risky changes", ""]
        lines += [f"- **{change.kind}** · `{change.stack}`: {change.message}" for change in risky]
        lines.append("")
    views = stack_views(plan)
    for view in views:
        if view.state == "unchanged":
            continue
        if view.state == "removed":
            lines += [f"### `{view.stack}` ({view.file}): removed", ""]
        else:
            heading = {"added": ": new stack", "changed": ""}.get(view.state, "")
            lines += [f"### `{view.stack}` ({view.file}){heading}", ""]
        if view.state == "changed" and view.rows:
            lines += ["| | base | this change |", "| --- | --- | --- |"]
            for row in view.rows:
                if row.is_list and row.before is not None and row.after is not None:
                    removed = "<br>".join(f"− {_md(item)}" for item in row.removed)
                    added = "<br>".join(f"+ {_md(item)}" for item in row.added)
                    lines.append(f"| {_cell(row.label)} | {removed} | {added} |")
                else:
                    lines.append(f"| {_cell(row.label)} | {_md(row.before)} | {_md(row.after)} |")
        elif view.state == "changed":
            lines.append("What this stack declares for sign-in does not change.")
        facts = view.facts
        if facts is not None and view.state in ("added", "declared"):  # a changed stack: only what changes
            lines += ["| | declared |", "| --- | --- |"]
            lines += [f"| {_cell(label)} | {_md(value)} |" for label, value in fact_rows(facts)]
        others = [change for change in view.changes if not change.risky]
        if others:
            lines += ["", "Other changes: " + "; ".join(change.message for change in others)]
        if details and facts is not None and view.state in ("added", "declared"):
            lines += ["", "<details><summary>Resources</summary>", ""]
            lines += [
                f"- `{r['name']}` {r['type']}" + (" (protected)" if r["protect"] else "") for r in facts.resources
            ]
            lines += ["", "</details>"]
        lines.append("")
    unchanged = [view for view in views if view.state == "unchanged"]
    if unchanged:
        lines += [f"- `{view.stack}` ({view.file}): unchanged" for view in unchanged]
    text = "\n".join(lines).rstrip() + "\n"
    if details and len(text) > MARKDOWN_LIMIT:
        note = "\n_Details left out to fit a comment: `airflow-oidc plan --format text` prints them._\n"
        return render_markdown(plan, details=False) + note
    return text


def _cell(value: str) -> str:
    return value.replace("|", "\\|")


def render_text(plan: Plan) -> str:
    """Like `terraform plan`: the risky changes, then `~` each changed stack with only what changes (list
    items `+` added, `-` removed), `+` each new stack in full, `-` each removed one, then `=` one line per
    unchanged stack. Without `--base`, every stack with what it declares. Plain text, no markdown."""
    lines = [_summary(plan).replace("`", "")]
    lines += [f"error: {error}" for error in plan.errors]
    risky = [change for change in plan.changes if change.risky]
    if risky:
        lines += ["", "Risky changes:"]
        lines += [f"  {change.stack}: {change.kind}: {change.message.replace('`', '')}" for change in risky]
    for view in stack_views(plan):
        others = [f"    {change.message.replace('`', '')}" for change in view.changes if not change.risky]
        if view.state == "unchanged":
            if not lines[-1].startswith("= "):
                lines.append("")
            lines.append(f"= {view.stack} ({view.file}): unchanged")
            continue
        lines.append("")
        if view.state == "removed":
            lines.append(f"- {view.stack} ({view.file}): removed")
            continue
        facts = view.facts
        assert facts is not None
        if view.state == "changed":
            lines.append(f"~ {view.stack} ({view.file})")
            for row in view.rows:
                label = row.label.replace("`", "")
                if row.is_list and row.before is not None and row.after is not None:
                    lines.append(f"    {label}:")
                    lines += [f"      - {_plain(item)}" for item in row.removed]
                    lines += [f"      + {_plain(item)}" for item in row.added]
                elif row.before is None:
                    lines.append(f"    + {label}: {_plain(row.after)}")
                elif row.after is None:
                    lines.append(f"    - {label}: {_plain(row.before)}")
                else:
                    lines.append(f"    {label}: {_plain(row.before)} → {_plain(row.after)}")
            if others:
                lines += ["    other changes:", *("  " + other for other in others)]
            continue
        marker = "+" if view.state == "added" else "=="
        lines.append(f"{marker} {view.stack} ({view.file})" + (": new stack" if view.state == "added" else ""))
        lines += [f"    {label.replace('`', '')}: {_plain(value)}" for label, value in fact_rows(facts)]
        if view.state == "declared":
            lines.append("    resources:")
            lines += [
                f"      {r['name']}  {r['type']}" + ("  [protected]" if r["protect"] else "") for r in facts.resources
            ]
    return "\n".join(lines) + "\n"


def render_json(plan: Plan) -> str:
    def stack(facts: Facts) -> dict[str, Any]:
        data = asdict(facts)
        data["resources"] = [
            {"type": r["type"], "name": r["name"], "parent": r["parent"], "protect": r["protect"]}
            for r in facts.resources
        ]
        return data

    document = {
        "summary": _summary(plan),
        "status": plan.status,
        "base": plan.base,
        "errors": plan.errors,
        "changes": [{**asdict(change), "risky": change.risky} for change in plan.changes],
        "stacks": {file: stack(facts) for file, facts in plan.head.items()},
        "baseStacks": {file: stack(facts) for file, facts in plan.base_facts.items()},
        "seconds": round(plan.seconds, 3),
    }
    return json.dumps(document, indent=2) + "\n"


RENDERERS = {"text": render_text, "markdown": render_markdown, "json": render_json}


# --- the command --------------------------------------------------------------------------------


def plan(files: Sequence[Path], base: str | None, root: Path | None = None) -> Plan:
    """Plan the stack files of `root` (default: the project around the working directory)."""
    root = (root or find_project().root).resolve()
    requested = stack_files(root, files, must_exist=base is None)
    head_files = [file for file in requested if (root / file).is_file()]
    if not head_files and base is None:
        raise PlanError(f"no stack files (Pulumi.*.yaml) in {root / 'stacks'}")
    started = time.perf_counter()
    if base is None:
        head = finish_worker("this change", start_worker(root, head_files), started)
        return build_plan(head, None, head_files, [])
    with tempfile.TemporaryDirectory(prefix="airflow-oidc-plan-") as scratch:
        worktree = base_worktree(root, base, Path(scratch))
        try:
            stacks = worktree / "stacks"
            if files:
                base_files = [file for file in requested if (worktree / file).is_file()]
                missing = [file for file in requested if file not in head_files and file not in base_files]
                if missing:
                    raise PlanError(f"{missing[0]}: no such stack file here or at {base}")
            else:
                base_files = [f"stacks/{path.name}" for path in sorted(stacks.glob("Pulumi.*.yaml"))]
            policy = policy_dir(root)  # the change's rules and configuration judge both sides
            head_process = start_worker(root, head_files, policy)
            base_process = start_worker(worktree, base_files, policy)  # both sides at once: two cores
            config_changes: list[str] = []
            if rules_file(policy) is not None:  # a change to the pack's configuration is risky
                config_change = policy_config_change(worktree / "policy" / "config.json", policy / "config.json")
                config_changes += [config_change] if config_change else []
            # The Admin allowlists are the environments' defaults files: a change there is a policy change too.
            config_changes += allowlist_changes(worktree / "stacks" / "defaults", root / "stacks" / "defaults")
            head = finish_worker("this change", head_process, started)
            prior = finish_worker(f"base {base}", base_process, started)
        finally:
            remove_worktree(root, worktree)
    result = build_plan(head, prior, head_files, base_files)
    result.changes[:0] = [Change("(policy pack)", POLICY, change) for change in config_changes]
    return result


ALLOWLIST_KEYS = ("allowedAdminGroups", "allowedAdminServiceAccounts")


def allowlist_changes(base: Path, head: Path) -> list[str]:
    """What changes in who may be Admin, per environment defaults file (risky: validate, the program and the
    policy pack judge with these lists)."""

    def lists(directory: Path) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for path in sorted(directory.glob("*.yaml")):
            try:
                document = yaml.safe_load(path.read_text()) or {}
            except (OSError, yaml.YAMLError):
                document = {"allowedAdminGroups": "(unreadable)"}
            if isinstance(document, Mapping):
                found[path.name] = {key: document.get(key) for key in ALLOWLIST_KEYS}
        return found

    before, after = lists(base), lists(head)
    changes = []
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name, {}), after.get(name, {})
        for key in ALLOWLIST_KEYS:
            if old.get(key) != new.get(key):
                changes.append(
                    f"stacks/defaults/{name} {key}: {_allowlist_text(old.get(key))} → {_allowlist_text(new.get(key))} "
                    "(who may be Admin)"
                )
    return changes


def _allowlist_text(value: Any) -> str:
    if value is None:
        return "anyone (not set)"
    if isinstance(value, list):
        return ", ".join(str(item) for item in value) or "nobody"
    return str(value)


def policy_config_change(base: Path, head: Path) -> str | None:
    """What changes in the policy pack's configuration (risky: it decides what the rules allow)."""
    try:
        before = json.loads(base.read_text()) if base.is_file() else {}
        after = json.loads(head.read_text()) if head.is_file() else {}
    except (OSError, ValueError):
        return "policy/config.json cannot be read on one side"
    if before == after:
        return None
    keys = _changed_keys(before, after)
    return f"policy/config.json changes ({', '.join(keys)}): the rules now judge with the new configuration"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="*", type=Path, metavar="STACK_FILE", help="default: every stacks/Pulumi.*.yaml")
    parser.add_argument("--base", metavar="GIT_REV", help="compare with this revision (its own code and stack files)")
    parser.add_argument("--format", choices=sorted(RENDERERS), default="text")


def run(args: argparse.Namespace) -> int:
    """`airflow-oidc plan`: print the plan; exit 0 (no risky change), 1 (risky changes) or 2 (an error)."""
    try:
        project = find_project(getattr(args, "project_dir", None))
        files = [project.stack_path(path) for path in args.files]
        result = plan(files, args.base, project.root)
    except (PlanError, ProjectNotFoundError) as error:
        print(f"airflow-oidc plan: {error}", file=sys.stderr)
        return 2
    sys.stdout.write(RENDERERS[args.format](result))
    for problem in result.errors:
        print(problem, file=sys.stderr)
    return result.status
