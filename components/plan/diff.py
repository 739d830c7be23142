"""Classify what changes between two sides' facts: per stack, each difference as one change class.

The risky classes (privilege escalation, a new redirect host or URI, a longer lifetime, protection
removed, the IdP app or client replaced, a secret rotated or moved, a stack added or removed, the
policy pack's rules failing) set `plan`'s exit status 1; `changed` does not. Also here: the plan
itself (`build_plan`, both sides' facts and the classified changes) and what changes in the policy
pack's configuration and the environments' Admin allowlists.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from components.access import AccessModel
from components.model import ROLE_RANK
from components.plan.facts import Facts, Side, nested

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
            add(LIFETIME, f"{name}: {number_text(was)} → {number_text(minutes)}")
        elif was is not None and minutes != was:
            add(CHANGED, f"{name}: {number_text(was)} → {number_text(minutes)}")
        elif was is None:
            add(CHANGED, f"{name}: set to {number_text(minutes)}")

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
        setting_was, setting = nested(base.resolved, key, "value"), nested(head.resolved, key, "value")
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
            add(REPLACED if label == "client id" else CHANGED, f"{label}: {value_text(before)} → {value_text(after)}")
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
            key for key in replace_on_change.get(type_, ()) if nested(old["inputs"], key) != nested(new["inputs"], key)
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


def number_text(value: float) -> str:
    """A number as the report prints it: `90`, not `90.0`."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def value_text(value: Any) -> str:
    """A setting as the report prints it (`none` when absent)."""
    if value is None:
        return "none"
    if isinstance(value, float):
        return number_text(value)
    return str(value)


@dataclass
class Plan:
    """Both sides' facts per stack file, the classified changes and the errors: what the report shows."""

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
    """The plan of `head` (against `base`, None without `--base`): every stack's changes, risky ones first."""
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
