"""The access model the program declares (`airflow_oidc_access.json`) and what the resources really grant.

The rendered webserver_config.py's role mapping, Entra's app-role assignments and the service accounts the auth
manager accepts are cross-checked against the declared model (`access_model_mismatches`), so a model that hides
a grant is caught before `admin.py` judges its Admins. The stack's environment is read here too.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .declared import (
    CONFIG_MAP,
    ENTRA_APP,
    ENTRA_ASSIGNMENT,
    HELM_RELEASE,
    UNKNOWN,
    Declared,
    Violation,
    is_known,
    strings_of,
    value_at,
)

ACCESS_MODEL_FILE = "airflow_oidc_access.json"
"""The auth-manager ConfigMap's key declaring the stack's access model (components/access.py)."""
AUTH_SETTINGS_FILE = "airflow_oidc_auth.json"
"""The auth-manager ConfigMap's key with the service accounts Airflow accepts (name, role)."""

STACK_NAME_LABEL = "airflow-oidc/stack-name"
ENVIRONMENT_LABEL = "airflow-oidc/environment"


# -------------------------------------------------------------------------- what the rendered config grants


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
            ("apiServer.apiServerConfig", value_at(values, "apiServer", "apiServerConfig")),
            ("webserver.webserverConfig", value_at(values, "webserver", "webserverConfig")),
        )
        if is_known(text)
    ]


# ------------------------------------------------------------------------------------------ the declared model


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
        text = value_at(resource.inputs, "data", ACCESS_MODEL_FILE)
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


def model_groups(model: Mapping[str, Any], *, extra: bool = False) -> list[Mapping[str, Any]]:
    groups = value_at(model, "audience", "extraGroups") if extra else model.get("groups")
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

    groups, extras = model_groups(model), model_groups(model, extra=True)
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
        if is_known(mapping.default_role) and mapping.default_role != audience.get("defaultRole"):
            say(
                mapping.holder,
                f"{where} makes {mapping.default_role or 'no role'} the default role, the access model says "
                f"{audience.get('defaultRole') or 'none'}",
            )
        if is_known(mapping.everyone) and bool(mapping.everyone) != bool(audience.get("everyone")):
            say(mapping.holder, f"{where} lets everyone sign in = {bool(mapping.everyone)}, the access model does not")
        wanted = {str(group.get("claimValue")) for group in extras}
        if is_known(mapping.default_claim_values) and set(strings_of(mapping.default_claim_values)) != wanted:
            say(
                mapping.holder,
                f"{where} gives the default role to {sorted(strings_of(mapping.default_claim_values))}, the access "
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
            for role in value_at(resource.inputs, "appRoles") or []:
                members = strings_of(value_at(role, "allowedMemberTypes"))
                if (
                    isinstance(value_at(role, "id"), str)
                    and isinstance(value_at(role, "value"), str)
                    and "User" in members
                ):
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
        text = value_at(resource.inputs, "data", AUTH_SETTINGS_FILE) if resource.type == CONFIG_MAP else None
        if not isinstance(text, str):
            continue
        try:
            accounts = value_at(json.loads(text), "serviceAccounts", "accounts") or {}
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


# ------------------------------------------------------------------------------------- the stack's environment


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
        labels = value_at(resource.inputs, "values", "labels")
        if not isinstance(labels, Mapping):
            continue
        if isinstance(labels.get(ENVIRONMENT_LABEL), str):
            return str(labels[ENVIRONMENT_LABEL])
        if isinstance(labels.get(STACK_NAME_LABEL), str):
            return str(labels[STACK_NAME_LABEL]).rsplit("-", 1)[-1]
    return stack.rsplit("-", 1)[-1] if stack else None
