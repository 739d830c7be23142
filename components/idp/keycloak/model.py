"""Keycloak (`idp.kind: keycloak`), the pure side of the OpenID client, its groups mapper, the groups and
(optionally) the realm (the Pulumi side: `resources.py`).

The claim values are Keycloak group PATHS (`/search-airflow-admins`, `/data/airflow-admins`): the
mapper emits full paths (its `full_path`, the provider's default). Names are unique among siblings
only, so a bare name would also match a same-named subgroup anywhere (`/contractors/airflow-admins`);
a path names exactly one group. `access[].group` is a path, and a bare name means the top-level
group (`airflow-admins` is `/airflow-admins`): `keycloak_group_path`.
Keycloak lets every user of a realm authenticate to every client of it, so who may sign in is
decided by Airflow's security manager alone: a user in no mapped group is refused (no user row).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from components.idp.base.contract import ClientContract, common_contract
from components.idp.base.model import (
    IdpModel,
    MockLookupError,
    ProviderConfig,
    ProviderConfigError,
)
from components.model import at, key_text, require_url

if TYPE_CHECKING:
    from components.access import GroupGrant, ServiceAccountGrant
    from components.service_accounts import ServiceAccountContract
    from components.spec_base import ServiceAccount, Spec

CLIENT_TYPE = "keycloak:openid/client:Client"
MAPPER_TYPE = "keycloak:openid/groupMembershipProtocolMapper:GroupMembershipProtocolMapper"
GROUP_TYPE = "keycloak:index/group:Group"
REALM_TYPE = "keycloak:index/realm:Realm"
GET_GROUP = "keycloak:index/getGroup:getGroup"

MOCK_MISSING_GROUPS: set[str] = set()
"""For the mock engine (tests): group paths the mocked realm does not hold (their lookup fails as the
provider's does: `group not found at path`). Every other path exists."""

Loc = tuple[str | int, ...]


class KeycloakIdp(IdpModel):
    """Keycloak: the program creates the OpenID client, the groups mapper and the `access` groups."""

    SDK: ClassVar[str | None] = "pulumi_keycloak"
    PROVIDER_CONFIG: ClassVar[Mapping[str, str]] = {"keycloak:url": "KEYCLOAK_URL"}
    GROUPS_BOUND_BY: ClassVar[str | None] = "by path"
    DEFAULTS_FROM_PROVIDER: ClassVar[Mapping[str, tuple[str, ...]]] = {"url": ("keycloak:url",)}
    PROVIDER_PACKAGE: ClassVar[str | None] = "keycloak"
    # The provider's own HTTP timeout (5 s) fails requests to a loaded Keycloak; 120 s unless the stack sets
    # `keycloak:clientTimeout` or KEYCLOAK_CLIENT_TIMEOUT.
    PROVIDER_DEFAULTS: ClassVar[Mapping[str, tuple[str, Any]]] = {"client_timeout": ("KEYCLOAK_CLIENT_TIMEOUT", 120)}
    # ForceNew in the Keycloak provider's schema: a client, group or mapper moved to another realm (or
    # a mapper to another client, a group under another parent) is a new resource. clientId updates in place.
    REPLACE_ON_CHANGE: ClassVar[Mapping[str, tuple[str, ...]]] = {
        CLIENT_TYPE: ("realmId",),
        GROUP_TYPE: ("realmId", "parentId"),
        MAPPER_TYPE: ("realmId", "clientId", "clientScopeId"),
    }

    kind: Literal["keycloak"]
    realm: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$",
        description="Realm of the client, users and groups; the issuer is `<url>/realms/<realm>`.",
    )
    url: str | None = Field(
        default=None,
        description="Keycloak URL browsers, Airflow and the program's Keycloak provider use (https; http only on "
        "loopback); the issuer is `<url>/realms/<realm>`. Default: `keycloak:url` (or KEYCLOAK_URL).",
    )
    createRealm: bool = Field(  # noqa: N815
        default=False, description="Create the realm (brute-force protection on, SSL required for external)."
    )
    createGroups: bool = Field(  # noqa: N815
        default=True,
        description="Create the `access` and `signIn.extraGroups` groups at their paths (a subgroup's parent "
        "must be one of them or exist already; with createRealm the program creates the parents too); "
        "false looks each group up by its exact path.",
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        require_url(value, what="url")
        return value.rstrip("/")

    # --- hooks ----------------------------------------------------------------------------------

    def check_spec(self, spec: Spec) -> None:
        seen: dict[str, Loc] = {}
        for loc, group in spec_groups(spec):
            problem = keycloak_path_problem(group)
            if problem:
                raise at(loc, problem)
            path = keycloak_group_path(group)
            if path in seen:
                raise at(
                    loc,
                    f"{group!r} is the Keycloak group {path} again (also {key_text(seen[path])}): "
                    "a bare name means the top-level group; keep one entry",
                )
            seen[path] = loc
        if self.createRealm and not self.createGroups:
            raise at(
                ("idp", "createGroups"),
                "the realm is created by this stack, so it holds no groups to look up: "
                "set createGroups: true (or createRealm: false for an existing realm)",
            )

    def check_provider(self, spec: Spec, provider: ProviderConfig) -> None:
        url = provider.get("keycloak:url")
        if self.url:
            if url and keycloak_split(self.url, url):
                raise ProviderConfigError(
                    f"airflow-oidc:spec.idp.url: {self.url!r} and keycloak:url {url.rstrip('/')!r} are one server "
                    "under two base paths: Airflow would trust the issuer "
                    f"{self.url}/realms/{self.realm} while the provider manages the realm under the other one "
                    "(only one is Keycloak's http-relative-path); give both the same base path, or remove one"
                )
            return
        if not url:
            raise ProviderConfigError(
                "keycloak:url is not set: set it (`pulumi config set keycloak:url https://sso.example.com`), "
                "or KEYCLOAK_URL, or airflow-oidc:spec.idp.url"
            )
        try:
            require_url(url, what="keycloak:url")
        except ValueError as error:
            raise ProviderConfigError(f"{error} (or set airflow-oidc:spec.idp.url)") from None

    def provider_settings(self, spec: Spec, provider: ProviderConfig) -> Mapping[str, Any]:
        """The provider talks to `keycloak:url` (or KEYCLOAK_URL) when the stack sets it (an internal admin endpoint,
        say), else to the server the spec names (`idp.url`): a stack that sets only `idp.url` works."""
        return {"url": provider.get("keycloak:url") or self.server_url(provider)}

    def fleet_names(self, spec: Spec, *, stack: str, provider: ProviderConfig) -> Mapping[str, str]:
        where = f"realm {self.realm} at {self.url or provider.get('keycloak:url') or 'the Keycloak server'}"
        names = {f"Keycloak client id in {where}": keycloak_client_id(stack)}
        if self.createRealm:
            names[f"Keycloak realm created at {self.url or provider.get('keycloak:url')}"] = self.realm
        # Keycloak refuses a second group of one name under one parent: two stacks cannot both create it.
        for path in keycloak_groups(spec).created:
            names[f"Keycloak group {path} created in {where}"] = path
        return names

    # --- the access model (components/access.py) ------------------------------------------------

    ACCESS_NOTES: ClassVar[tuple[str, ...]] = (
        "Keycloak lets every user of the realm authenticate to every client: Airflow itself refuses "
        "users outside the groups and the audience",
    )

    def group_grant(
        self,
        spec: Spec,
        group: str,
        *,
        role: str | None,
        loc: tuple[str | int, ...],
        contract: ClientContract,
        extra: bool = False,
    ) -> GroupGrant:
        from components.access import GroupGrant, key_of

        path = keycloak_group_path(group)
        # What the mapper emits decides what binds: a full path is one group; a bare name is any
        # group of that name, at any depth.
        claim_value = path if path in contract.claim_values else group
        how = "created by the program" if self.createGroups else "looked up in the realm"
        if claim_value == path:
            binding = f"the group at path {path} ({how}); the `{contract.role_claim}` claim carries full paths"
        else:
            binding = (
                f"every group named {group!r} at any depth ({how} at {path}); the `{contract.role_claim}` "
                "claim carries bare names"
            )
        return GroupGrant(
            group=group, principal=path, binding=binding, claim_value=claim_value, role=role, key=key_of(loc)
        )

    def service_account_grant(
        self, spec: Spec, account: ServiceAccount, *, key: str, stack: str, provider: ProviderConfig
    ) -> ServiceAccountGrant:
        from components.access import ServiceAccountGrant

        return ServiceAccountGrant(
            name=account.name,
            role=account.role,
            subject=keycloak_service_account_client_id(keycloak_client_id(stack), account.name),
            trust=f"client credentials of this confidential client in realm {self.realm}; its tokens name it in `azp`",
            key=key,
        )

    # --- service accounts (components/idp/keycloak/service_accounts.py) --------------------------

    def service_accounts_refusal(self, spec: Spec) -> str | None:
        return None

    def service_account_contract(
        self, spec: Spec, contract: ClientContract, *, stack: str, provider: ProviderConfig
    ) -> ServiceAccountContract:
        return keycloak_service_account_contract(contract.issuer, keycloak_client_id(stack))

    def server_url(self, provider: ProviderConfig) -> str:
        """The Keycloak server: `idp.url`, else `keycloak:url`."""
        url = self.url or provider.get("keycloak:url")
        if not url:
            raise ValueError("the Keycloak URL is unknown: set keycloak:url or idp.url")
        return url.rstrip("/")

    def contract(self, spec: Spec, *, stack: str, provider: ProviderConfig) -> ClientContract:
        fields = common_contract(spec, provider="keycloak")
        # The mapper emits full paths: the claim values, and so the role mapping, are paths.
        fields["role_by_claim_value"] = {
            keycloak_group_path(group): role for group, role in fields["role_by_claim_value"].items()
        }
        fields["default_role_claim_values"] = tuple(
            keycloak_group_path(group) for group in fields["default_role_claim_values"]
        )
        return ClientContract(
            issuer=f"{self.server_url(provider)}/realms/{self.realm}",
            scopes=("openid", "email", "profile"),
            role_claim="groups",
            # The mapper is attached to this client: the claim comes with every token, no scope needed.
            role_claim_scope=None,
            username_claim="sub",  # Keycloak's user id: stable across renames and email changes
            **fields,
        )

    @staticmethod
    def mock_outputs(type_: str, name: str, inputs: Mapping[str, Any]) -> dict[str, Any] | None:
        from components.mock_values import fake_guid

        if type_ == CLIENT_TYPE:
            # `id` is the client's internal id (a GUID), which the mapper takes; `clientId` is the OAuth one.
            return {"id": fake_guid(name), "clientSecret": inputs.get("clientSecret")}
        if type_ == MAPPER_TYPE:
            return {"id": fake_guid(name)}
        if type_ == GROUP_TYPE:
            # The path is known here only for a top-level group (a parent's path is not in the inputs).
            path = None if inputs.get("parentId") else "/" + str(inputs.get("name", ""))
            return {"id": fake_guid(name), "path": path}
        if type_ == REALM_TYPE:
            return {"id": inputs.get("realm")}  # Keycloak's realm id is its name
        return None

    @staticmethod
    def mock_call(token: str, args: Mapping[str, Any]) -> dict[str, Any] | None:
        if token == GET_GROUP:
            realm, path = str(args.get("realmId", "")), str(args.get("groupPath") or "")
            if not path:
                raise ValueError("the program looks Keycloak groups up by path (group_path), never by name")
            if path in MOCK_MISSING_GROUPS:
                raise MockLookupError(f"group not found at path: {path}")  # the provider's own message
            parent = keycloak_parent_path(path)
            return {
                "id": looked_up_group_id(realm, path),
                "name": path.rsplit("/", 1)[-1],
                "realmId": realm,
                "path": path,
                "groupPath": path,
                "parentId": looked_up_group_id(realm, parent) if parent else "",
            }
        return None


def keycloak_split(public: str, admin: str) -> bool:
    """Whether the URL Airflow trusts (`idp.url`) and the provider's (`keycloak:url`) split one server: the
    same host and port under different base paths (one realm URL is wrong). Another host is how an internal
    admin endpoint of the same Keycloak is named (its `hostname` setting keeps the public issuer): allowed."""

    def server(url: str) -> tuple[str | None, int, str]:
        parts = urlsplit(url.rstrip("/"))
        return parts.hostname, parts.port or (443 if parts.scheme == "https" else 80), parts.path.rstrip("/")

    (host, port, path), (admin_host, admin_port, admin_path) = server(public), server(admin)
    return (host, port) == (admin_host, admin_port) and path != admin_path


def looked_up_group_id(realm: str, path: str) -> str:
    """The id the mock engine gives an existing group at `path` (so a capture can name it)."""
    from components.mock_values import fake_guid

    return fake_guid(f"group:{realm}{keycloak_group_path(path)}")


# --- group paths ----------------------------------------------------------------------------------


def keycloak_group_path(group: str) -> str:
    """The Keycloak group `access[].group` (or `signIn.extraGroups[]`) names, as a path: a path as
    given (`/data/airflow-admins`), a bare name the top-level group (`airflow-admins` -> `/airflow-admins`).
    The claim carries exactly these paths (the mapper's `full_path`)."""
    return group if group.startswith("/") else "/" + group


def keycloak_path_problem(group: str) -> str | None:
    """Why `group` names no Keycloak group path (None: it does)."""
    path = keycloak_group_path(group)
    segments = path[1:].split("/")
    if path.endswith("/") or "" in segments:
        return (
            f"{group!r} is not a Keycloak group path: use `/parent/child` (no empty segment, no trailing "
            "slash) or a bare name for a top-level group"
        )
    for segment in segments:
        if segment != segment.strip():
            return f"{group!r}: the group name {segment!r} has leading or trailing spaces"
    return None


def keycloak_parent_path(path: str) -> str | None:
    """`/data/airflow-admins` -> `/data`; None for a top-level group."""
    parent = path.rsplit("/", 1)[0]
    return parent or None


def spec_groups(spec: Spec) -> list[tuple[Loc, str]]:
    """Every group the spec names, where: the `access` groups, then `signIn.extraGroups`."""
    groups: list[tuple[Loc, str]] = [(("access", index, "group"), rule.group) for index, rule in enumerate(spec.access)]
    groups += [(("signIn", "extraGroups", index), group) for index, group in enumerate(spec.signIn.extraGroups)]
    return groups


@dataclass(frozen=True)
class ExistingGroup:
    """A group that must exist already, and the spec key that needs it."""

    path: str
    loc: Loc
    needed_by: str
    """The path the spec names at `loc`: this group itself, or a subgroup of it."""


@dataclass(frozen=True)
class KeycloakGroups:
    """Which group paths the stack creates and which must exist already (a pure plan of the spec)."""

    created: tuple[str, ...]
    """Paths the stack creates, parents before children: with createGroups, every path the spec
    names, and with createRealm (the stack's own realm) the parents of subgroups too."""
    existing: tuple[ExistingGroup, ...]
    """Groups that must exist (looked up by exact path): every group without createGroups; with it,
    the parents of subgroups the stack does not create."""


def keycloak_groups(spec: Spec) -> KeycloakGroups:
    """What `createGroups` / `createRealm` mean for the spec's group paths (see `KeycloakGroups`)."""
    assert isinstance(spec.idp, KeycloakIdp)
    named = [(loc, keycloak_group_path(group)) for loc, group in spec_groups(spec)]
    if not spec.idp.createGroups:
        return KeycloakGroups(created=(), existing=tuple(ExistingGroup(path, loc, path) for loc, path in named))
    created = {path for _, path in named}
    existing: dict[str, ExistingGroup] = {}
    for loc, path in named:
        parent = keycloak_parent_path(path)
        while parent is not None and parent not in created:
            if not spec.idp.createRealm:
                existing.setdefault(parent, ExistingGroup(parent, loc, path))
                break
            created.add(parent)  # nothing else can hold a group in a realm this stack creates
            parent = keycloak_parent_path(parent)
    ordered = sorted(created, key=lambda path: (path.count("/"), path))
    return KeycloakGroups(created=tuple(ordered), existing=tuple(existing.values()))


def keycloak_client_id(stack: str) -> str:
    """The OAuth client id: one per stack, so several stacks can share a realm."""
    return "airflow-" + re.sub(r"[^a-z0-9-]+", "-", stack.lower()).strip("-")


@dataclass(frozen=True)
class KeycloakClientSettings:
    """The client's settings, derived from the spec and the contract (pure, testable without Pulumi)."""

    realm: str
    client_id: str
    name: str
    redirect_uris: list[str]
    post_logout_redirect_uris: list[str]
    access_token_lifespan: str
    """Seconds, as a string (the provider's type)."""
    claim: str
    groups: tuple[str, ...]
    """The group paths the claim may carry (mapped, then default-role)."""


def keycloak_client_settings(spec: Spec, contract: ClientContract, stack: str) -> KeycloakClientSettings:
    assert isinstance(spec.idp, KeycloakIdp)
    return KeycloakClientSettings(
        realm=spec.idp.realm,
        client_id=keycloak_client_id(stack),
        name=f"Airflow ({spec.name})",
        redirect_uris=list(contract.redirect_uris),
        post_logout_redirect_uris=list(contract.post_logout_redirect_uris),
        access_token_lifespan=str(spec.access_token_minutes * 60),
        claim=contract.role_claim,
        groups=contract.claim_values,
    )


def keycloak_service_account_contract(issuer: str, airflow_client_id: str) -> ServiceAccountContract:
    """Access tokens of the realm, for the Airflow client (the audience mapper), naming the client in `azp`."""
    from components.service_accounts import ServiceAccountContract

    return ServiceAccountContract(
        issuer=issuer,
        discovery_url=issuer + "/.well-known/openid-configuration",
        audience=airflow_client_id,
        identity_claim="azp",
        credential="client_secret_basic",
    )


def keycloak_service_account_client_id(airflow_client_id: str, account: str) -> str:
    """The account's client id in the realm: the Airflow client's, then the account's name."""
    return f"{airflow_client_id}-{account}"
