"""The effective-access model: who the IdP lets in, and as which Airflow role (pure).

One model per stack, whatever the kind: each principal the IdP binds (a group by the identity the IdP
binds it by — Okta group, Keycloak group path, Entra group assigned an app role, Google group email,
an `oidc` claim value) with its Airflow role; the audience (the assigned groups, extra groups with
the default role, everyone); each service account with the subject the IdP trusts for it (a client
id, an Entra federated subject) and its role. A kind answers `IdpModel.access_model` from the spec
alone: a value the provider computes (an Okta client id, say) reads `known after apply`, never a
made-up one.

Who reads it: the program exports it (`accessModel`, non-secret) and declares it in the auth-manager
ConfigMap (`airflow_oidc_access.json`), where the policy pack reads it and checks it against what the
resources grant; `airflow-oidc plan` diffs it, so the same edit reads the same on every kind;
`validate` and the program check its Admin principals against the environment's allowlist.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

ACCESS_MODEL_FILE = "airflow_oidc_access.json"
"""The data key of the auth-manager ConfigMap that declares the model (read by the policy pack)."""
ACCESS_MODEL_OUTPUT = "accessModel"
"""The stack output carrying the model."""
MODEL_VERSION = 1
KNOWN_AFTER_APPLY = "known after apply"
"""What a value reads when the IdP computes it (`pulumi up` learns it; `plan` never makes one up)."""


@dataclass(frozen=True)
class GroupGrant:
    """One group the IdP binds, and what its members get."""

    group: str
    """The group as the spec names it (`access[].group`, `signIn.extraGroups[]`)."""
    principal: str
    """The identity the IdP binds, e.g. `/data/airflow-admins` (Keycloak path), a group email, an object id."""
    binding: str
    """How the IdP finds it, in words (`created by the program`, `looked up by exact name`, ...)."""
    claim_value: str
    """The value Airflow maps: what the IdP puts in the role claim for its members (an app-role value
    for Entra, the group itself elsewhere)."""
    role: str | None
    """The Airflow role its members get; for an extra group, the default role (None: none)."""
    key: str
    """Where the spec names it (`access[2].group`)."""


@dataclass(frozen=True)
class ServiceAccountGrant:
    """One machine identity, the subject the IdP trusts for it, and its Airflow role."""

    name: str
    role: str
    subject: str
    """Who may act as it: a client id (or `known after apply`), Entra's federated subject
    (`repo:<owner/repo>:environment:<env>`)."""
    trust: str
    """How the subject is trusted, in words (client credentials of which client, which issuer)."""
    key: str


@dataclass(frozen=True)
class AccessModel:
    """What the IdP will let in and as what (one stack)."""

    kind: str
    environment: str
    groups: tuple[GroupGrant, ...]
    """The `access` groups, each with its role."""
    extra_groups: tuple[GroupGrant, ...] = ()
    """`signIn.extraGroups`: assigned to the app, their members get the default role."""
    everyone: bool = False
    """Every user of the IdP may sign in (and gets the default role unless a group maps them)."""
    default_role: str | None = None
    service_accounts: tuple[ServiceAccountGrant, ...] = ()
    notes: tuple[str, ...] = field(default=())
    """What the model cannot say exactly (e.g. who is in a group is the IdP's business)."""

    def to_json(self) -> dict[str, Any]:
        """Plain data (camelCase), as exported and declared."""

        def group(grant: GroupGrant) -> dict[str, Any]:
            return {
                "group": grant.group,
                "principal": grant.principal,
                "binding": grant.binding,
                "claimValue": grant.claim_value,
                "role": grant.role,
                "key": grant.key,
            }

        return {
            "version": MODEL_VERSION,
            "kind": self.kind,
            "environment": self.environment,
            "groups": [group(grant) for grant in self.groups],
            "audience": {
                "assignedGroups": True,
                "extraGroups": [group(grant) for grant in self.extra_groups],
                "everyone": self.everyone,
                "defaultRole": self.default_role,
            },
            "serviceAccounts": [
                {
                    "name": account.name,
                    "role": account.role,
                    "subject": account.subject,
                    "trust": account.trust,
                    "key": account.key,
                }
                for account in self.service_accounts
            ],
            "notes": list(self.notes),
        }

    def to_text(self) -> str:
        """The model as the ConfigMap declares it (stable JSON)."""
        return json.dumps(self.to_json(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AccessModel:
        """Read a declared or exported model (raises ValueError when it is not one)."""
        if not isinstance(data, Mapping) or data.get("version") != MODEL_VERSION:
            raise ValueError(f"not an access model of version {MODEL_VERSION}")

        def group(entry: Mapping[str, Any]) -> GroupGrant:
            return GroupGrant(
                group=str(entry["group"]),
                principal=str(entry["principal"]),
                binding=str(entry.get("binding", "")),
                claim_value=str(entry["claimValue"]),
                role=None if entry.get("role") is None else str(entry["role"]),
                key=str(entry.get("key", "")),
            )

        audience = data.get("audience") or {}
        try:
            return cls(
                kind=str(data["kind"]),
                environment=str(data.get("environment", "")),
                groups=tuple(group(entry) for entry in data.get("groups") or []),
                extra_groups=tuple(group(entry) for entry in audience.get("extraGroups") or []),
                everyone=bool(audience.get("everyone")),
                default_role=None if audience.get("defaultRole") is None else str(audience["defaultRole"]),
                service_accounts=tuple(
                    ServiceAccountGrant(
                        name=str(entry["name"]),
                        role=str(entry["role"]),
                        subject=str(entry.get("subject", "")),
                        trust=str(entry.get("trust", "")),
                        key=str(entry.get("key", "")),
                    )
                    for entry in data.get("serviceAccounts") or []
                ),
                notes=tuple(str(note) for note in data.get("notes") or []),
            )
        except (KeyError, TypeError, AttributeError) as error:
            raise ValueError(f"not an access model: {error}") from None

    def admins(self) -> list[GroupGrant | ServiceAccountGrant]:
        """Every principal that gets Admin."""
        found: list[GroupGrant | ServiceAccountGrant] = [grant for grant in self.groups if grant.role == "Admin"]
        found += [account for account in self.service_accounts if account.role == "Admin"]
        return found


@dataclass(frozen=True)
class AdminAllowlist:
    """Who may be Admin in an environment (`stacks/defaults/<env>.yaml`); None: anyone."""

    groups: tuple[str, ...] | None = None
    """Shell-style patterns over the group as the spec names it (`allowedAdminGroups`)."""
    service_accounts: tuple[str, ...] | None = None
    """Shell-style patterns over service-account names (`allowedAdminServiceAccounts`)."""
    source: str = "the environment defaults"

    def group_allowed(self, group: str) -> bool:
        return self.groups is None or any(fnmatch.fnmatchcase(group, pattern) for pattern in self.groups)

    def service_account_allowed(self, name: str) -> bool:
        return self.service_accounts is None or any(
            fnmatch.fnmatchcase(name, pattern) for pattern in self.service_accounts
        )


def admin_problems(model: AccessModel, allowlist: AdminAllowlist) -> list[tuple[str, str]]:
    """(spec key, problem) for every Admin the allowlist does not allow (the default role included)."""
    problems: list[tuple[str, str]] = []
    groups = ", ".join(allowlist.groups or ()) or "none"
    for grant in model.groups:
        if grant.role == "Admin" and not allowlist.group_allowed(grant.group):
            problems.append(
                (
                    grant.key.removesuffix(".group") + ".role",
                    f"Admin for {grant.group!r}, which {allowlist.source} does not allow "
                    f"(allowedAdminGroups: {groups})",
                )
            )
    if model.default_role == "Admin" and allowlist.groups is not None:
        problems.append(
            (
                "defaultRole",
                f"Admin for users in no group, but {allowlist.source} allows Admin only for "
                f"allowedAdminGroups ({groups})",
            )
        )
    accounts = ", ".join(allowlist.service_accounts or ()) or "none"
    for account in model.service_accounts:
        if account.role == "Admin" and not allowlist.service_account_allowed(account.name):
            problems.append(
                (
                    account.key + ".role",
                    f"Admin for the service account {account.name!r}, which {allowlist.source} does not allow "
                    f"(allowedAdminServiceAccounts: {accounts}): name it there, or give it a lower role",
                )
            )
    return problems


def access_model_of(outputs: Mapping[str, Any]) -> AccessModel | None:
    """The model a program run exported (None: a revision without it, or not readable)."""
    data = outputs.get(ACCESS_MODEL_OUTPUT)
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except ValueError:
            return None
    try:
        return AccessModel.from_json(data) if isinstance(data, Mapping) else None
    except ValueError:
        return None


def key_of(loc: Sequence[str | int]) -> str:
    """('access', 2, 'group') -> 'access[2].group' (below `airflow-oidc:spec`)."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text
